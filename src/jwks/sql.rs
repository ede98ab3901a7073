//! The SQL surface of the key fetcher: `jwt_jwks_status()` and `jwt_jwks_refresh()`.

use crate::fmgr::v1_function;
use crate::jwks::state;
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

/// Text that is plain ASCII in every database encoding: other characters as `\u{..}`.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("\\u{{{:x}}}", c as u32)
            }
        })
        .collect()
}

use crate::setup::require_preloaded;

/// The key fetcher's state in plain values.
struct Status {
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

fn status() -> Option<Status> {
    state::read(status_of)
}

fn status_of(s: &state::FetchState) -> Option<Status> {
    let uri = s.uri();
    if uri.is_empty() {
        return None;
    }
    let kids = s
        .jwks()
        .and_then(|t| KeySet::parse(t).ok())
        .map(|set| set.kids().into_iter().map(ascii).collect())
        .unwrap_or_default();
    Some(Status {
        uri: ascii(&uri),
        source: ascii(&s.from()),
        kids,
        in_force: s.jwks().is_some(),
        last_success: s.last_success,
        last_attempt: s.last_attempt,
        next_refresh: s.next_refresh,
        last_error: ascii(&s.error()),
        fetches: s.fetches,
        failures: s.failures,
    })
}

/// The key fetcher's state: one row for `pg_jwt.jwks_uri` (none when fetching is off): where
/// the key set came from, its `kid`s, whether it is in force, when it was last fetched and
/// attempted, when the next fetch is due, the last error, and counts. VOLATILE (it changes
/// whenever the worker fetches).
#[pg_extern(volatile, parallel_safe)]
fn jwt_jwks_status() -> Result<
    TableIterator<
        'static,
        (
            name!(uri, String),
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
        .map(|s| {
            (
                s.uri,
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
        .into_iter()
        .collect();
    Ok(TableIterator::new(rows))
}

/// How long `jwt_jwks_refresh()` waits for the fetch: a little more than a fetch may take.
const REFRESH_WAIT_MS: i64 = (crate::jwks::http::TOTAL_TIMEOUT.as_millis() as i64) * 2 + 1000;

fn status_json() -> String {
    let Some(s) = status() else {
        return "{}".into();
    };
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
    .to_json_string()
}

v1_function! {
    /// `jwt_jwks_refresh()`: asks the key fetcher to fetch `pg_jwt.jwks_uri` now, waits for the
    /// attempt (bounded: twice the fetch timeout), and returns the status as jsonb. Superuser
    /// only (EXECUTE is revoked from PUBLIC, and the function checks). VOLATILE.
    fn jwt_jwks_refresh_wrapper / pg_finfo_jwt_jwks_refresh_wrapper(_fcinfo) {
        require_preloaded()?;
        if !pg_sys::superuser() {
            return Err(ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "pg_jwt: only a superuser may call jwt_jwks_refresh()",
                "pg_jwt",
            ));
        }
        if gucs::jwks_uri().is_none() {
            return Err(errors::bad_argument("pg_jwt.jwks_uri is not set: there is nothing to fetch"));
        }
        if let Some(ticket) = state::request_refetch(state::REQUEST_FORCED, crate::clock::now_unix(), 0) {
            state::wait_for_answer(ticket, REFRESH_WAIT_MS);
        }
        crate::fmgr::jsonb_from_text(&status_json())
    }
}

extension_sql!(
    r#"
COMMENT ON FUNCTION jwt_jwks_status() IS 'The key fetcher: the source of the fetched key set, its kids, when it was fetched, the last error';
CREATE FUNCTION jwt_jwks_refresh() RETURNS jsonb
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_jwks_refresh_wrapper';
REVOKE EXECUTE ON FUNCTION jwt_jwks_refresh() FROM PUBLIC;
COMMENT ON FUNCTION jwt_jwks_refresh() IS 'Superuser: fetch pg_jwt.jwks_uri now, wait for the result (bounded) and return the status';
"#,
    name = "jwt_jwks_refresh",
    requires = [jwt_jwks_status]
);
