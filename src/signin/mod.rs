//! Sign in to PostgreSQL 18 with an access token: pg_jwt as an OAuth validator module
//! (`oauth_validator_libraries = 'pg_jwt'`), with the token's claims in force for the whole
//! session. PostgreSQL 18 only (the `oauth` method of `pg_hba.conf`); nothing here is built for
//! 15 and 16.
//!
//! - `validator.c`: the C glue PostgreSQL calls (the callbacks of libpq/oauth.h and the
//!   `pg_hba.conf` line's `issuer`, `scope` and `delegate_ident_mapping`); it calls
//!   `pg_jwt_signin_validate` here.
//! - At sign-in (before any database is open: no catalog, no table), the token is verified as a
//!   session token is (`session::verify_for_signin`) by the provider whose issuer is the line's
//!   `issuer`, its scopes are checked against the line's `scope`, and the identity is its
//!   identity claim (`pg_jwt.oauth_identity_claim`, or the provider's `identity_claim`). With
//!   `delegate_ident_mapping=1`, pg_jwt decides the role: the token's role claim
//!   (`pg_jwt.role_claim`), listed in `pg_jwt.allowed_roles`.
//! - After sign-in the token is the session's token (`login_token`, which `gucs::token_bytes`
//!   returns before `pg_jwt.token`, which the session may no longer set: 42501). Before every
//!   statement (the planner, `ExecutorStart` and `ProcessUtility` hooks, installed in that backend only) the session's claims are checked
//!   again: expiry, revocation (checked here for the first time: sign-in has no table to read),
//!   and, with delegation, that the role has no superuser, `BYPASSRLS` or server-file privileges
//!   through membership. A failure ends the session (FATAL, 28000). An idle session is ended
//!   when its token expires by a timer (`enable_timeout_at`) that terminates the backend as
//!   `pg_terminate_backend` would.

use crate::{gucs, session};
use pg_jwt_core::Json;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Signed in with `delegate_ident_mapping=1`: the role is checked before the first statement,
/// and again after every change of the settings (a reload may have taken it out of
/// `pg_jwt.allowed_roles`; a membership granted since is seen then too).
static DELEGATED: AtomicBool = AtomicBool::new(false);
/// The configuration generation (plus one; 0: never) the delegated role was last found allowed at.
static ROLE_CHECKED_AT: AtomicU64 = AtomicU64::new(0);

/// A delegated session whose role was not checked under the settings in force.
fn role_unchecked() -> bool {
    DELEGATED.load(Ordering::Acquire)
        && ROLE_CHECKED_AT.load(Ordering::Acquire) != crate::generations::config_generation().wrapping_add(1)
}

fn remember(token: &[u8], delegated: bool) {
    gucs::set_login_token(token);
    DELEGATED.store(delegated, Ordering::Release);
}

extern "C" {
    /// validator.c: the validator's callbacks.
    fn pg_jwt_oauth_callbacks() -> *const c_void;
}

/// PostgreSQL 18 calls this when `oauth_validator_libraries` names pg_jwt.
#[no_mangle]
pub extern "C" fn _PG_oauth_validator_module_init() -> *const c_void {
    // SAFETY: returns the address of a static struct in validator.c.
    unsafe { pg_jwt_oauth_callbacks() }
}

/// One line in the server log for a refused sign-in: the reason, never the token.
fn refuse(reason: &str) -> bool {
    log!("pg_jwt: sign-in refused: {reason}");
    false
}

/// Text of a C string argument (NULL or invalid UTF-8: None).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn text<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        CStr::from_ptr(p).to_str().ok()
    }
}

/// The scopes a token grants: `scope` (space-separated, RFC 8693/9068) or `scp` (a string or an
/// array of strings, as Entra ID and Okta write it).
fn granted_scopes(claims: &Json) -> Vec<&str> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Json::String(s)) => out.extend(s.split_ascii_whitespace()),
            Some(Json::Array(items)) => out.extend(items.iter().filter_map(Json::as_str)),
            _ => {}
        }
    }
    out
}

