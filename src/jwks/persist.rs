//! The last good key set in the data directory (`pg_jwt_jwks.json`): a JSON header line (the
//! source's URI and issuer, where it came from, when it was fetched), then the JWKS text. The
//! key fetcher writes it after every successful fetch and reads it when its source changes (at
//! start), so a restart while the provider is unreachable still verifies tokens, for at most
//! `pg_jwt.jwks_max_stale` after the last successful fetch.

use crate::gucs;
use crate::jwks::state;
use pg_jwt_core::{Json, KeySet};
use pgrx::prelude::*;

/// The file in the data directory that keeps the last good key set across restarts.
pub const FILE: &str = "pg_jwt_jwks.json";

/// Seconds a recorded time may lie ahead of the clock before the clock is taken to have moved
/// back (NTP's small corrections stay under it).
pub const CLOCK_SKEW: i64 = 60;

/// The error a set dropped as stale records (`jwt_jwks_status()`); a token's error says
/// "stale" when the recorded error starts with it (it names no URL).
pub const STALE: &str = "the fetched key set is stale: no successful fetch within pg_jwt.jwks_max_stale";

/// Whether a key set last fetched at `fetched_at` (Unix seconds) is stale at `now`: no
/// successful fetch within `max_stale`.
pub fn stale(now: i64, fetched_at: i64, max_stale: i64) -> bool {
    now.saturating_sub(fetched_at) > max_stale
}

/// Whether the clock moved back past `recorded` (a time this process took from it: the previous
/// turn) by more than `CLOCK_SKEW`. The key fetcher then moves every time it recorded back by
/// the step, so that a set keeps its age: otherwise a fetch time in the future was never stale
/// (a set stayed in force for the size of the step beyond `pg_jwt.jwks_max_stale`), and the
/// next refresh came that much late.
pub fn clock_moved_back(now: i64, recorded: i64) -> bool {
    recorded.saturating_sub(now) > CLOCK_SKEW
}

/// A time `t` the old clock recorded, on the clock that moved back by `step` (0, "never",
/// stays 0).
pub fn moved_back(t: i64, step: i64) -> i64 {
    if t == 0 {
        0
    } else {
        t.saturating_sub(step)
    }
}

pub struct Persisted {
    pub from: String,
    pub fetched_at: i64,
    pub jwks: String,
}

/// The folder in the data directory that keeps listed providers' sets, one file per provider
/// (`<name>.json`: names are `[a-z0-9_-]`, safe as file names).
pub const PROVIDERS_DIR: &str = "pg_jwt_providers";

/// The file of the implicit provider (`None`) or of a listed provider.
fn persisted_path(provider: Option<&str>) -> std::path::PathBuf {
    // SAFETY: DataDir is set by the postmaster before any worker starts and never changes.
    let dir = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) };
    let dir = std::path::Path::new(&*dir.to_string_lossy()).to_path_buf();
    match provider {
        None => dir.join(FILE),
        Some(name) => dir.join(PROVIDERS_DIR).join(format!("{name}.json")),
    }
}

pub fn save(uri: &str, issuer: &str, from: &str, jwks: &str, fetched_at: i64) {
    save_for(None, uri, issuer, from, jwks, fetched_at);
}

pub fn remove() {
    remove_for(None);
}

pub fn load(uri: &str, issuer: &str, now: i64) -> Option<Persisted> {
    load_for(None, uri, issuer, now)
}

/// Writes the last good set: a JSON header line, then the JWKS text. Written to a temporary file,
/// synced and renamed, so a crash leaves the old file or the new one, never half of one.
pub fn save_for(provider: Option<&str>, uri: &str, issuer: &str, from: &str, jwks: &str, fetched_at: i64) {
    let header = Json::Object(vec![
        ("uri".into(), Json::String(uri.into())),
        ("issuer".into(), Json::String(issuer.into())),
        ("from".into(), Json::String(from.into())),
        ("fetched_at".into(), Json::Number(fetched_at.to_string().into())),
    ]);
    let path = persisted_path(provider);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(header.to_json_string().as_bytes())?;
        f.write_all(b"\n")?;
        f.write_all(jwks.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        warning!("pg_jwt: could not write {}: {}", path.display(), e.kind());
    }
}

pub fn remove_for(provider: Option<&str>) {
    let _ = std::fs::remove_file(persisted_path(provider));
}

/// The persisted set, if it is for this source (`uri` and, for `discover`, the issuer; a file
/// written before the issuer was recorded is for none), imports, and is not stale.
pub fn load_for(provider: Option<&str>, uri: &str, issuer: &str, now: i64) -> Option<Persisted> {
    let text = std::fs::read_to_string(persisted_path(provider)).ok()?;
    let (header, jwks) = text.split_once('\n')?;
    let header = Json::parse(header.as_bytes()).ok()?;
    if header.get("uri").and_then(Json::as_str) != Some(uri) {
        return None;
    }
    let recorded = header.get("issuer").and_then(Json::as_str);
    if recorded != Some(issuer) && !(recorded.is_none() && issuer.is_empty()) {
        return None;
    }
    let fetched_at: i64 = match header.get("fetched_at") {
        Some(Json::Number(n)) => n.parse().ok()?,
        _ => return None,
    };
    // A fetch time ahead of the clock: written before the clock moved back, by how much this
    // clock cannot say, so the set's age is unknown: not used (the fetcher fetches at start).
    if stale(now, fetched_at, gucs::jwks_max_stale())
        || clock_moved_back(now, fetched_at)
        || jwks.len() > state::MAX_JWKS
    {
        return None;
    }
    KeySet::parse(jwks.as_bytes()).ok()?;
    Some(Persisted {
        from: header.get("from").and_then(Json::as_str).unwrap_or(uri).to_owned(),
        fetched_at,
        jwks: jwks.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::{clock_moved_back, stale, CLOCK_SKEW};

    #[test]
    fn stale_sets_and_a_clock_that_moved_back() {
        let (now, max) = (1_000_000, 3600);
        assert!(!stale(now, now, max));
        assert!(!stale(now, now - max, max));
        assert!(stale(now, now - max - 1, max));
        assert!(stale(i64::MAX, i64::MIN, max));
        assert!(!clock_moved_back(now, now + CLOCK_SKEW));
        assert!(clock_moved_back(now, now + CLOCK_SKEW + 1));
        assert!(!clock_moved_back(now, 0));
        assert!(clock_moved_back(0, i64::MAX));
        assert_eq!(super::moved_back(0, 100), 0);
        assert_eq!(super::moved_back(1_000, 100), 900);
        assert_eq!(super::moved_back(i64::MIN + 1, 100), i64::MIN);
    }
}
