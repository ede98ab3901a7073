//! pg_jwt's settings, all in one place, behind accessor functions.
//!
//! | setting | context | who may set it | read by |
//! |---|---|---|---|
//! | `pg_jwt.token` | USERSET | anyone (it is only a token to verify) | the session path |
//! | `pg_jwt.jwks` | SUSET | superusers (or roles granted SET); `oct` keys only server-wide | the session path |
//! | `pg_jwt.audience` | SUSET | " | the session path |
//! | `pg_jwt.issuer` | SUSET | " | the session path; the key fetcher (discovery) |
//! | `pg_jwt.required_claims` | SUSET | " | the session path |
//! | `pg_jwt.leeway` | SUSET | " (0-3600 s) | the session path |
//! | `pg_jwt.max_token_bytes` | SUSET | " | the session path |
//! | `pg_jwt.cache_size` | SUSET | " | the session cache |
//! | `pg_jwt.session_claim` | SUSET | " | revocation by session id |
//! | `pg_jwt.role_claim` | SUSET | " | `jwt_set_role` |
//! | `pg_jwt.allowed_roles` | SUSET | " | `jwt_set_role` |
//! | `pg_jwt.jwks_uri` | SUSET | " (https or `discover`; set server-wide) | the key fetcher; backends compare |
//! | `pg_jwt.jwks_fetch_wait` | SUSET | " | backends after an unknown `kid` |
//! | `pg_jwt.jwks_ca_file` | SIGHUP | postgresql.conf / ALTER SYSTEM | the key fetcher |
//! | `pg_jwt.jwks_min_refresh` | SIGHUP | " | the key fetcher; backends (unknown-`kid` rate limit) |
//! | `pg_jwt.jwks_max_refresh` | SIGHUP | " | the key fetcher |
//! | `pg_jwt.jwks_max_stale` | SIGHUP | " | the key fetcher |
//! | `pg_jwt.revocation_purge_interval` | SIGHUP | " | the key fetcher (purge launcher) |
//! | `pg_jwt.shared_cache_size` | POSTMASTER | postgresql.conf, restart | the shared verification cache |
//! | `pg_jwt.log_refusals` | SIGHUP | postgresql.conf / ALTER SYSTEM | the refusal log (`stats::log`) |
//! | `pg_jwt.log_refusals_per_second` | SIGHUP | " | the refusal log's cluster-wide rate limit |
//! | `pg_jwt.log_verified` | SIGHUP | " | the verified-identity log |
//! | `pg_jwt.oauth_identity_claim` | SIGHUP | postgresql.conf / ALTER SYSTEM | sign-in with a token (PostgreSQL 18) |
//! | `pg_jwt.providers` | SIGHUP | postgresql.conf / ALTER SYSTEM; hidden like `pg_jwt.jwks` | the session path (`providers`); the key fetcher |
//! | `pg_jwt.max_providers` | POSTMASTER | postgresql.conf, restart | the fetched key sets of listed providers (`providers::slots`) |
//! | `pg_jwt.provider_jwks_max_bytes` | POSTMASTER | " | " |
//!
//! Defined with pgrx's `GucRegistry` and stored in `GucSetting`s. The session cache's slow path
//! looks the token up by its raw bytes without copying it (`GucSetting::as_ptr`, see
//! `token_bytes`); `pg_jwt.jwks` has a check hook that replaces PostgreSQL's message (which
//! would echo the value, secrets included) and looks at the value's source. The per-row path
//! reads no setting at all: it compares the generation counters of `generations`, which the assign hooks here bump: PostgreSQL calls them on
//! every change of value, including SET LOCAL, RESET, the restore at COMMIT/ROLLBACK/ROLLBACK
//! TO SAVEPOINT, and in parallel workers when the leader's settings are restored. The session
//! cache compares generations instead of strings: a freed token string may be reallocated at
//! the same address, so a pointer comparison would not be safe.

use pg_jwt_core::KeySet;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

type StringSetting = GucSetting<Option<CString>>;