/// Called by validator.c for each sign-in with a bearer token. True: the bearer may connect
/// (PostgreSQL then maps `*authn_id` through pg_ident.conf, unless delegated).
///
/// # Safety
/// Called by PostgreSQL's OAuth code (through validator.c) with NUL-terminated strings or NULL,
/// and `authn_id` a valid pointer.
#[no_mangle]
#[pg_guard]
// SAFETY (for callers): only validator.c calls it, from PostgreSQL's validate callback, with the
// callback's own arguments (NUL-terminated strings or NULL) and the address of its local
// `authn_id`; every pointer is checked for NULL before it is read.
pub unsafe extern "C-unwind" fn pg_jwt_signin_validate(
    token: *const c_char,
    role: *const c_char,
    issuer: *const c_char,
    scope: *const c_char,
    delegated: bool,
    authn_id: *mut *mut c_char,
) -> bool {
    if !gucs::preloaded() {
        return refuse("pg_jwt is not in shared_preload_libraries");
    }
    let token = if token.is_null() {
        &[][..]
    } else {
        CStr::from_ptr(token).to_bytes()
    };
    let Some(issuer) = text(issuer).filter(|i| !i.is_empty()) else {
        return refuse("the pg_hba.conf line has no issuer");
    };
    let verified = match session::verify_for_signin(token, issuer) {
        Ok(v) => v,
        Err(reason) => return refuse(&reason),
    };
    let Ok(claims) = verified.claims.tree() else {
        return refuse("the token's claims could not be read");
    };
    // Each scope of the pg_hba.conf line must be granted.
    let granted = granted_scopes(claims);
    if !scope.is_null() && text(scope).is_none() {
        return refuse("the pg_hba.conf line's scope is not UTF-8");
    }
    if let Some(missing) = text(scope)
        .unwrap_or_default()
        .split_ascii_whitespace()
        .find(|s| !granted.contains(s))
    {
        return refuse(&format!(
            "the token does not grant the scope \"{}\" the pg_hba.conf line requires (provider {})",
            pg_jwt_core::error::printable(missing),
            verified.provider
        ));
    }
    // The identity PostgreSQL maps (SYSTEM_USER).
    let identity_claim = verified
        .identity_claim
        .clone()
        .unwrap_or_else(gucs::oauth_identity_claim);
    let identity = crate::roles::claim_at(claims, &identity_claim).and_then(Json::as_str);
    let Some(identity) = identity.filter(|i| !i.is_empty()) else {
        return refuse(&format!(
            "the token has no string claim {identity_claim} (pg_jwt.oauth_identity_claim) to identify the user (provider {})",
            verified.provider
        ));
    };
    if let Ok(c) = CString::new(identity) {
        *authn_id = pg_sys::pstrdup(c.as_ptr());
    }
    if delegated {
        // pg_jwt decides the role: the token's role claim, listed in pg_jwt.allowed_roles (a
        // listed provider's: its own role_claim and allowed_roles). Its privileges through
        // membership are checked before the first statement (no catalog is open yet; a
        // forbidden role ends the session there).
        let requested = text(role).unwrap_or_default();
        let rules = crate::roles::role_rules(&verified.provider);
        let named = crate::roles::claim_at(claims, &rules.claim).and_then(Json::as_str);
        if named != Some(requested) {
            return refuse(
                "the requested role is not the token's role claim (pg_jwt.role_claim, or its provider's role_claim)",
            );
        }
        if !rules.allowed.iter().any(|r| r == requested) {
            return refuse(&format!("the requested role is not in {}", rules.source));
        }
        // Its own attributes now (pg_authid is a shared catalog, read through the syscache as
        // password authentication reads it), before anything the session could run; its
        // memberships before its first statement (`enforce`).
        if let Ok(name) = CString::new(requested) {
            let oid = pg_sys::get_role_oid(name.as_ptr(), true);
            if oid == pg_sys::InvalidOid {
                return refuse("the requested role does not exist");
            }
            if pg_sys::superuser_arg(oid)
                || pg_sys::has_bypassrls_privilege(oid)
                || pg_sys::has_rolreplication(oid)
                || pg_sys::has_createrole_privilege(oid)
            {
                return refuse("the requested role is a superuser, or has BYPASSRLS, REPLICATION or CREATEROLE");
            }
        }
    }
    // Accepted: counted once, here (the session's own verifications of this token are not
    // counted again: `session`).
    crate::stats::count(crate::stats::row_of(&verified.provider), crate::stats::ACCEPTED);
    remember(token, delegated);
    install_hooks();
    // pg_jwt.token holds it too, for the session's parallel workers (which receive the leader's
    // settings, not its memory); the check hook refuses any other value from now on.
    if let Ok(value) = CString::new(token) {
        pg_sys::set_config_option(
            c"pg_jwt.token".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            // The client's priority (as a connection option): the token is also the value
            // RESET, RESET ALL and DISCARD ALL return to; a later SET goes through the check
            // hook (42501), and per-database or per-role settings of lower priority are ignored.
            pg_sys::GucSource::PGC_S_CLIENT,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            pgrx::PgLogLevel::WARNING as i32,
            false,
        );
    }
    let until = verified.times.window(verified.leeway).until;
    arm_idle_end(until);
    true
}

