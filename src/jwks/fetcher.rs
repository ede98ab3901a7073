//! The key fetcher: one background worker, registered at preload, that does all network I/O
//! (no backend ever does). It needs no database connection, so it also runs on a hot standby.
//!
//! Each turn (every 100 ms, or when a backend sets its latch) it watches standby replay, starts
//! revocation purges, and decides whether to fetch
//! `pg_jwt.jwks_uri`: when the refresh time has come (the server's `Cache-Control: max-age` or
//! `Expires`, clamped between `pg_jwt.jwks_min_refresh` and `pg_jwt.jwks_max_refresh`; after a
//! failure, a backoff that doubles from the minimum), when a backend met an unknown `kid` (at
//! most once per minimum interval), or when `jwt_jwks_refresh()` asks. A fetch that fails keeps
//! the last good set; a set older than `pg_jwt.jwks_max_stale` without a successful fetch is
//! dropped, and tokens that needed it fail closed. The last good set is also written to
//! `pg_jwt_jwks.json` in the data directory, so a restart while the provider is unreachable still
//! verifies tokens.
//!
//! The fetch itself (DNS, TLS, HTTP: up to `jwks_fetch::DNS_TIMEOUT` plus
//! `jwks_fetch::TOTAL_TIMEOUT` per request) runs on a thread of its own that calls no
//! PostgreSQL function and receives no signal; the worker's loop only starts it and collects
//! its result. So a provider that hangs never delays the replay watcher (revocations on a
//! standby) or the purges.

use crate::jwks_fetch::{self, Source};
use crate::{clock, gucs, shared};
use pg_jwt_core::{Json, KeySet};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;
use std::time::Duration;

/// The file in the data directory that keeps the last good key set across restarts.
const PERSISTED_FILE: &str = "pg_jwt_jwks.json";

/// Registers the worker. Call from `_PG_init`, only when preloaded.
pub fn register() {
    BackgroundWorkerBuilder::new("pg_jwt key fetcher")
        .set_type("pg_jwt key fetcher")
        .set_library("pg_jwt")
        .set_function("pg_jwt_key_fetcher_main")
        .enable_shmem_access(None)
        .set_start_time(BgWorkerStartTime::PostmasterStart)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// A fetch running on its own thread.
struct InFlight {
    handle: std::thread::JoinHandle<Result<jwks_fetch::Fetched, String>>,
    /// The last request ticket issued when it started: answered when it is collected.
    ticket: u64,
}

/// What the worker remembers between turns (the rest is in shared memory).
struct Turn {
    /// On a hot standby: the WAL replay position last seen (see `standby_replay`).
    replayed: u64,
    /// The `pg_jwt.jwks_uri` value it works for ("" when fetching is off).
    uri: String,
    /// With `uri`, the source's identity (`shared::source_issuer`).
    issuer: String,
    in_flight: Option<InFlight>,
    /// Failed attempts in a row (for the backoff).
    failures_in_a_row: u32,
    /// Unix seconds of the last purge of expired revocations.
    last_purge: i64,
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_jwt_key_fetcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // SAFETY: MyProc is this process's PGPROC, in shared memory, set before the worker's main.
    shared::set_worker_proc(unsafe { pg_sys::MyProc });
    let mut turn = Turn {
        replayed: 0,
        uri: String::new(),
        issuer: String::new(),
        in_flight: None,
        failures_in_a_row: 0,
        last_purge: clock::now_unix(),
    };
    while BackgroundWorker::wait_latch(Some(Duration::from_millis(100))) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a background worker to reread its configuration.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            // Settings may have changed (key sets, validation): void the shared cache.
            crate::shared_cache::bump_epoch();
        }
        one_turn(&mut turn);
    }
    shared::set_worker_proc(std::ptr::null_mut());
}

fn one_turn(turn: &mut Turn) {
    // Requests with a ticket up to this one are answered by the end of this turn, unless a
    // fetch is running: then by the end of the turn that collects it.
    let ticket = shared::last_ticket();
    standby_replay(turn);
    purge_revocations(turn);
    turn_body(turn, ticket);
    if turn.in_flight.is_none() {
        shared::answer(ticket);
    }
}

