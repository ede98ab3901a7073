//! `jwt_set_role()`: `SET LOCAL ROLE` to the role a verified claim names, allow-listed.
//!
//! The role comes from `pg_jwt.role_claim` of the verified session token (a top-level claim, or
//! a JSON Pointer such as `/app_metadata/role`), must be listed in `pg_jwt.allowed_roles`
//! (superuser-set; a listed provider's tokens: its own `role_claim` and `allowed_roles`,
//! `role_rules`), must exist, must be neither a superuser nor `BYPASSRLS` nor have the
//! privileges of one, or of the database's owner, through membership (whatever the list says),
//! and the session user must be
//! a member of it (PostgreSQL's own rule for `SET ROLE`). A role that is a member of a table's
//! owner still bypasses that table's policies unless the table has FORCE ROW LEVEL SECURITY
//! (PostgreSQL's rule; the README says so).
//! Otherwise `42501` with the reason, never the claim's value. The role is set with
//! `GUC_ACTION_LOCAL`: it ends with the transaction (safe behind a transaction pooler).

use crate::fmgr::v1_function;
use crate::{errors, gucs, session};
use pg_jwt_core::Json;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::ffi::CString;

/// Which roles a verified token of `provider` may switch to, and where it names its role.
pub(crate) struct RoleRules {
    pub allowed: Vec<String>,
    pub claim: String,
    /// Where `allowed` comes from, for messages: the setting, or the provider's member.
    pub source: &'static str,
}

/// The role rules of `provider` (the verified claims' provider): `pg_jwt.allowed_roles` and
/// `pg_jwt.role_claim` for the provider `default`; a listed provider's own `allowed_roles`
/// (none when it has none: one provider's tokens never choose among the roles listed for
/// another's users) and `role_claim`. A provider no longer listed has none (fail closed).
pub(crate) fn role_rules(provider: &str) -> RoleRules {
    if provider == pg_jwt_core::provider::DEFAULT_NAME {
        return RoleRules {
            allowed: gucs::allowed_roles(),
            claim: gucs::role_claim(),
            source: "pg_jwt.allowed_roles",
        };
    }
    let list = crate::providers::list();
    let p = list.by_name(provider);
    RoleRules {
        allowed: p.map(|p| p.allowed_roles.clone()).unwrap_or_default(),
        claim: p.and_then(|p| p.role_claim.clone()).unwrap_or_else(gucs::role_claim),
        source: "the allowed_roles of the token's provider (pg_jwt.providers)",
    }
}

/// The value at `pointer` (RFC 6901) or at the top-level claim `name`.
pub(crate) fn claim_at<'a>(claims: &'a Json, where_: &str) -> Option<&'a Json> {
    if !where_.starts_with('/') {
        return claims.get(where_);
    }
    let mut v = claims;
    for raw in where_.split('/').skip(1) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        v = match v {
            Json::Object(_) => v.get(&key)?,
            Json::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Whether `role` is a member, directly or through any chain, inherited or not, of a
/// superuser, `BYPASSRLS` or `REPLICATION` role or a server-file role (`pg_has_role(...,
/// 'MEMBER')`), which `superuser_arg` and `has_bypassrls_privilege` (the role's own
/// attributes) do not see. `pg_roles` is readable by every role; every name is
/// qualified, so nothing on the caller's search path takes part.
fn inherits_superuser_or_bypassrls(role: pg_sys::Oid) -> Result<bool, ErrorReport> {
    // Also refused: a role that can make itself more (CREATEROLE: on PostgreSQL 15 it can grant
    // itself membership in a table's owner), and one with the privileges of the predefined
    // roles that reach the server's files or programs (and from there the superuser), or
    // REPLICATION (a base backup reads every row), and the database's owner (who owns schema
    // public through pg_database_owner: it may drop or replace any table there, policies and
    // all). Any membership counts ('MEMBER'), inherited or not: a role that may SET ROLE to a
    // superuser is refused too (a delegated sign-in's session user could).
    let query = format!(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE (r.rolsuper OR r.rolbypassrls OR r.rolreplication \
           OR r.rolname OPERATOR(pg_catalog.=) ANY (ARRAY['pg_execute_server_program', 'pg_write_server_files', 'pg_read_server_files']::pg_catalog.name[])) \
         AND pg_catalog.pg_has_role({oid}::pg_catalog.oid, r.oid, 'MEMBER')) \
         OR EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) {oid}::pg_catalog.oid AND r.rolcreaterole) \
         OR EXISTS (SELECT FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database() \
           AND pg_catalog.pg_has_role({oid}::pg_catalog.oid, d.datdba, 'MEMBER'))",
        oid = role.to_u32()
    );
    match pgrx::Spi::get_one::<bool>(&query) {
        Ok(Some(found)) => Ok(found),
        // Fail closed: no answer is a refusal.
        _ => Ok(true),
    }
}

/// Why a role may never be a token's role.
pub(crate) enum Forbidden {
    /// Its own superuser or `BYPASSRLS` attribute.
    Attribute,
    /// Such privileges through membership, `CREATEROLE`, or the server-file roles' privileges.
    Membership,
}

