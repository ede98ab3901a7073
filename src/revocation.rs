//! Revocation: a denylist in the extension's table `jwt_revocations` (durable, transactional,
//! replicated), consulted once per token per change of the list, never per row.
//!
//! - A statement-level trigger on the table marks the transaction; at commit a transaction
//!   callback bumps the shared generation (`shared::bump_keys_generation`), which every backend
//!   compares on its per-row path: their cached verifications are void at the next access, and
//!   each token is verified again, revocation check included. A rolled-back revocation bumps
//!   nothing. A transaction that changes revocations cannot be prepared (two-phase commit would
//!   make it visible without the bump): it is refused at PREPARE.
//! - The check reads the table with the latest committed snapshot (not the statement's, which
//!   in REPEATABLE READ could predate the revocation), as the extension's owner (the application
//!   role has no privilege on the table), through one prepared, index-backed query.
//! - On a hot standby the primary's commits are replayed without this backend's callback; the
//!   key fetcher bumps the generation there whenever replay has advanced (see `worker`).

use crate::errors;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::{c_void, CString};

/// What a verified token is checked against: its claims in the database encoding (the encoding
/// the revoking functions stored their arguments in). A claim the database encoding cannot
/// represent is `None`: no row of the table can hold it.
pub struct Identity<'a> {
    pub jti: Option<std::borrow::Cow<'a, [u8]>>,
    pub sub: Option<std::borrow::Cow<'a, [u8]>>,
    pub sid: Option<std::borrow::Cow<'a, [u8]>>,
    /// `iat` in Unix seconds, if present.
    pub iat: Option<f64>,
}

thread_local! {
    /// The prepared lookup (kept for the backend's life), or null before the first use.
    static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    /// `schema.jwt_revocations`, quoted, once known.
    static TABLE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// Whether the table exists in this database (an extension still at 0.1.0 has none).
    static TABLE_PRESENT: Cell<Option<bool>> = const { Cell::new(None) };
    /// The current transaction changed revocations.
    static DIRTY: Cell<bool> = const { Cell::new(false) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// (shared generation, whether the list was empty) as last probed with the latest snapshot.
    /// Any change of the list bumps the generation, so while it stays, an empty list needs no
    /// lookup and a non-empty one needs no second probe.
    static PROBED: Cell<Option<(u64, bool)>> = const { Cell::new(None) };
}

const SCHEMA_QUERY: &str = "SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e \
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
     JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid \
     AND c.relname OPERATOR(pg_catalog.=) 'jwt_revocations' \
     WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt'";

/// Runs `f` inside SPI as the bootstrap superuser in a security-restricted operation, then
/// restores the user. Errors propagate as PostgreSQL errors (SPI and the user are restored by
/// transaction abort).
///
/// # Safety
/// Call inside a transaction, from a SQL function.
unsafe fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let mut saved_user: pg_sys::Oid = pg_sys::InvalidOid;
    let mut saved_context: i32 = 0;
    pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
    pg_sys::SetUserIdAndSecContext(
        pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
        saved_context | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32,
    );
    pg_sys::SPI_connect();
    let result = f();
    pg_sys::SPI_finish();
    pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
    result
}