/// On a hot standby, revocations arrive by WAL replay, without the commit callback that bumps
/// the shared generation on the primary. So whenever replay has advanced since the last turn
/// (at most every 100 ms), bump it here: cached verifications are checked again against the
/// replayed table at their next access.
fn standby_replay(turn: &mut Turn) {
    // SAFETY: both read shared memory the startup process maintains; callable from any
    // process attached to shared memory.
    let (in_recovery, replayed) = unsafe {
        (
            pg_sys::RecoveryInProgress(),
            pg_sys::GetXLogReplayRecPtr(std::ptr::null_mut()),
        )
    };
    if in_recovery && replayed != turn.replayed {
        turn.replayed = replayed;
        shared::bump_keys_generation();
    }
}

/// Every `pg_jwt.revocation_purge_interval` seconds (on a primary), starts one short-lived
/// worker per database whose revocations are in use (the databases with a revocation filter,
/// `revocation_filter::databases`): it deletes the expired ones (the condition of
/// `jwt_purge_revocations()`) and exits. This worker itself never connects to a database; nothing here waits for them.
fn purge_revocations(turn: &mut Turn) {
    let interval = gucs::revocation_purge_interval();
    let now = clock::now_unix();
    // SAFETY: reads shared memory; callable from any process attached to it.
    if interval <= 0 || now - turn.last_purge < interval || unsafe { pg_sys::RecoveryInProgress() } {
        return;
    }
    turn.last_purge = now;
    for db in crate::revocation_filter::databases() {
        let started = BackgroundWorkerBuilder::new("pg_jwt revocation purge")
            .set_type("pg_jwt revocation purge")
            .set_library("pg_jwt")
            .set_function("pg_jwt_revocation_purge_main")
            .set_argument(Some(pg_sys::Datum::from(db.to_u32())))
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(None)
            .load_dynamic();
        if started.is_err() {
            pgrx::warning!("pg_jwt: could not start the revocation purge (max_worker_processes too low?); retrying at the next interval");
        }
    }
}

/// The purge worker: connects to one database as the bootstrap superuser, deletes the expired
/// revocations if pg_jwt is installed there, and exits.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_jwt_revocation_purge_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    BackgroundWorker::transaction(|| {
        // The table itself, found through its extension membership (pg_depend) and named by
        // its current schema and name, never by a name a database owner can take over (a
        // renamed schema and a planted jwt_revocations with triggers would otherwise run them
        // as this superuser). The SHARE lock on pg_namespace holds every schema rename, creation
        // and drop of this database until the transaction ends, so the name resolved here is the
        // one the DELETE resolves. Same condition as jwt_purge_revocations().
        if pgrx::Spi::run("LOCK TABLE pg_catalog.pg_namespace IN SHARE MODE").is_err() {
            return;
        }
        let target = pgrx::Spi::get_one::<String>(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_extension e \
             JOIN pg_catalog.pg_depend d ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass \
             AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e' \
             AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
             JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid AND c.relname OPERATOR(pg_catalog.=) 'jwt_revocations' \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
             WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt'",
        );
        if let Ok(Some(target)) = target {
            let purged = pgrx::Spi::get_one::<i64>(&format!(
                "WITH gone AS (DELETE FROM {target} WHERE expires OPERATOR(pg_catalog.<) \
                 (pg_catalog.now() OPERATOR(pg_catalog.-) '{} seconds'::pg_catalog.interval) RETURNING 1) \
                 SELECT pg_catalog.count(*) FROM gone",
                gucs::MAX_LEEWAY
            ));
            if let Ok(Some(n)) = purged {
                if n > 0 {
                    pgrx::log!("pg_jwt: purged {n} expired revocations");
                }
            }
        }
    });
}

fn turn_body(turn: &mut Turn, ticket: u64) {
    let uri = gucs::jwks_uri().unwrap_or_default();
    let issuer_setting = gucs::issuer();
    let issuer = shared::source_issuer(&uri, issuer_setting.as_deref());
    let now = clock::now_unix();
    if uri != turn.uri || issuer != turn.issuer {
        if let Some(old) = turn.in_flight.take() {
            // A fetch for the old source: left to finish on its own, its result unused.
            shared::answer(old.ticket);
        }
        source_changed(turn, &uri, &issuer, now);
    }
    if let Some(f) = turn.in_flight.take_if(|f| f.handle.is_finished()) {
        let result = f
            .handle
            .join()
            .unwrap_or_else(|_| Err("the fetch failed unexpectedly".to_owned()));
        collect(turn, &uri, result);
        shared::answer(f.ticket);
    }
    if uri.is_empty() {
        shared::take_request();
        return;
    }
    if turn.in_flight.is_none() {
        let request = shared::take_request();
        let (next_refresh, last_attempt) = shared::read(|s| (s.next_refresh, s.last_attempt));
        let due = now >= next_refresh;
        let asked = match request {
            shared::REQUEST_FORCED => true,
            shared::REQUEST_UNKNOWN_KID => now - last_attempt >= gucs::jwks_min_refresh(),
            _ => false,
        };
        // Otherwise (too soon after the last attempt) whoever asked gets the current state.
        if due || asked {
            start_fetch(turn, &uri, issuer_setting, ticket);
        }
    }
    drop_if_stale(now);
}