static TOKEN: StringSetting = GucSetting::<Option<CString>>::new(None);
static JWKS: StringSetting = GucSetting::<Option<CString>>::new(None);
static AUDIENCE: StringSetting = GucSetting::<Option<CString>>::new(None);
static ISSUER: StringSetting = GucSetting::<Option<CString>>::new(None);
/// Boot value: `pg_jwt_core::claims::DEFAULT_REQUIRED_CLAIMS` joined with commas.
static REQUIRED_CLAIMS: StringSetting = GucSetting::<Option<CString>>::new(Some(c"exp"));
static SESSION_CLAIM: StringSetting = GucSetting::<Option<CString>>::new(Some(c"sid"));
static ROLE_CLAIM: StringSetting = GucSetting::<Option<CString>>::new(Some(c"role"));
static ALLOWED_ROLES: StringSetting = GucSetting::<Option<CString>>::new(None);
static JWKS_URI: StringSetting = GucSetting::<Option<CString>>::new(None);
static JWKS_CA_FILE: StringSetting = GucSetting::<Option<CString>>::new(None);
static JWKS_MIN_REFRESH: GucSetting<i32> = GucSetting::<i32>::new(60);
static JWKS_MAX_REFRESH: GucSetting<i32> = GucSetting::<i32>::new(3600);
static JWKS_FETCH_WAIT: GucSetting<i32> = GucSetting::<i32>::new(2000);
static JWKS_MAX_STALE: GucSetting<i32> = GucSetting::<i32>::new(24 * 3600);
static REVOCATION_PURGE_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(3600);
static LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_LEEWAY);
static MAX_TOKEN_BYTES: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_TOKEN_BYTES);
static CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_CACHE_SIZE);
static SHARED_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(65_536);
static LOG_REFUSALS: GucSetting<bool> = GucSetting::<bool>::new(true);
static LOG_REFUSALS_PER_SECOND: GucSetting<i32> = GucSetting::<i32>::new(10);
static LOG_VERIFIED: GucSetting<LogVerified> = GucSetting::<LogVerified>::new(LogVerified::Off);
static PROVIDERS: StringSetting = GucSetting::<Option<CString>>::new(None);
static OAUTH_IDENTITY_CLAIM: StringSetting = GucSetting::<Option<CString>>::new(Some(c"sub"));
static MAX_PROVIDERS: GucSetting<i32> = GucSetting::<i32>::new(16);
static PROVIDER_JWKS_MAX_BYTES: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);

/// `pg_jwt.log_verified`: whether to log each change of the token whose claims a backend serves.
#[derive(pgrx::PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogVerified {
    #[name = c"off"]
    Off,
    #[name = c"first"]
    First,
}

pub const DEFAULT_LEEWAY: c_int = pg_jwt_core::claims::DEFAULT_LEEWAY as c_int;
pub const MAX_LEEWAY: c_int = pg_jwt_core::claims::MAX_LEEWAY as c_int;
pub const DEFAULT_MAX_TOKEN_BYTES: c_int = pg_jwt_core::token::DEFAULT_MAX_TOKEN_BYTES as c_int;
pub const DEFAULT_CACHE_SIZE: c_int = 1000;

/// Whether `_PG_init` ran from `shared_preload_libraries` (fixed for the process's life; forked
/// backends and parallel workers inherit it from the postmaster).
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Whether the library was loaded by `shared_preload_libraries`. Without it, every `pg_jwt.*`
/// setting is a plain placeholder until the library loads in a backend: readable by any role
/// (`SHOW pg_jwt.jwks`) and replaceable by connection options, after which PostgreSQL drops the
/// configured value. So the session-token path refuses to work unless this is true.
#[inline]
pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// Reads a string setting without copying. `None` when unset.
///
/// # Safety
/// The returned slice is valid until the setting changes; callers copy what they keep.
unsafe fn raw_str<'a>(setting: &StringSetting) -> Option<&'a [u8]> {
    // The current value's pointer, as PostgreSQL stored it (no copy, unlike `get()`).
    let p = *setting.as_ptr();
    if p.is_null() {
        None
    } else {
        Some(CStr::from_ptr(p).to_bytes())
    }
}

/// The raw token bytes, without copying; `None` when unset or empty.
///
/// # Safety
/// The slice points into PostgreSQL's storage of the setting: it is valid only until the next
/// assignment of `pg_jwt.token` (SET, RESET, end of transaction or savepoint). Use it and copy
/// what must be kept before running anything that could change the setting.
#[inline]
// SAFETY (for callers): see # Safety above: use the bytes before the setting can change.
pub unsafe fn token_bytes<'a>() -> Option<&'a [u8]> {
    // A session signed in with a token (PostgreSQL 18) has that token, whatever pg_jwt.token.
    if let Some(login) = login_token() {
        return Some(login);
    }
    // SAFETY: read on the backend's only thread; the caller upholds the lifetime rule above.
    unsafe { raw_str(&TOKEN) }.filter(|t| !t.is_empty())
}