impl Forbidden {
    #[cfg_attr(not(feature = "pg18"), allow(dead_code))]
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Forbidden::Attribute => "a superuser or BYPASSRLS role is never a token's role",
            Forbidden::Membership => {
                "the token's role has the privileges of a superuser, BYPASSRLS or server-file role or of the database's owner through membership, or CREATEROLE"
            }
        }
    }
}

/// Whether `role` may never be a token's role (`jwt_set_role`, a delegated sign-in); `None`:
/// it may be. Inside a transaction.
pub(crate) fn forbidden_role(role: pg_sys::Oid) -> Result<Option<Forbidden>, ErrorReport> {
    // SAFETY: catalog lookups of a role by OID, inside a transaction.
    if unsafe { pg_sys::superuser_arg(role) || pg_sys::has_bypassrls_privilege(role) } {
        return Ok(Some(Forbidden::Attribute));
    }
    if inherits_superuser_or_bypassrls(role)? {
        return Ok(Some(Forbidden::Membership));
    }
    Ok(None)
}

v1_function! {
    /// `jwt_set_role() RETURNS text`: the role set. VOLATILE, PARALLEL UNSAFE.
    fn jwt_set_role_wrapper / pg_finfo_jwt_set_role_wrapper(_fcinfo) {
        let claims = session::current_claims()?
            .ok_or_else(|| errors::forbidden("no session token: no role to set"))?;
        let rules = role_rules(&claims.provider);
        let name = claim_at(claims.json()?, &rules.claim)
            .and_then(Json::as_str)
            .ok_or_else(|| errors::forbidden("the token's role claim (pg_jwt.role_claim, or its provider's role_claim) is missing or not a string"))?
            .to_owned();
        if !rules.allowed.iter().any(|r| *r == name) {
            return Err(errors::forbidden(&format!("the role the token names is not in {}", rules.source))
                .set_hint("a superuser lists the roles tokens may switch to in pg_jwt.allowed_roles (provider default), or in the allowed_roles member of a listed provider"));
        }
        let c_name = CString::new(name.as_str())
            .map_err(|_| errors::forbidden("the role the token names is not a valid role name"))?;
        let role = pg_sys::get_role_oid(c_name.as_ptr(), true);
        if role == pg_sys::InvalidOid {
            return Err(errors::forbidden("the role the token names does not exist"));
        }
        match forbidden_role(role)? {
            Some(Forbidden::Attribute) => {
                return Err(errors::forbidden("a superuser or BYPASSRLS role is never switched to"))
            }
            Some(Forbidden::Membership) => {
                return Err(errors::forbidden(
                    "the role the token names has the privileges of a superuser, BYPASSRLS or server-file role or of the database's owner through membership, or CREATEROLE, and is never switched to",
                )
                .set_hint("Revoke that membership, or remove the role from pg_jwt.allowed_roles."))
            }
            None => {}
        }
        if !pg_sys::is_member_of_role(pg_sys::GetSessionUserId(), role) {
            return Err(errors::forbidden("the session user is not a member of the role the token names"));
        }
        // PostgreSQL refuses `role` there (GUC_NOT_WHILE_SEC_REST) with its own message: said
        // here first, in pg_jwt's words.
        if pg_sys::InLocalUserIdChange() || pg_sys::InSecurityRestrictedOperation() {
            return Err(errors::forbidden(
                "jwt_set_role() cannot run inside a security-definer function or a security-restricted operation",
            ));
        }
        // SET LOCAL ROLE: PostgreSQL's check hook applies its own rules again.
        pg_sys::set_config_option(
            c"role".as_ptr(),
            c_name.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
        crate::fmgr::text_datum(&name)
    }
}

extension_sql!(
    r#"
-- Role from a claim (src/roles.rs).
CREATE FUNCTION jwt_set_role() RETURNS text
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_set_role_wrapper';
-- upgrade 0.3.0 begin
COMMENT ON FUNCTION jwt_set_role() IS 'SET LOCAL ROLE to the role named by the verified claim pg_jwt.role_claim, if listed in pg_jwt.allowed_roles (a listed provider''s tokens: its own role_claim and allowed_roles; never a superuser or BYPASSRLS role)';
-- upgrade 0.3.0 end

-- PostgREST: db-pre-request = 'jwt_token_from_request_headers' (src/roles.rs).
CREATE FUNCTION jwt_token_from_request_headers() RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    headers text := current_setting('request.headers', true);
    auth_header text;
    bearer text[];
BEGIN
    IF headers IS NOT NULL AND headers <> '' THEN
        BEGIN
            SELECT h.value INTO auth_header FROM json_each_text(headers::json) h
             WHERE lower(h.key) = 'authorization' LIMIT 1;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'pg_jwt: request.headers is not a JSON object' USING ERRCODE = '22023';
        END;
    END IF;
    bearer := regexp_match(coalesce(auth_header, ''), '^\s*bearer\s+(\S+)\s*$', 'i');
    -- No (or no bearer) authorization: no token, so no claims (PostgREST's anonymous role).
    PERFORM set_config('pg_jwt.token', coalesce(bearer[1], ''), true);
END $$;
COMMENT ON FUNCTION jwt_token_from_request_headers() IS 'For PostgREST db-pre-request: set pg_jwt.token for the transaction from the Bearer token in request.headers';
"#,
    name = "roles",
    requires = ["claim_accessors"]
);