/// The prepared lookup, or None when the table does not exist (an extension not updated yet).
///
/// # Safety
/// Inside `as_owner`.
unsafe fn plan() -> Option<pg_sys::SPIPlanPtr> {
    let plan = PLAN.with(Cell::get);
    if !plan.is_null() {
        return Some(plan);
    }
    if TABLE_PRESENT.with(Cell::get) == Some(false) {
        return None;
    }
    let q = CString::new(SCHEMA_QUERY).ok()?;
    pg_sys::SPI_execute(q.as_ptr(), true, 1);
    if pg_sys::SPI_processed != 1 {
        TABLE_PRESENT.with(|c| c.set(Some(false)));
        return None;
    }
    let tuptable = pg_sys::SPI_tuptable;
    let value = pg_sys::SPI_getvalue(*(*tuptable).vals, (*tuptable).tupdesc, 1);
    let schema = std::ffi::CStr::from_ptr(value).to_string_lossy().into_owned();
    TABLE_PRESENT.with(|c| c.set(Some(true)));
    TABLE.with(|t| *t.borrow_mut() = format!("{schema}.jwt_revocations"));
    // jti / sid match exactly; a subject is revoked for tokens issued before issued_before (a
    // token without iat counts as issued before anything).
    let sql = format!(
        "SELECT 1 FROM {schema}.jwt_revocations WHERE \
         (kind OPERATOR(pg_catalog.=) 'jti' AND value OPERATOR(pg_catalog.=) $1) \
         OR (kind OPERATOR(pg_catalog.=) 'sid' AND value OPERATOR(pg_catalog.=) $2) \
         OR (kind OPERATOR(pg_catalog.=) 'sub' AND value OPERATOR(pg_catalog.=) $3 \
             AND ($4 IS NULL OR pg_catalog.to_timestamp($4) OPERATOR(pg_catalog.<) issued_before)) \
         LIMIT 1"
    );
    let sql = CString::new(sql).ok()?;
    let mut types = [pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::FLOAT8OID];
    let plan = pg_sys::SPI_prepare(sql.as_ptr(), 4, types.as_mut_ptr());
    if plan.is_null() {
        return None;
    }
    pg_sys::SPI_keepplan(plan);
    PLAN.with(|c| c.set(plan));
    Some(plan)
}

fn table_name() -> String {
    TABLE.with(|t| t.borrow().clone())
}

fn text_or_null(v: Option<&[u8]>) -> (pg_sys::Datum, std::ffi::c_char) {
    match v {
        // SAFETY: cstring_to_text_with_len copies len bytes into a palloc'd text.
        Some(s) => (
            pg_sys::Datum::from(unsafe { pg_sys::cstring_to_text_with_len(s.as_ptr().cast(), s.len() as i32) }),
            b' ' as std::ffi::c_char,
        ),
        None => (pg_sys::Datum::from(0usize), b'n' as std::ffi::c_char),
    }
}

/// The answer of one lookup.
pub struct Lookup {
    pub revoked: bool,
    /// Whether the lookup saw the latest committed list. In parallel mode (a parallel worker,
    /// or a leader while its workers run) PostgreSQL allows no new snapshot, so the statement's
    /// snapshot is used: correct for this statement, but too old to cache beyond it (in
    /// REPEATABLE READ it could predate a revocation the generation already announced).
    pub fresh: bool,
}