/// A new source (`pg_jwt.jwks_uri`, and for `discover` `pg_jwt.issuer`), or the first turn:
/// forget the old source, take the persisted set if it is for this source and not stale, and
/// fetch at once. A worker that restarted finds its own source's live set in shared memory
/// and keeps it.
fn source_changed(turn: &mut Turn, uri: &str, issuer: &str, now: i64) {
    turn.uri = uri.to_owned();
    turn.issuer = issuer.to_owned();
    turn.failures_in_a_row = 0;
    let live = !uri.is_empty() && shared::read(|s| s.is_for(uri, issuer) && s.jwks().is_some());
    if live {
        shared::update(|s| s.next_refresh = now);
        log!("pg_jwt: key fetcher started; the key set in force for {uri} stays");
        return;
    }
    let persisted = if uri.is_empty() { None } else { load_persisted(uri, issuer, now) };
    shared::update(|s| {
        *s = shared::FetchState::default();
        s.set_uri(uri);
        s.set_issuer(issuer);
        if let Some(p) = &persisted {
            s.set_jwks(p.jwks.as_bytes());
            s.set_from(&p.from);
            s.last_success = p.fetched_at;
        }
        s.next_refresh = now;
    });
    if let Some(p) = &persisted {
        log!(
            "pg_jwt: key set for {uri} restored from {PERSISTED_FILE} (fetched at {})",
            p.fetched_at
        );
    }
    shared::bump_keys_generation();
    crate::shared_cache::bump_epoch();
}

/// Starts a fetch on its own thread, with every signal blocked there (PostgreSQL's handlers
/// must run on the worker's own thread).
fn start_fetch(turn: &mut Turn, uri: &str, issuer: Option<String>, ticket: u64) {
    let ca_file = gucs::jwks_ca_file();
    let uri = uri.to_owned();
    let work = move || {
        jwks_fetch::fetch(&Source {
            jwks_uri: &uri,
            issuer: issuer.as_deref(),
            ca_file: ca_file.as_deref(),
        })
    };
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only read and write the
    // sets given. The thread inherits the blocked mask; the worker's own mask is restored at
    // once, so its handlers (SIGTERM, SIGHUP, latch wakeups) keep running on its thread only.
    let spawned = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let spawned = std::thread::Builder::new().name("pg_jwt fetch".into()).spawn(work);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    };
    match spawned {
        Ok(handle) => turn.in_flight = Some(InFlight { handle, ticket }),
        Err(e) => collect(turn, &turn.uri.clone(), Err(format!("could not start the fetch: {}", e.kind()))),
    }
}

