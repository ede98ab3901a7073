//! pg_jwt: verify JSON Web Tokens inside PostgreSQL.
//!
//! The token and key logic lives in the `pg_jwt_core` crate (no PostgreSQL dependency). This
//! crate is the thin SQL layer: functions, settings, the per-backend cache and error mapping.

::pgrx::pg_module_magic!(name, version);

mod clock;
mod errors;
mod functions;
mod jsonb;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