/// Whether the token is revoked. Identities are the token's own (UTF-8) claims; the table
/// stores what the revoking functions were given, in the database encoding (ASCII in practice:
/// ids and subjects). `generation` is the shared generation the caller read before this call
/// (and caches its result under).
pub fn is_revoked(who: &Identity<'_>, generation: u64) -> Result<Lookup, ErrorReport> {
    if who.jti.is_none() && who.sub.is_none() && who.sid.is_none() {
        return Ok(Lookup {
            revoked: false,
            fresh: true,
        });
    }
    let probed = PROBED.with(Cell::get);
    if probed == Some((generation, true)) {
        // Seen empty at this generation: a revocation committed since would have bumped it.
        return Ok(Lookup {
            revoked: false,
            fresh: true,
        });
    }
    // SAFETY: a plain read of backend state.
    let parallel = unsafe { pg_sys::IsInParallelMode() };
    // SAFETY: called from a SQL function inside a transaction; as_owner restores the user and
    // SPI on the normal path, and transaction abort restores both on an error.
    unsafe {
        as_owner(|| {
            let Some(plan) = plan() else {
                return Ok(Lookup {
                    revoked: false,
                    fresh: true,
                });
            };
            let (jti, jti_null) = text_or_null(who.jti.as_deref());
            let (sid, sid_null) = text_or_null(who.sid.as_deref());
            let (sub, sub_null) = text_or_null(who.sub.as_deref());
            let (iat, iat_null) = match who.iat {
                Some(t) => (pg_sys::Datum::from(t.to_bits()), b' ' as std::ffi::c_char),
                None => (pg_sys::Datum::from(0usize), b'n' as std::ffi::c_char),
            };
            if !parallel && probed.map(|(g, _)| g) != Some(generation) {
                // An empty list (the common case) costs one probe per generation, not one per
                // token. The snapshot is taken after the caller read the generation, so a
                // revocation this probe misses bumps the generation after it.
                let probe = CString::new(format!("SELECT 1 FROM {} LIMIT 1", table_name())).ok();
                if let Some(probe) = probe {
                    if pg_sys::SPI_execute_snapshot(
                        pg_sys::SPI_prepare(probe.as_ptr(), 0, std::ptr::null_mut()),
                        std::ptr::null_mut(),
                        std::ptr::null(),
                        pg_sys::GetLatestSnapshot(),
                        std::ptr::null_mut(),
                        true,
                        false,
                        1,
                    ) == pg_sys::SPI_OK_SELECT as i32
                    {
                        let empty = pg_sys::SPI_processed == 0;
                        PROBED.with(|c| c.set(Some((generation, empty))));
                        if empty {
                            return Ok(Lookup {
                                revoked: false,
                                fresh: true,
                            });
                        }
                    }
                }
            }
            let mut values = [jti, sid, sub, iat];
            let nulls = [jti_null, sid_null, sub_null, iat_null];
            let rc = pg_sys::SPI_execute_snapshot(
                plan,
                values.as_mut_ptr(),
                nulls.as_ptr(),
                if parallel {
                    pg_sys::GetActiveSnapshot()
                } else {
                    pg_sys::GetLatestSnapshot()
                },
                std::ptr::null_mut(),
                true,
                false,
                1,
            );
            if rc != pg_sys::SPI_OK_SELECT as i32 {
                return Err(errors::internal("the revocation lookup failed"));
            }
            Ok(Lookup {
                revoked: pg_sys::SPI_processed > 0,
                fresh: !parallel,
            })
        })
    }
}

#[pg_guard]
// SAFETY (for callers): registered with RegisterXactCallback; PostgreSQL calls it on this backend's thread.
unsafe extern "C-unwind" fn on_transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT => {
            if DIRTY.with(|d| d.replace(false)) {
                crate::shared::bump_keys_generation();
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => DIRTY.with(|d| d.set(false)),
        XACT_EVENT_PRE_PREPARE => {
            if DIRTY.with(Cell::get) {
                pgrx::error!(
                    "pg_jwt: a transaction that changes jwt_revocations cannot be prepared (two-phase commit)"
                );
            }
        }
        _ => {}
    }
}

crate::fmgr::v1_function! {
    /// The statement-level trigger on `jwt_revocations`: marks the transaction so that its commit
    /// voids every backend's cached verifications.
    fn pg_jwt_revocations_changed / pg_finfo_pg_jwt_revocations_changed(_fcinfo) {
        if !crate::gucs::preloaded() {
            return Err(errors::not_preloaded());
        }
        if !CALLBACK_REGISTERED.with(|c| c.replace(true)) {
            pg_sys::RegisterXactCallback(Some(on_transaction_event), std::ptr::null_mut());
        }
        DIRTY.with(|d| d.set(true));
        Ok(pg_sys::Datum::from(0usize))
    }
}