/// Applies the result of a fetch for the current source.
fn collect(turn: &mut Turn, uri: &str, result: Result<jwks_fetch::Fetched, String>) {
    let done = clock::now_unix();
    let min = gucs::jwks_min_refresh();
    let max = gucs::jwks_max_refresh();
    match result {
        Ok(fetched) => {
            turn.failures_in_a_row = 0;
            let wait = fetched
                .max_age
                .map_or(max, |d| i64::try_from(d.as_secs()).unwrap_or(max))
                .clamp(min, max);
            // The old set's text, only when it differs (then its kids are logged).
            let old: Option<Option<Vec<u8>>> =
                shared::read(|s| (s.jwks() != Some(fetched.text.as_bytes())).then(|| s.jwks().map(<[u8]>::to_vec)));
            shared::update(|s| {
                s.set_jwks(fetched.text.as_bytes());
                s.set_from(&fetched.uri);
                s.set_error("");
                s.last_success = done;
                s.last_attempt = done;
                s.next_refresh = done + wait;
                s.fetches += 1;
            });
            if let Some(old) = old {
                log_kid_changes(old.as_deref(), &fetched.kids, &fetched.uri);
                shared::bump_keys_generation();
                crate::shared_cache::bump_epoch();
            }
            // Every successful fetch, changed or not: the file's fetched_at is what a restart
            // with the provider down measures pg_jwt.jwks_max_stale from.
            persist(uri, &turn.issuer, &fetched.uri, &fetched.text, done);
        }
        Err(reason) => {
            turn.failures_in_a_row = turn.failures_in_a_row.saturating_add(1);
            let backoff = min
                .saturating_mul(1i64 << turn.failures_in_a_row.saturating_sub(1).min(20))
                .clamp(min, max);
            warning!("pg_jwt: fetching the key set failed, the last good set stays in force: {reason}");
            shared::update(|s| {
                if s.jwks().is_none() && s.last_success > 0 {
                    // The set was dropped as stale: keep saying so, with the latest failure.
                    s.set_error(&format!(
                        "the fetched key set is stale: no successful fetch within pg_jwt.jwks_max_stale; the last attempt: {reason}"
                    ));
                } else {
                    s.set_error(&reason);
                }
                s.last_attempt = done;
                s.next_refresh = done + backoff;
                s.failures += 1;
            });
        }
    }
}

/// Drops the fetched set after `pg_jwt.jwks_max_stale` without a successful fetch.
fn drop_if_stale(now: i64) {
    let stale = shared::read(|s| s.jwks().is_some() && now - s.last_success > gucs::jwks_max_stale());
    if stale {
        let from = shared::read(|s| s.from());
        shared::update(|s| {
            s.clear_jwks();
            s.set_error("the fetched key set is stale: no successful fetch within pg_jwt.jwks_max_stale");
        });
        warning!(
            "pg_jwt: the key set from {from} is stale (no successful fetch within pg_jwt.jwks_max_stale) and no longer in force"
        );
        shared::bump_keys_generation();
        crate::shared_cache::bump_epoch();
        remove_persisted();
    }
}

fn log_kid_changes(old: Option<&[u8]>, new: &[String], from: &str) {
    let old: Vec<String> = old
        .and_then(|t| KeySet::parse(t).ok())
        .map(|s| s.kids().into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    let added: Vec<&str> = new.iter().filter(|k| !old.contains(k)).map(String::as_str).collect();
    let removed: Vec<&str> = old.iter().filter(|k| !new.contains(k)).map(String::as_str).collect();
    log!(
        "pg_jwt: new key set from {from}: kids added [{}], removed [{}]",
        added.join(", "),
        removed.join(", ")
    );
}

struct Persisted {
    from: String,
    fetched_at: i64,
    jwks: String,
}

fn persisted_path() -> std::path::PathBuf {
    // SAFETY: DataDir is set by the postmaster before any worker starts and never changes.
    let dir = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) };
    std::path::Path::new(&*dir.to_string_lossy()).join(PERSISTED_FILE)
}

/// Writes the last good set: a JSON header line, then the JWKS text. Written to a temporary file,
/// synced and renamed, so a crash leaves the old file or the new one, never half of one.
fn persist(uri: &str, issuer: &str, from: &str, jwks: &str, fetched_at: i64) {
    let header = Json::Object(vec![
        ("uri".into(), Json::String(uri.into())),
        ("issuer".into(), Json::String(issuer.into())),
        ("from".into(), Json::String(from.into())),
        ("fetched_at".into(), Json::Number(fetched_at.to_string().into())),
    ]);
    let path = persisted_path();
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
        warning!("pg_jwt: could not write {PERSISTED_FILE}: {}", e.kind());
    }
}

fn remove_persisted() {
    let _ = std::fs::remove_file(persisted_path());
}

/// The persisted set, if it is for this source (`uri` and, for `discover`, the issuer; a file
/// written before the issuer was recorded is for none), imports, and is not stale.
fn load_persisted(uri: &str, issuer: &str, now: i64) -> Option<Persisted> {
    let text = std::fs::read_to_string(persisted_path()).ok()?;
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
    if now - fetched_at > gucs::jwks_max_stale() || jwks.len() > shared::MAX_JWKS {
        return None;
    }
    KeySet::parse(jwks.as_bytes()).ok()?;
    Some(Persisted {
        from: header.get("from").and_then(Json::as_str).unwrap_or(uri).to_owned(),
        fetched_at,
        jwks: jwks.to_owned(),
    })
}
