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

/// Raises `report` as an ERROR; never returns (pgrx turns the panic into the PostgreSQL error
/// at the function boundary).
pub fn raise(report: ErrorReport) -> ! {
    report.report(pgrx::PgLogLevel::ERROR);
    // report(ERROR) does not return; this keeps the function's type honest.
    std::panic::panic_any(internal("error report returned"))
}