extension_sql!(
    r#"
-- Revocation (src/revocation.rs): the denylist, its trigger and the functions that fill it.
CREATE TABLE jwt_revocations (
    kind text NOT NULL CHECK (kind IN ('jti', 'sub', 'sid')),
    value text NOT NULL,
    issued_before timestamptz,
    expires timestamptz,
    revoked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    revoked_by name NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (kind, value),
    CHECK ((kind = 'sub') = (issued_before IS NOT NULL))
);
COMMENT ON TABLE jwt_revocations IS 'Revoked tokens (by jti), sessions (by sid) and subjects (tokens issued before issued_before); kept until expires (NULL: until removed)';
REVOKE ALL ON jwt_revocations FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('jwt_revocations', '');
CREATE FUNCTION pg_jwt_revocations_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_revocations_changed';
REVOKE ALL ON FUNCTION pg_jwt_revocations_changed() FROM PUBLIC;
CREATE TRIGGER jwt_revocations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jwt_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION pg_jwt_revocations_changed();

CREATE FUNCTION jwt_revoke_token(jti text, expires timestamptz) RETURNS void
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    AS $$ INSERT INTO @extschema@.jwt_revocations (kind, value, expires) VALUES ('jti', jti, expires)
          ON CONFLICT (kind, value) DO UPDATE
          SET expires = GREATEST(jwt_revocations.expires, excluded.expires),
              revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER $$;
COMMENT ON FUNCTION jwt_revoke_token(text, timestamptz) IS 'Revoke the token with this jti until expires (its exp)';

CREATE FUNCTION jwt_revoke_session(sid text, expires timestamptz) RETURNS void
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    AS $$ INSERT INTO @extschema@.jwt_revocations (kind, value, expires) VALUES ('sid', sid, expires)
          ON CONFLICT (kind, value) DO UPDATE
          SET expires = GREATEST(jwt_revocations.expires, excluded.expires),
              revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER $$;
COMMENT ON FUNCTION jwt_revoke_session(text, timestamptz) IS 'Revoke every token of this session id (claim pg_jwt.session_claim) until expires';

CREATE FUNCTION jwt_revoke_subject(sub text, issued_before timestamptz DEFAULT pg_catalog.now(),
                                   expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ INSERT INTO @extschema@.jwt_revocations (kind, value, issued_before, expires)
          SELECT 'sub', sub, issued_before, expires WHERE sub IS NOT NULL AND issued_before IS NOT NULL
          ON CONFLICT (kind, value) DO UPDATE
          SET issued_before = GREATEST(jwt_revocations.issued_before, excluded.issued_before),
              expires = CASE WHEN jwt_revocations.expires IS NULL OR excluded.expires IS NULL THEN NULL
                             ELSE GREATEST(jwt_revocations.expires, excluded.expires) END,
              revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER $$;
COMMENT ON FUNCTION jwt_revoke_subject(text, timestamptz, timestamptz) IS 'Log out everywhere: revoke every token of this subject issued before issued_before (tokens without iat included); kept until expires (NULL: until removed)';

CREATE FUNCTION jwt_unrevoke(kind text, value text) RETURNS boolean
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
    AS $$ WITH gone AS (DELETE FROM @extschema@.jwt_revocations r WHERE r.kind = $1 AND r.value = $2 RETURNING 1)
          SELECT pg_catalog.count(*) > 0 FROM gone $$;
COMMENT ON FUNCTION jwt_unrevoke(text, text) IS 'Undo a revocation (kind jti, sid or sub); true if there was one';

CREATE FUNCTION jwt_purge_revocations() RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    AS $$ WITH gone AS (DELETE FROM @extschema@.jwt_revocations
                        WHERE expires OPERATOR(pg_catalog.<) (pg_catalog.now()
                              OPERATOR(pg_catalog.-) pg_catalog.current_setting('pg_jwt.leeway')::interval)
                        RETURNING 1)
          SELECT pg_catalog.count(*) FROM gone $$;
COMMENT ON FUNCTION jwt_purge_revocations() IS 'Delete revocations whose tokens have expired anyway (expires plus pg_jwt.leeway in the past); returns how many';

REVOKE ALL ON FUNCTION jwt_revoke_token(text, timestamptz), jwt_revoke_session(text, timestamptz),
    jwt_revoke_subject(text, timestamptz, timestamptz), jwt_unrevoke(text, text), jwt_purge_revocations() FROM PUBLIC;
"#,
    name = "revocation"
);