/// Before every statement of a signed-in session: its claims are still good (expiry and
/// revocation are checked by the session path), and a delegated role is still allowed; else
/// the session ends.
fn enforce() {
    if gucs::login_token().is_none() || session::busy() || ENFORCING.swap(true, Ordering::AcqRel) {
        // Not signed in with a token; or a query pg_jwt itself runs (the revocation lookup, the
        // role check) while it verifies or enforces: the outer check covers it.
        return;
    }
    let _reset = ResetOnDrop;
    let provider = match session::current_claims() {
        Ok(Some(claims)) => {
            arm_idle_end(claims.times.window(claims.leeway).until);
            claims.provider.clone()
        }
        Ok(None) => end_session("the session's token is missing"),
        Err(report) => end_session(&match report.detail() {
            Some(d) => format!("{}: {d}", report.message()),
            None => report.message().to_owned(),
        }),
    };
    if role_unchecked() {
        // Read before the checks: a change meanwhile makes the next statement check again.
        let at = crate::generations::config_generation().wrapping_add(1);
        // SAFETY: inside a transaction (a statement is starting).
        let user = unsafe { pg_sys::GetSessionUserId() };
        // SAFETY: as above; NULL (noerr) when the role no longer exists.
        let name = unsafe { pg_sys::GetUserNameFromId(user, true) };
        let rules = crate::roles::role_rules(&provider);
        let listed = !name.is_null() && {
            // SAFETY: a NUL-terminated name PostgreSQL made (not null: checked above).
            let name = unsafe { CStr::from_ptr(name) }.to_bytes();
            rules.allowed.iter().any(|r| r.as_bytes() == name)
        };
        if !listed {
            end_session(&format!("the session's role is no longer in {}", rules.source));
        }
        match crate::roles::forbidden_role(user) {
            Ok(None) => ROLE_CHECKED_AT.store(at, Ordering::Release),
            Ok(Some(why)) => end_session(why.reason()),
            Err(_) => end_session("the role's privileges could not be checked"),
        }
    }
}

/// Set while `enforce` runs (its own queries start executors too).
static ENFORCING: AtomicBool = AtomicBool::new(false);

struct ResetOnDrop;

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        ENFORCING.store(false, Ordering::Release);
    }
}

/// Ends the session: FATAL, SQLSTATE 28000 (the client sees why; the log has the line).
fn end_session(why: &str) -> ! {
    let message = format!("pg_jwt: the session's token is no longer accepted: {why}");
    pgrx::ereport!(
        PgLogLevel::FATAL,
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        message
    );
    unreachable!("FATAL does not return")
}

// SAFETY (of the declarations): the signatures of utils/timeout.h (as in `expiry`).
extern "C-unwind" {
    fn RegisterTimeout(id: c_int, handler: Option<unsafe extern "C" fn()>) -> c_int;
    fn enable_timeout_at(id: c_int, fin_time: i64);
    fn get_timeout_active(id: c_int) -> bool;
}

/// `USER_TIMEOUT` in PostgreSQL 18's `enum TimeoutId`.
const USER_TIMEOUT: c_int = 13;
static TIMER: AtomicUsize = AtomicUsize::new(0);
/// The end of the token's validity window the timer is for (f64 bits; 0: none).
static IDLE_END: AtomicU64 = AtomicU64::new(0);

