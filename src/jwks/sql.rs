//! The SQL surface of the key fetcher: `jwt_jwks_status()` and `jwt_jwks_refresh(provider)`,
//! for the implicit provider (`pg_jwt.jwks_uri`) and every listed provider that fetches.

use crate::fmgr::v1_function;
use crate::jwks::state;
use crate::providers::{self, slots};
use crate::{errors, gucs};
use pg_jwt_core::{Json, KeySet};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Seconds between the Unix epoch and PostgreSQL's (2000-01-01).
use crate::clock::POSTGRES_EPOCH_UNIX;

fn timestamptz(unix: i64) -> Option<TimestampWithTimeZone> {
    if unix == 0 {
        return None;
    }
    TimestampWithTimeZone::try_from((unix - POSTGRES_EPOCH_UNIX).saturating_mul(1_000_000)).ok()
}

/// Text that is plain printable ASCII in every database encoding: other characters (control
/// characters included: a provider chooses its `kid`s) as `\u{..}`.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c.to_string()
            } else {
                format!("\\u{{{:x}}}", c as u32)
            }
        })
        .collect()
}

use crate::setup::require_preloaded;

/// The key fetcher's state of one provider in plain values.
struct Status {
    provider: String,
    uri: String,
    source: String,
    kids: Vec<String>,
    in_force: bool,
    last_success: i64,
    last_attempt: i64,
    next_refresh: i64,
    last_error: String,
    fetches: u64,
    failures: u64,
}

fn kids_of(text: Option<&[u8]>) -> Vec<String> {
    text.and_then(|t| KeySet::parse(t).ok())
        .map(|set| set.kids().into_iter().map(ascii).collect())
        .unwrap_or_default()
}

