//! Turns core errors into PostgreSQL errors with a deliberate SQLSTATE.
//!
//! - token rejected: `28000` invalid_authorization_specification
//! - bad key set, JWK or argument: `22023` invalid_parameter_value
//!
//! Messages start with `pg_jwt:` and never carry token, claim or key bytes.

use pg_jwt_core::{KeyError, TokenError};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

const FUNC: &str = "pg_jwt";

/// A rejected token: SQLSTATE 28000, the fixed reason, and a detail.
pub fn token_rejected(e: &TokenError) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        format!("pg_jwt: {e}"),
        FUNC,
    )
    .set_detail(e.detail())
}

/// A bad key set, JWK or argument: SQLSTATE 22023.
pub fn bad_key(e: &KeyError) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("pg_jwt: {e}"),
        FUNC,
    )
}

/// A bad argument: SQLSTATE 22023.
pub fn bad_argument(message: impl Into<String>) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("pg_jwt: {}", message.into()),
        FUNC,
    )
}

/// An internal failure that should not happen (e.g. jsonb conversion): SQLSTATE XX000 with a
/// clear message rather than a panic.
pub fn internal(message: &str) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("pg_jwt: internal error: {message}"),
        FUNC,
    )
}

/// Text that cannot be represented in the target encoding: SQLSTATE 22P05. The message never
/// carries the text.
pub fn untranslatable(message: &str) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNTRANSLATABLE_CHARACTER,
        format!("pg_jwt: {message}"),
        FUNC,
    )
}

/// A number PostgreSQL's `numeric` cannot hold (a signed claim may carry one: JSON sets no range),
/// where a jsonb value is built: SQLSTATE 22003, without the number.
pub fn numeric_out_of_range() -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        "pg_jwt: a claim holds a number outside the range of PostgreSQL's numeric type (jsonb cannot hold it)"
            .to_owned(),
        FUNC,
    )
    .set_hint("Read the other claims one by one (jwt_claim); the token itself was not refused.")
}

/// The session-token path used without `shared_preload_libraries`: SQLSTATE 55000.
pub fn not_preloaded() -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "pg_jwt: the library must be loaded at server start".to_owned(),
        FUNC,
    )
    .set_detail("Without preloading, a pg_jwt.* setting is a plain placeholder until the library loads: readable by any role, and replaceable through connection options.")
    .set_hint("Add pg_jwt to shared_preload_libraries in postgresql.conf and restart the server.")
}

/// A revoked token: SQLSTATE 28000, without saying which list matched.
pub fn token_revoked() -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        "pg_jwt: token revoked".to_owned(),
        FUNC,
    )
}

/// A refused privilege (role switching): SQLSTATE 42501, with the reason.
pub fn forbidden(message: &str) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("pg_jwt: {message}"),
        FUNC,
    )
}

/// An object of the extension missing or not as this version created it, or an operation
/// PostgreSQL cannot combine with ours (e.g. a lookup that needs a fresh snapshot in a
/// parallel plan): SQLSTATE 55000.
pub fn prerequisite(message: &str) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("pg_jwt: {message}"),
        FUNC,
    )
}

/// A NULL where pg_jwt needs a value (the revoking functions' identities): SQLSTATE 22004.
pub fn null_value(message: &str) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("pg_jwt: {message}"),
        FUNC,
    )
}