/// The token the session signed in with (PostgreSQL 18, `signin`), kept for the session's life.
static LOGIN_TOKEN: std::sync::atomic::AtomicPtr<u8> = std::sync::atomic::AtomicPtr::new(null_mut());
static LOGIN_LEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The token the session signed in with, if it signed in with one.
#[inline]
pub fn login_token() -> Option<&'static [u8]> {
    let p = LOGIN_TOKEN.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: set once by `set_login_token` to a leaked allocation of LOGIN_LEN bytes (stored
    // before the pointer), never freed.
    Some(unsafe { std::slice::from_raw_parts(p, LOGIN_LEN.load(Ordering::Acquire)) })
}

/// At sign-in: `token` is the session's token for its whole life (`signin`).
#[cfg_attr(not(feature = "pg18"), allow(dead_code))]
pub fn set_login_token(token: &[u8]) {
    let copy: &'static mut [u8] = Box::leak(token.to_vec().into_boxed_slice());
    LOGIN_LEN.store(copy.len(), Ordering::Release);
    LOGIN_TOKEN.store(copy.as_mut_ptr(), Ordering::Release);
}

/// `pg_jwt.oauth_identity_claim`: the claim (or JSON Pointer) whose value is the identity of a
/// session signed in with a token (PostgreSQL 18).
#[cfg_attr(not(feature = "pg18"), allow(dead_code))]
pub fn oauth_identity_claim() -> String {
    nonempty_string(&OAUTH_IDENTITY_CLAIM).unwrap_or_else(|| "sub".to_owned())
}