thread_local! {
    /// The `kid`s of each provider's fetched set as this backend last listed them, with the keys
    /// generation they were read at: while it stays, no key set in force changed
    /// (`generations::key_set_changed`), so the set is neither copied nor parsed again.
    static KIDS: std::cell::RefCell<std::collections::HashMap<String, (u64, Vec<String>)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The `kid`s listed for `provider` at keys generation `generation`, if this backend has them.
fn known_kids(provider: &str, generation: u64) -> Option<Vec<String>> {
    KIDS.with(|k| {
        k.borrow()
            .get(provider)
            .filter(|(g, _)| *g == generation)
            .map(|(_, kids)| kids.clone())
    })
}

/// The `kid`s of `text` (a copy made under the lock, parsed here, after it), remembered for
/// `provider` at `generation`.
fn kids_now(provider: &str, generation: u64, text: Option<&[u8]>) -> Vec<String> {
    let kids = kids_of(text);
    KIDS.with(|k| {
        let mut k = k.borrow_mut();
        // Bounded: names of lists long gone do not pile up.
        if k.len() >= 256 {
            k.clear();
        }
        k.insert(provider.to_owned(), (generation, kids.clone()));
    });
    kids
}

/// The implicit provider's row (none when `pg_jwt.jwks_uri` is not set). For a role that may
/// not read the hidden settings (`gucs::may_read_hidden_settings`), without the URL, the source
/// and the fetch error (which names the URL): a URL's query string may hold a credential.
fn status() -> Option<Status> {
    // The set's text is copied under the shared lock and parsed after it is released: this
    // function is PUBLIC's, and a parse of a large set under the lock, called in a loop by a few
    // sessions, kept the key fetcher from ever taking it exclusively (its whole loop, standby
    // replay signalling included, waited behind them).
    // Read before the state: a set that changes after is seen with a newer generation.
    let generation = crate::generations::keys_generation();
    let default = pg_jwt_core::provider::DEFAULT_NAME;
    let known = known_kids(default, generation);
    let copy = known.is_none();
    let (mut s, text) = state::read(|st| status_of(st).map(|s| (s, st.jwks().filter(|_| copy).map(<[u8]>::to_vec))))?;
    s.kids = known.unwrap_or_else(|| kids_now(default, generation, text.as_deref()));
    if !crate::gucs::may_read_hidden_settings() {
        s.uri.clear();
        s.source.clear();
        if !s.last_error.is_empty() {
            s.last_error =
                "the last fetch failed (the reason is shown to members of pg_read_all_settings and in the server log)"
                    .to_owned();
        }
    }
    Some(s)
}

fn status_of(s: &state::FetchState) -> Option<Status> {
    let uri = s.uri();
    if uri.is_empty() {
        return None;
    }
    Some(Status {
        provider: pg_jwt_core::provider::DEFAULT_NAME.to_owned(),
        uri: ascii(&uri),
        source: ascii(&s.from()),
        // Filled by the caller, from a copy parsed outside the lock.
        kids: Vec::new(),
        in_force: s.jwks().is_some(),
        last_success: s.last_success,
        last_attempt: s.last_attempt,
        next_refresh: s.next_refresh,
        last_error: ascii(&s.error()),
        fetches: s.fetches,
        failures: s.failures,
    })
}

/// The rows of listed providers that fetch, in list order: from their slots, or, for one
/// without a slot, a row that says why it fails closed. None for a role that may not read
/// `pg_jwt.providers` (see `gucs::may_read_hidden_settings`).
fn listed_statuses(only: Option<&str>) -> Vec<Status> {
    if !crate::gucs::may_read_hidden_settings() {
        return Vec::new();
    }
    let list = providers::list();
    let mut rows = Vec::new();
    for p in &list.list {
        let Some(uri) = &p.jwks_uri else { continue };
        if only.is_some_and(|n| n != p.name) {
            continue;
        }
        let issuer = providers::fetch::source_issuer(uri, &p.issuer);
        let generation = crate::generations::keys_generation();
        let known = known_kids(&p.name, generation);
        let copy = known.is_none();
        let found = slots::read(|r| {
            let i = r.find(&p.name, uri, &issuer)?;
            let h = r.head(i)?;
            let text = r.jwks(i);
            Some((
                Status {
                    provider: p.name.clone(),
                    uri: ascii(uri),
                    source: ascii(&h.from()),
                    kids: Vec::new(),
                    in_force: text.is_some(),
                    last_success: h.last_success,
                    last_attempt: h.last_attempt,
                    next_refresh: h.next_refresh,
                    last_error: ascii(&h.error()),
                    fetches: h.fetches,
                    failures: h.failures,
                },
                // Parsed after the lock is released (see `status`), unless known.
                text.filter(|_| copy).map(<[u8]>::to_vec),
            ))
        })
        .flatten()
        .map(|(mut status, text)| {
            status.kids = known
                .clone()
                .unwrap_or_else(|| kids_now(&p.name, generation, text.as_deref()));
            status
        });
        rows.push(found.unwrap_or_else(|| Status {
            provider: p.name.clone(),
            uri: ascii(uri),
            source: String::new(),
            kids: Vec::new(),
            in_force: false,
            last_success: 0,
            last_attempt: 0,
            next_refresh: 0,
            last_error: format!(
                "no slot for its key set: all {} slots of pg_jwt.max_providers are taken, or the key fetcher has not read the list yet",
                slots::count()
            ),
            fetches: 0,
            failures: 0,
        }));
    }
    rows
}

/// The key fetcher's state: one row per provider that fetches (the implicit provider `default`
/// for `pg_jwt.jwks_uri`, then, for superusers and members of `pg_read_all_settings`, each
/// listed provider with a `jwks_uri`): where the key set came
/// from, its `kid`s, whether it is in force, when it was last fetched and attempted, when the
/// next fetch is due, the last error, and counts. VOLATILE (it changes whenever the worker
/// fetches).
#[pg_extern(volatile, parallel_safe, sql = false)]
fn jwt_jwks_status() -> Result<
    TableIterator<
        'static,
        (
            name!(provider, String),
            name!(uri, Option<String>),
            name!(source, Option<String>),
            name!(kids, Vec<String>),
            name!(in_force, bool),
            name!(last_success, Option<TimestampWithTimeZone>),
            name!(last_attempt, Option<TimestampWithTimeZone>),
            name!(next_refresh, Option<TimestampWithTimeZone>),
            name!(last_error, Option<String>),
            name!(fetches, i64),
            name!(failures, i64),
        ),
    >,
    ErrorReport,
> {
    require_preloaded()?;
    let rows: Vec<_> = status()
        .into_iter()
        .chain(listed_statuses(None))
        .map(|s| {
            (
                s.provider,
                (!s.uri.is_empty()).then_some(s.uri),
                (!s.source.is_empty()).then_some(s.source),
                s.kids,
                s.in_force,
                timestamptz(s.last_success),
                timestamptz(s.last_attempt),
                timestamptz(s.next_refresh),
                (!s.last_error.is_empty()).then_some(s.last_error),
                i64::try_from(s.fetches).unwrap_or(i64::MAX),
                i64::try_from(s.failures).unwrap_or(i64::MAX),
            )
        })
        .collect();
    Ok(TableIterator::new(rows))
}

/// How long `jwt_jwks_refresh()` waits for the fetch: a little more than a fetch may take.
const REFRESH_WAIT_MS: i64 = (crate::jwks::http::TOTAL_TIMEOUT.as_millis() as i64) * 2 + 1000;

fn status_json(s: &Status) -> Json {
    let string = |v: &str| Json::String(v.into());
    let time = |t: i64| {
        if t == 0 {
            Json::Null
        } else {
            Json::String(pg_jwt_core::error::unix_to_utc(t).into())
        }
    };
    Json::Object(vec![
        ("uri".into(), string(&s.uri)),
        ("source".into(), string(&s.source)),
        ("kids".into(), Json::Array(s.kids.iter().map(|k| string(k)).collect())),
        ("in_force".into(), Json::Bool(s.in_force)),
        ("last_success".into(), time(s.last_success)),
        ("last_attempt".into(), time(s.last_attempt)),
        ("next_refresh".into(), time(s.next_refresh)),
        (
            "last_error".into(),
            if s.last_error.is_empty() {
                Json::Null
            } else {
                string(&s.last_error)
            },
        ),
        ("fetches".into(), Json::Number(s.fetches.to_string().into())),
        ("failures".into(), Json::Number(s.failures.to_string().into())),
    ])
}

v1_function! {
    /// `jwt_jwks_refresh(provider text DEFAULT NULL)`: asks the key fetcher to fetch now, waits
    /// for the attempts (bounded: twice the fetch timeout, all providers together), and returns
    /// the status as jsonb: for one provider its status; for NULL (every provider that fetches)
    /// the implicit provider's status with, when listed providers fetch, a member "providers"
    /// (name: status). Superuser only (EXECUTE is revoked from PUBLIC, and the function checks).
    /// VOLATILE.
    fn jwt_jwks_refresh_wrapper / pg_finfo_jwt_jwks_refresh_wrapper(fcinfo) {
        require_preloaded()?;
        if !pg_sys::superuser() {
            return Err(ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "pg_jwt: only a superuser may call jwt_jwks_refresh()",
                "pg_jwt",
            ));
        }
        // 0.2.0 catalogs declare the function without an argument.
        let only: Option<String> = if (*fcinfo).nargs < 1 || crate::fmgr::arg_is_null(fcinfo, 0) {
            None
        } else {
            Some(String::from_utf8_lossy(crate::fmgr::arg_bytes(fcinfo, 0)).into_owned())
        };
        let default = pg_jwt_core::provider::DEFAULT_NAME;
        let want_default = only.as_deref().is_none_or(|n| n == default) && gucs::jwks_uri().is_some();
        let list = providers::list();
        let listed: Vec<String> = list
            .list
            .iter()
            .filter(|p| p.jwks_uri.is_some() && only.as_deref().is_none_or(|n| n == p.name))
            .map(|p| p.name.clone())
            .collect();
        if !want_default && listed.is_empty() {
            return Err(errors::bad_argument(&match only.as_deref() {
                Some(n) if n == default => "pg_jwt.jwks_uri is not set: there is nothing to fetch".to_owned(),
                Some(_) => "no provider of that name fetches its keys (pg_jwt.providers, with a jwks_uri)".to_owned(),
                None => "neither pg_jwt.jwks_uri nor a provider with a jwks_uri is set: there is nothing to fetch".to_owned(),
            }));
        }
        // Ask for everything first, then wait: the fetches run side by side.
        let now = crate::clock::now_unix();
        let ticket = if want_default {
            state::request_refetch(state::REQUEST_FORCED, now, 0)
        } else {
            None
        };
        let mut asked = Vec::new();
        for p in list.list.iter().filter(|p| listed.contains(&p.name)) {
            let Some(uri) = &p.jwks_uri else { continue };
            let issuer = providers::fetch::source_issuer(uri, &p.issuer);
            if let Some(Some(i)) = slots::read(|r| r.find(&p.name, uri, &issuer)) {
                if let Some(started) = slots::request(i, slots::REQUEST_FORCED, now, 0) {
                    asked.push((i, started));
                }
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(REFRESH_WAIT_MS as u64);
        let left = || i64::try_from(deadline.saturating_duration_since(std::time::Instant::now()).as_millis()).unwrap_or(0);
        if let Some(ticket) = ticket {
            state::wait_for_answer(ticket, left());
        }
        for (i, started) in asked {
            slots::wait(i, started, left());
        }
        let listed_rows = listed_statuses(only.as_deref().filter(|n| *n != default));
        let mut out = match (want_default.then(status).flatten(), &only) {
            (Some(s), _) => status_json(&s),
            (None, _) => Json::Object(Vec::new()),
        };
        if only.is_some() && !want_default {
            if let Some(s) = listed_rows.first() {
                out = status_json(s);
            }
        } else if only.is_none() && !listed_rows.is_empty() {
            let members = listed_rows.iter().map(|s| (s.provider.as_str().into(), status_json(s))).collect();
            if let Json::Object(o) = &mut out {
                o.push(("providers".into(), Json::Object(members)));
            }
        }
        crate::fmgr::jsonb_from_text(&out.to_json_string())
    }
}

extension_sql!(
    r#"
-- upgrade 0.3.0 begin
-- Several providers (0.3.0): jwt_jwks_status() has a first column, provider, and a row per
-- provider that fetches; jwt_jwks_refresh() takes the provider to fetch (NULL: every one).
-- upgrade only: DROP FUNCTION jwt_jwks_status();
-- upgrade only: DROP FUNCTION jwt_jwks_refresh();
CREATE FUNCTION jwt_jwks_status() RETURNS TABLE (
    provider text, uri text, source text, kids text[], in_force boolean,
    last_success timestamptz, last_attempt timestamptz, next_refresh timestamptz,
    last_error text, fetches bigint, failures bigint)
    STRICT VOLATILE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_jwks_status_wrapper';
COMMENT ON FUNCTION jwt_jwks_status() IS 'The key fetcher: per provider, the source of the fetched key set, its kids, when it was fetched, the last error';
CREATE FUNCTION jwt_jwks_refresh(provider text DEFAULT NULL) RETURNS jsonb
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_jwks_refresh_wrapper';
REVOKE EXECUTE ON FUNCTION jwt_jwks_refresh(text) FROM PUBLIC;
COMMENT ON FUNCTION jwt_jwks_refresh(text) IS 'Superuser: fetch the keys of this provider (NULL: every provider that fetches) now, wait for the result (bounded) and return the status';
-- upgrade 0.3.0 end
"#,
    name = "jwt_jwks_refresh"
);