/// The idle timer's handler (a signal handler): ends the backend as `pg_terminate_backend`
/// does, by the same flags `die()` sets (async-signal-safe: plain stores and a latch).
// SAFETY (for callers): PostgreSQL's timeout signal handler calls it.
unsafe extern "C" fn on_token_end() {
    // SAFETY: the backend's own flags and latch, as die() sets them from a signal handler.
    unsafe {
        pg_sys::InterruptPending = 1;
        pg_sys::ProcDiePending = 1;
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
}

/// Arms (or re-arms, after error recovery disabled it) the timer that ends an idle session
/// when its token expires (`until`: Unix seconds, the end of its validity window).
fn arm_idle_end(until: f64) {
    if !until.is_finite() {
        return;
    }
    IDLE_END.store(until.to_bits(), Ordering::Release);
    let mut id = TIMER.load(Ordering::Relaxed) as c_int;
    if id == 0 {
        // SAFETY: a backend with timeouts initialized (sign-in or a statement); the handler is
        // async-signal-safe.
        id = unsafe { RegisterTimeout(USER_TIMEOUT, Some(on_token_end)) };
        TIMER.store(id as usize, Ordering::Relaxed);
    }
    // SAFETY: `id` came from RegisterTimeout in this process.
    if unsafe { get_timeout_active(id) } {
        return;
    }
    let at = ((until - crate::clock::POSTGRES_EPOCH_UNIX as f64) * 1_000_000.0) as i64;
    // SAFETY: as above.
    unsafe { enable_timeout_at(id, at) };
}

static HOOKED: AtomicBool = AtomicBool::new(false);
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut PREV_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;

/// `enforce`, under pgrx's guard (its errors, FATAL included, become PostgreSQL's).
#[pg_guard]
extern "C-unwind" fn enforce_guarded() {
    enforce();
}

// The hooks themselves are not guarded: an error of the statement (PostgreSQL's longjmp) passes
// through their frames, which own nothing to drop, unchanged; only `enforce_guarded` runs Rust.
// The standard functions are declared here, not taken from pgrx's bindings, whose wrappers
// would turn such an error into a Rust panic in an unguarded frame.
extern "C-unwind" {
    #[link_name = "standard_planner"]
    fn raw_standard_planner(
        parse: *mut pg_sys::Query,
        query: *const c_char,
        cursor_options: c_int,
        params: pg_sys::ParamListInfo,
    ) -> *mut pg_sys::PlannedStmt;
    #[link_name = "standard_ExecutorStart"]
    fn raw_standard_executor_start(query: *mut pg_sys::QueryDesc, eflags: c_int);
    #[link_name = "standard_ProcessUtility"]
    fn raw_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query: *const c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

// SAFETY (for callers): installed as planner_hook. Planning may evaluate the claim accessors of
// a policy (selectivity estimates fold stable functions): the check comes first.
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query: *const c_char,
    cursor_options: c_int,
    params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    enforce_guarded();
    // SAFETY: as in executor_start.
    unsafe {
        match PREV_PLANNER {
            Some(prev) => prev(parse, query, cursor_options, params),
            None => raw_standard_planner(parse, query, cursor_options, params),
        }
    }
}

// SAFETY (for callers): installed as ExecutorStart_hook.
unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: c_int) {
    enforce_guarded();
    // SAFETY: the previous hook (or the standard function) with PostgreSQL's arguments; this
    // frame owns nothing with a destructor, so an error's longjmp may pass it.
    unsafe {
        match PREV_EXECUTOR_START {
            Some(prev) => prev(query, eflags),
            None => raw_standard_executor_start(query, eflags),
        }
    }
}

#[allow(clippy::too_many_arguments)]
// SAFETY (for callers): installed as ProcessUtility_hook.
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // Transaction control and SET take no snapshot and read nothing pg_jwt guards; checking there
    // would take the transaction's snapshot before `BEGIN ISOLATION LEVEL ...` or
    // `SET TRANSACTION ...` may set it. The next statement checks. Except what a role can do
    // with them alone: COMMIT/ROLLBACK PREPARED (another user's prepared transaction, once the
    // role is a superuser's member), and SET ROLE / SET SESSION AUTHORIZATION while a delegated
    // role's memberships are not checked yet (into a superuser it is a member of).
    // SAFETY: pstmt is PostgreSQL's planned utility statement for this call.
    let node = unsafe { pstmt.as_ref().map(|p| p.utilityStmt).filter(|n| !n.is_null()) };
    // SAFETY: a node PostgreSQL made for this statement, read as the type its tag says.
    let unchecked = node.is_some_and(|n| unsafe { needs_no_check(n) });
    if !unchecked {
        enforce_guarded();
    }
    // SAFETY: as in executor_start.
    unsafe {
        match PREV_PROCESS_UTILITY {
            Some(prev) => prev(pstmt, query, read_only_tree, context, params, env, dest, qc),
            None => raw_standard_process_utility(pstmt, query, read_only_tree, context, params, env, dest, qc),
        }
    }
}

