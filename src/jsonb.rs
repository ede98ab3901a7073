//! Conversions between the core's exact JSON values and PostgreSQL `jsonb`.

use crate::errors;
use pg_jwt_core::Json;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::JsonB;

/// The exact JSON text of a `jsonb` argument (numbers keep every digit: serde_json is built
/// with `arbitrary_precision`).
pub fn to_text(value: &JsonB) -> Result<String, ErrorReport> {
    serde_json::to_string(&value.0).map_err(|_| errors::internal("jsonb argument could not be serialized"))
}

/// A core JSON value as `jsonb`, numbers exact.
pub fn from_json(value: &Json) -> Result<JsonB, ErrorReport> {
    serde_json::from_str(&value.to_json_string())
        .map(JsonB)
        .map_err(|_| errors::internal("JSON value could not be converted to jsonb"))
}