fn nonempty_string(setting: &StringSetting) -> Option<String> {
    // SAFETY: read on the backend's only thread, copied at once.
    unsafe { raw_str(setting) }
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Whether the current role may read the hidden settings (`pg_jwt.providers`,
/// `pg_jwt.jwks_uri`: names and URLs, whose query strings may hold a credential) and what is
/// derived from them (the URL and fetch errors in `jwt_jwks_status()`, whether a name is
/// listed): as for `SHOW`, superusers and members of `pg_read_all_settings` (`pg_monitor`
/// includes it).
pub fn may_read_hidden_settings() -> bool {
    // SAFETY: plain catalog lookups for the current role, inside a transaction.
    unsafe {
        pg_sys::superuser()
            || pg_sys::has_privs_of_role(
                pg_sys::GetUserId(),
                pg_sys::Oid::from(pg_sys::ROLE_PG_READ_ALL_SETTINGS),
            )
    }
}

/// `pg_jwt.providers`'s text, without copying; `None` when unset or empty.
///
/// # Safety
/// As `token_bytes`: valid until the setting changes (a reload); parse it before that.
pub unsafe fn providers_bytes<'a>() -> Option<&'a [u8]> {
    // SAFETY: read on the backend's only thread; the caller upholds the lifetime rule above.
    unsafe { raw_str(&PROVIDERS) }.filter(|t| !t.iter().all(u8::is_ascii_whitespace))
}

/// Slots for the fetched key sets of listed providers (fixed at server start).
pub fn max_providers() -> usize {
    usize::try_from(MAX_PROVIDERS.get()).unwrap_or(0)
}

/// The largest fetched key set of a listed provider, in bytes (fixed at server start).
pub fn provider_jwks_max_bytes() -> usize {
    usize::try_from(PROVIDER_JWKS_MAX_BYTES.get()).unwrap_or(0)
}

pub fn jwks_text() -> Option<String> {
    nonempty_string(&JWKS)
}

pub fn audience() -> Option<String> {
    nonempty_string(&AUDIENCE)
}

pub fn issuer() -> Option<String> {
    nonempty_string(&ISSUER)
}

/// `pg_jwt.required_claims` split on commas, trimmed, empty names dropped.
pub fn required_claims() -> Vec<String> {
    // SAFETY: read on the backend's only thread, copied before returning.
    let Some(raw) = (unsafe { raw_str(&REQUIRED_CLAIMS) }) else {
        return pg_jwt_core::claims::DEFAULT_REQUIRED_CLAIMS
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
    };
    String::from_utf8_lossy(raw)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `pg_jwt.role_claim`: where `jwt_set_role()` finds the role (a top-level claim name, or a
/// JSON Pointer starting with `/`).
pub fn role_claim() -> String {
    nonempty_string(&ROLE_CLAIM).unwrap_or_else(|| "role".to_owned())
}

/// `pg_jwt.allowed_roles`: the roles `jwt_set_role()` may switch to (comma-separated, exact
/// names; empty: none).
pub fn allowed_roles() -> Vec<String> {
    nonempty_string(&ALLOWED_ROLES)
        .map(|s| {
            s.split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `pg_jwt.session_claim`: the claim `jwt_revoke_session` matches (`sid` by default; Supabase:
/// `session_id`).
pub fn session_claim() -> String {
    nonempty_string(&SESSION_CLAIM).unwrap_or_else(|| "sid".to_owned())
}

/// `pg_jwt.jwks_uri`: an https URL, `discover`, or `None` (no fetching).
pub fn jwks_uri() -> Option<String> {
    nonempty_string(&JWKS_URI)
}

/// `pg_jwt.jwks_ca_file`: the CA certificates (PEM) to trust instead of the system's.
pub fn jwks_ca_file() -> Option<String> {
    nonempty_string(&JWKS_CA_FILE)
}

/// Seconds.
pub fn jwks_min_refresh() -> i64 {
    i64::from(JWKS_MIN_REFRESH.get())
}

/// Seconds (never below the minimum).
pub fn jwks_max_refresh() -> i64 {
    i64::from(JWKS_MAX_REFRESH.get()).max(jwks_min_refresh())
}

/// Milliseconds a backend waits for a refetch after an unknown `kid` (0: it does not wait).
pub fn jwks_fetch_wait_ms() -> i64 {
    i64::from(JWKS_FETCH_WAIT.get())
}

/// Seconds without a successful fetch after which the fetched set is dropped.
pub fn jwks_max_stale() -> i64 {
    i64::from(JWKS_MAX_STALE.get())
}

/// Seconds between two purges of expired revocations by the background worker (0: never).
/// `pg_jwt.log_refusals`: one server-log line per refused token (`stats::log`).
pub fn log_refusals() -> bool {
    LOG_REFUSALS.get()
}

/// `pg_jwt.log_refusals_per_second`: the cluster-wide cap on those lines.
pub fn log_refusals_per_second() -> i64 {
    i64::from(LOG_REFUSALS_PER_SECOND.get())
}

/// `pg_jwt.log_verified = first`.
pub fn log_verified_first() -> bool {
    LOG_VERIFIED.get() == LogVerified::First
}

pub fn revocation_purge_interval() -> i64 {
    i64::from(REVOCATION_PURGE_INTERVAL.get())
}

pub fn leeway() -> i64 {
    i64::from(LEEWAY.get())
}

pub fn max_token_bytes() -> usize {
    usize::try_from(MAX_TOKEN_BYTES.get()).unwrap_or(0)
}

/// Entries of the shared verification cache (fixed at server start; 0: none).
pub fn shared_cache_size() -> usize {
    usize::try_from(SHARED_CACHE_SIZE.get()).unwrap_or(0)
}

pub fn cache_size() -> usize {
    usize::try_from(CACHE_SIZE.get()).unwrap_or(1).max(1)
}

#[pg_guard]
// SAFETY (for callers): a GUC assign hook; PostgreSQL calls it on the backend's thread.
unsafe extern "C-unwind" fn assign_token(_new: *const c_char, _extra: *mut c_void) {
    crate::generations::token_assigned();
}

#[pg_guard]
// SAFETY (for callers): a GUC assign hook; PostgreSQL calls it on the backend's thread.
unsafe extern "C-unwind" fn assign_config_string(_new: *const c_char, _extra: *mut c_void) {
    crate::generations::config_assigned();
}

#[pg_guard]
// SAFETY (for callers): a GUC assign hook; PostgreSQL calls it on the backend's thread.
unsafe extern "C-unwind" fn assign_config_int(_new: c_int, _extra: *mut c_void) {
    crate::generations::config_assigned();
}

/// Whether a value from `source` ends up in a catalog every role can read: `ALTER DATABASE/ROLE
/// ... SET` and function `SET` clauses are validated as `PGC_S_TEST` and stored in
/// `pg_db_role_setting` / `pg_proc.proconfig`; at session start they are applied as
/// `PGC_S_DATABASE`, `PGC_S_USER` or `PGC_S_DATABASE_USER`.
fn stored_in_readable_catalog(source: pg_sys::GucSource::Type) -> bool {
    use pg_sys::GucSource::{PGC_S_DATABASE, PGC_S_DATABASE_USER, PGC_S_GLOBAL, PGC_S_TEST, PGC_S_USER};
    // PGC_S_GLOBAL: ALTER ROLE ALL SET, applied at session start.
    matches!(
        source,
        PGC_S_TEST | PGC_S_GLOBAL | PGC_S_DATABASE | PGC_S_USER | PGC_S_DATABASE_USER
    )
}

/// The value a string check hook is asked about; empty for NULL (RESET to no value).
///
/// # Safety
/// `newval` is the pointer PostgreSQL passes to a string check hook.
unsafe fn check_hook_value<'a>(newval: *mut *mut c_char) -> &'a [u8] {
    if newval.is_null() || (*newval).is_null() {
        &[]
    } else {
        CStr::from_ptr(*newval).to_bytes()
    }
}

/// `pg_jwt.jwks_uri` must be empty, `discover` or an https URL: refused at SET/ALTER SYSTEM
/// time rather than found by the worker. A URL is hidden (its query string may hold a
/// credential): never stored per database, per role or in a function's `SET` clause, whose
/// values every role can read in `pg_db_role_setting` or `pg_proc` (and a session's value must
/// be the key fetcher's anyway, which reads the server's).
#[pg_guard]
// SAFETY (for callers): a GUC check hook; newval points to PostgreSQL's value (or is null).
unsafe extern "C-unwind" fn check_jwks_uri(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let text = check_hook_value(newval);
    if stored_in_readable_catalog(source) && !text.is_empty() && text != b"discover" {
        set_check_message(
            "pg_jwt: pg_jwt.jwks_uri cannot be stored per database, per role or in a function's SET clause (the value is not shown)",
        );
        set_check_detail("pg_jwt: those values are kept in pg_db_role_setting or pg_proc, which every role can read; a URL may hold a credential.");
        set_check_hint("Set it in postgresql.conf or with ALTER SYSTEM, then reload.");
        return false;
    }
    if text.is_empty() || text == b"discover" || (crate::jwks::http::is_https(text) && text.len() < 1000) {
        return true;
    }
    set_check_message("pg_jwt: pg_jwt.jwks_uri must be an https:// URL (ASCII, under 1000 bytes), 'discover' or empty");
    false
}

/// Refuses a key set that does not import, so a mistake shows at SET / ALTER SYSTEM time
/// (SQLSTATE 22023) and a bad value in a reloaded configuration file is not applied. Refuses a
/// key set holding secrets (`oct` keys) where it would be stored in a catalog other roles can
/// read (see `stored_in_readable_catalog`).
#[pg_guard]
// SAFETY (for callers): a GUC check hook; newval points to PostgreSQL's value (or is null).
unsafe extern "C-unwind" fn check_jwks(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let text = check_hook_value(newval);
    if text.is_empty() {
        return true;
    }
    match KeySet::parse(text) {
        Ok(set) if set.holds_secrets && stored_in_readable_catalog(source) => {
            set_check_message(
                "pg_jwt: a key set with secret (oct) keys cannot be stored per database, per role or in a function's SET clause",
            );
            set_check_detail(
                "pg_jwt: those values are kept in pg_db_role_setting or pg_proc, which every role can read.",
            );
            set_check_hint(
                "Put HMAC key sets in postgresql.conf or set them with ALTER SYSTEM (only the server's owner can read those files); public key sets may be set per database or role.",
            );
            false
        }
        Ok(_) => true,
        Err(e) => {
            // Replace PostgreSQL's default message, which would echo the value (key material).
            set_check_message(
                "pg_jwt: invalid value for parameter \"pg_jwt.jwks\" (the value is not shown: it may hold secrets)",
            );
            set_check_detail(&format!("pg_jwt: {e}"));
            false
        }
    }
}

/// A session signed in with a token (PostgreSQL 18) keeps that token's claims: `pg_jwt.token`
/// holds that token (so that parallel workers, which receive the leader's settings, verify the
/// same one), and setting or resetting it to anything else is refused (42501).
#[pg_guard]
// SAFETY (for callers): a GUC check hook; newval points to PostgreSQL's value (or is null).
unsafe extern "C-unwind" fn check_token(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    if login_token().is_some_and(|login| check_hook_value(newval) != login) {
        pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as c_int);
        set_check_message("pg_jwt: this session signed in with a token; its claims cannot be replaced (pg_jwt.token)");
        return false;
    }
    // A token is a bearer credential: never a default of every session of a database or role
    // (ALTER DATABASE / ALTER ROLE ... SET, which a database owner or the role itself may run),
    // nor of a function (CREATE FUNCTION ... SET): those values are kept in catalogs every role
    // can read, and a session relying on "no token, no claims" would run with someone's claims.
    if stored_in_readable_catalog(source) && !check_hook_value(newval).is_empty() {
        set_check_message(
            "pg_jwt: pg_jwt.token cannot be stored per database, per role or in a function's SET clause (the value is not shown)",
        );
        set_check_detail("pg_jwt: those values are kept in pg_db_role_setting or pg_proc, which every role can read.");
        set_check_hint("Set the token per transaction: SELECT set_config('pg_jwt.token', $1, true).");
        return false;
    }
    true
}

/// Refuses a provider list that does not parse, or in which one `iss` could choose two
/// providers: at ALTER SYSTEM (22023), and at a reload, where the list in force stays and the
/// server log says why. The message never echoes the value (pinned keys may be secrets).
#[pg_guard]
// SAFETY (for callers): a GUC check hook; newval points to PostgreSQL's value (or is null).
unsafe extern "C-unwind" fn check_providers(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    let text = check_hook_value(newval);
    match pg_jwt_core::Providers::parse(text) {
        Ok(_) => true,
        Err(e) => {
            set_check_message(
                "pg_jwt: invalid value for parameter \"pg_jwt.providers\" (the value is not shown: it may hold secrets)",
            );
            set_check_detail(&format!("pg_jwt: {e}"));
            set_check_hint("The provider list in force stays until a valid list is loaded.");
            false
        }
    }
}

/// A palloc'd copy of `msg` for the GUC check-hook message variables.
// SAFETY (for callers): call from a check hook, where palloc in the current context is valid.
unsafe fn check_string(msg: &str) -> *mut c_char {
    let clean: String = msg.chars().filter(|c| *c != '\0').collect();
    match std::ffi::CString::new(clean) {
        Ok(c) => pg_sys::pstrdup(c.as_ptr()),
        Err(_) => null_mut(),
    }
}

/// Sets GUC_check_errmsg (the C macro's effect): the error's message.
// SAFETY (for callers): call from a check hook (PostgreSQL reads the variable after it returns).
unsafe fn set_check_message(msg: &str) {
    pg_sys::GUC_check_errmsg_string = check_string(msg);
}

/// Sets GUC_check_errdetail (the C macro's effect): the error's detail.
// SAFETY (for callers): call from a check hook (PostgreSQL reads the variable after it returns).
unsafe fn set_check_detail(msg: &str) {
    pg_sys::GUC_check_errdetail_string = check_string(msg);
}

/// Sets GUC_check_errhint (the C macro's effect): the error's hint.
// SAFETY (for callers): call from a check hook (PostgreSQL reads the variable after it returns).
unsafe fn set_check_hint(msg: &str) {
    pg_sys::GUC_check_errhint_string = check_string(msg);
}

/// Defines a superuser-only string setting whose changes bump the configuration generation.
///
/// # Safety
/// Call once per name, from `_PG_init`; `check` must be `#[pg_guard]`ed.
unsafe fn define_config_string(
    name: &'static CStr,
    short: &'static CStr,
    setting: &'static StringSetting,
    flags: GucFlags,
    check: pg_sys::GucStringCheckHook,
) {
    GucRegistry::define_string_guc_with_hooks(
        name,
        short,
        c"",
        setting,
        GucContext::Suset,
        flags,
        check,
        Some(assign_config_string),
        None,
    );
}

/// Defines a superuser-only integer setting whose changes bump the configuration generation.
///
/// # Safety
/// Call once per name, from `_PG_init`.
unsafe fn define_config_int(
    name: &'static CStr,
    short: &'static CStr,
    setting: &'static GucSetting<i32>,
    (min, max): (i32, i32),
    flags: GucFlags,
) {
    GucRegistry::define_int_guc_with_hooks(
        name,
        short,
        c"",
        setting,
        min,
        max,
        GucContext::Suset,
        flags,
        None,
        Some(assign_config_int),
        None,
    );
}

/// Defines a setting only the key fetcher reads: server-wide (`postgresql.conf`, `ALTER SYSTEM`,
/// reload), in seconds.
///
/// # Safety
/// Call once per name, from `_PG_init`.
unsafe fn define_worker_int(
    name: &'static CStr,
    short: &'static CStr,
    setting: &'static GucSetting<i32>,
    (min, max): (i32, i32),
) {
    GucRegistry::define_int_guc_with_hooks(
        name,
        short,
        c"",
        setting,
        min,
        max,
        GucContext::Sighup,
        GucFlags::UNIT_S,
        None,
        None,
        None,
    );
}

/// Defines every setting and reserves the `pg_jwt.` prefix (a misspelt setting is an error in
/// `SET`, a WARNING with the line ignored in postgresql.conf).
pub fn init() {
    // SAFETY: a plain read of a backend global, on the only thread.
    PRELOADED.store(
        unsafe { pg_sys::process_shared_preload_libraries_in_progress },
        Ordering::Relaxed,
    );
    // SAFETY: called once from _PG_init; the settings are 'static; every hook is #[pg_guard]ed.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"pg_jwt.token",
            c"The raw JWT of the current user (set with SET LOCAL inside a transaction).",
            c"Only the token: claims are derived by verifying it against pg_jwt.jwks, never taken from any setting.",
            &TOKEN,
            GucContext::Userset,
            GucFlags::NO_SHOW_ALL | GucFlags::DISALLOW_IN_FILE,
            Some(check_token),
            Some(assign_token),
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"pg_jwt.jwks",
            c"The JSON Web Key Set session tokens are verified against.",
            c"A JWKS {\"keys\": [...]} or a single JWK. Superuser only; hidden from non-superusers because HMAC (oct) keys are secrets.",
            &JWKS,
            GucContext::Suset,
            GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
            Some(check_jwks),
            Some(assign_config_string),
            None,
        );
        define_config_string(
            c"pg_jwt.audience",
            c"The audience session tokens must name in aud (empty: tokens must carry no aud).",
            &AUDIENCE,
            GucFlags::empty(),
            None,
        );
        define_config_string(
            c"pg_jwt.issuer",
            c"The issuer session tokens must name in iss (empty: not checked).",
            &ISSUER,
            GucFlags::empty(),
            None,
        );
        define_config_string(
            c"pg_jwt.required_claims",
            c"Comma-separated claims a session token must carry.",
            &REQUIRED_CLAIMS,
            GucFlags::empty(),
            None,
        );
        define_config_string(
            c"pg_jwt.session_claim",
            c"The claim holding the session id that jwt_revoke_session() revokes (sid; Supabase: session_id).",
            &SESSION_CLAIM,
            GucFlags::empty(),
            None,
        );
        define_config_string(
            c"pg_jwt.role_claim",
            c"Where jwt_set_role() finds the role: a top-level claim name, or a JSON Pointer such as /app_metadata/role.",
            &ROLE_CLAIM,
            GucFlags::empty(),
            None,
        );
        define_config_string(
            c"pg_jwt.allowed_roles",
            c"Comma-separated roles jwt_set_role() may switch to (never a superuser or BYPASSRLS role).",
            &ALLOWED_ROLES,
            GucFlags::empty(),
            None,
        );
        define_config_string(
            c"pg_jwt.jwks_uri",
            c"Where the key fetcher gets the identity provider's JWKS: an https URL, or 'discover' (OpenID Connect discovery from pg_jwt.issuer).",
            &JWKS_URI,
            GucFlags::SUPERUSER_ONLY,
            Some(check_jwks_uri),
        );
        GucRegistry::define_string_guc_with_hooks(
            c"pg_jwt.jwks_ca_file",
            c"CA certificates (PEM) the key fetcher trusts instead of the system's.",
            c"",
            &JWKS_CA_FILE,
            GucContext::Sighup,
            GucFlags::empty(),
            None,
            None,
            None,
        );
        define_worker_int(
            c"pg_jwt.revocation_purge_interval",
            c"Interval between two purges of expired revocations by the background worker, in seconds (0: never).",
            &REVOCATION_PURGE_INTERVAL,
            (0, 7 * 86_400),
        );
        define_worker_int(
            c"pg_jwt.jwks_min_refresh",
            c"Shortest interval between two fetches of the JWKS, in seconds.",
            &JWKS_MIN_REFRESH,
            (1, 86_400),
        );
        define_worker_int(
            c"pg_jwt.jwks_max_refresh",
            c"Longest interval between two fetches of the JWKS, in seconds.",
            &JWKS_MAX_REFRESH,
            (1, 7 * 86_400),
        );
        define_worker_int(
            c"pg_jwt.jwks_max_stale",
            c"How long a fetched key set stays in force without a successful fetch, in seconds.",
            &JWKS_MAX_STALE,
            (1, 30 * 86_400),
        );
        GucRegistry::define_int_guc_with_hooks(
            c"pg_jwt.jwks_fetch_wait",
            c"How long a session waits for a refetch after a token names an unknown kid, in milliseconds (0: no wait).",
            c"",
            &JWKS_FETCH_WAIT,
            0,
            60_000,
            GucContext::Suset,
            GucFlags::UNIT_MS,
            None,
            None,
            None,
        );
        define_config_int(
            c"pg_jwt.leeway",
            c"Clock skew tolerated for exp, nbf and iat, in seconds.",
            &LEEWAY,
            (0, MAX_LEEWAY),
            GucFlags::UNIT_S,
        );
        define_config_int(
            c"pg_jwt.max_token_bytes",
            c"Longest session token accepted, in bytes.",
            &MAX_TOKEN_BYTES,
            (256, 1024 * 1024),
            GucFlags::empty(),
        );
        define_config_int(
            c"pg_jwt.cache_size",
            c"Verified tokens kept per backend.",
            &CACHE_SIZE,
            (1, 100_000),
            GucFlags::empty(),
        );
        GucRegistry::define_bool_guc(
            c"pg_jwt.log_refusals",
            c"Write one server-log line per refused token (never the token).",
            c"",
            &LOG_REFUSALS,
            GucContext::Sighup,
            GucFlags::empty(),
        );
        GucRegistry::define_int_guc(
            c"pg_jwt.log_refusals_per_second",
            c"At most this many refused-token lines per second, cluster-wide; the rest are counted.",
            c"",
            &LOG_REFUSALS_PER_SECOND,
            0,
            1_000_000,
            GucContext::Sighup,
            GucFlags::empty(),
        );
        GucRegistry::define_enum_guc(
            c"pg_jwt.log_verified",
            c"first: log a line (provider, sub, jti, sid, exp) whenever a backend starts serving the claims of another token than the one it last logged.",
            c"",
            &LOG_VERIFIED,
            GucContext::Sighup,
            GucFlags::empty(),
        );
        GucRegistry::define_string_guc_with_hooks(
            c"pg_jwt.providers",
            c"Several identity providers: a JSON array of {name, issuer, jwks_uri and/or jwks, audience, algorithms, typ, required_claims, leeway, max_lifetime, claims, identity_claim, allowed_roles, role_claim}.",
            c"The token's iss chooses one provider. Server-wide (postgresql.conf or ALTER SYSTEM, then a reload); hidden because pinned keys may be secrets.",
            &PROVIDERS,
            GucContext::Sighup,
            GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
            Some(check_providers),
            Some(assign_config_string),
            None,
        );
        GucRegistry::define_string_guc(
            c"pg_jwt.oauth_identity_claim",
            c"PostgreSQL 18 sign-in with a token: the claim (or JSON Pointer) that identifies the user (SYSTEM_USER, mapped by pg_ident.conf).",
            c"",
            &OAUTH_IDENTITY_CLAIM,
            GucContext::Sighup,
            GucFlags::empty(),
        );
        // A postmaster setting can only be defined at server start: only when preloaded (without
        // preloading there is no shared memory, and the session path refuses to run anyway).
        if preloaded() {
            define_shared_cache_size();
            define_provider_memory();
        }
        pg_sys::MarkGUCPrefixReserved(c"pg_jwt".as_ptr());
    }
}

/// `pg_jwt.shared_cache_size` (postmaster context).
fn define_shared_cache_size() {
    GucRegistry::define_int_guc(
        c"pg_jwt.shared_cache_size",
        c"Verified tokens kept in shared memory for every backend (entries; 0: none). Needs a restart.",
        c"",
        &SHARED_CACHE_SIZE,
        0,
        4 * 1024 * 1024,
        GucContext::Postmaster,
        GucFlags::empty(),
    );
}

/// `pg_jwt.max_providers` and `pg_jwt.provider_jwks_max_bytes` (postmaster context): the
/// bounded shared memory of listed providers' fetched key sets.
fn define_provider_memory() {
    GucRegistry::define_int_guc(
        c"pg_jwt.max_providers",
        c"Listed providers whose fetched key sets shared memory holds (slots; a provider beyond them fails closed). Needs a restart.",
        c"",
        &MAX_PROVIDERS,
        0,
        pg_jwt_core::provider::MAX_PROVIDERS as i32,
        GucContext::Postmaster,
        GucFlags::empty(),
    );
    GucRegistry::define_int_guc(
        c"pg_jwt.provider_jwks_max_bytes",
        c"The largest fetched key set of a listed provider (a larger one fails closed for that provider). Needs a restart.",
        c"",
        &PROVIDER_JWKS_MAX_BYTES,
        1024,
        crate::jwks::http::MAX_BODY_BYTES as i32,
        GucContext::Postmaster,
        GucFlags::UNIT_BYTE,
    );
}