// A function about to run: a fast-path call (the protocol's FunctionCall message, as libpq's PQfn
// and large-object calls send it) runs a function with no statement, so no planner, executor or
// utility hook sees it; PostgreSQL reports it here, after its permission check and before the
// call. Executors report each function they set up here too, in a statement the hooks above
// checked: `enforce` is then usually the session's cached claims (a transaction that changed
// revocations, or parallel mode, looks revocation up again each time). With an object-access
// hook installed, PostgreSQL 17 and later also recompute the search path at each lookup instead
// of caching it: costs of a signed-in session only.
// SAFETY (for callers): installed as object_access_hook; PostgreSQL calls it with its own arguments.
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: c_int,
    arg: *mut c_void,
) {
    if access == pg_sys::ObjectAccessType::OAT_FUNCTION_EXECUTE {
        enforce_guarded();
    }
    // SAFETY: as in executor_start.
    unsafe {
        if let Some(prev) = PREV_OBJECT_ACCESS {
            prev(access, class_id, object_id, sub_id, arg);
        }
    }
}

/// Whether utility statement `node` may run without `enforce` (see `process_utility`).
///
/// # Safety
/// `node` must point to a valid parse node.
unsafe fn needs_no_check(node: *mut pg_sys::Node) -> bool {
    match (*node).type_ {
        pg_sys::NodeTag::T_TransactionStmt => !matches!(
            (*node.cast::<pg_sys::TransactionStmt>()).kind,
            pg_sys::TransactionStmtKind::TRANS_STMT_COMMIT_PREPARED
                | pg_sys::TransactionStmtKind::TRANS_STMT_ROLLBACK_PREPARED
        ),
        pg_sys::NodeTag::T_VariableSetStmt => {
            let name = (*node.cast::<pg_sys::VariableSetStmt>()).name;
            let role = !name.is_null() && matches!(CStr::from_ptr(name).to_bytes(), b"role" | b"session_authorization");
            !(role && role_unchecked())
        }
        _ => false,
    }
}

/// Error recovery disables every timeout (`disable_all_timeouts`) before it aborts the
/// transaction (or, inside a savepoint, only the subtransaction): the abort re-arms the idle
/// timer, so an idle session whose last statement failed still ends at its token's expiry.
#[pg_guard]
// SAFETY (for callers): registered with RegisterXactCallback; PostgreSQL calls it in this backend.
unsafe extern "C-unwind" fn on_transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT {
        rearm_idle_end();
    }
}

/// A subtransaction's abort: see `on_transaction_event` (`BEGIN; SAVEPOINT s; SELECT 1/0;`
/// aborts only the subtransaction, after the timeouts were disabled).
#[pg_guard]
// SAFETY (for callers): registered with RegisterSubXactCallback; PostgreSQL calls it in this
// backend.
unsafe extern "C-unwind" fn on_subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    _sub: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        rearm_idle_end();
    }
}

fn rearm_idle_end() {
    if IDLE_END.load(Ordering::Acquire) != 0 {
        arm_idle_end(f64::from_bits(IDLE_END.load(Ordering::Acquire)));
    }
}

/// Installs the statement hooks (and the function-execution hook, for fast-path calls) in this
/// backend, once it signed in with a token (sessions that did not never run them).
fn install_hooks() {
    if HOOKED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: callbacks of this backend, registered once.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_transaction_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subtransaction_event), std::ptr::null_mut());
    }
    // SAFETY: in this backend, during its sign-in, before any statement; the previous hooks are
    // kept and called.
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        PREV_OBJECT_ACCESS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access);
    }
}
