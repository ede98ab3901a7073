//! pg_jwt: verify JSON Web Tokens inside PostgreSQL.
//!
//! The token and key logic lives in the `pg_jwt_core` crate (no PostgreSQL dependency). This
//! crate is the thin SQL layer, one module per concern:
//! - `functions`: SQL functions that take token and keys as arguments (`jwt_verify`, ...);
//! - `accessors`: the claim accessors for RLS policies (`jwt_claim`, ...), and `fastpath`:
//!   their per-row path with a per-call-site cache;
//! - `session`: the per-backend verification cache behind the accessors, and `shared_cache`:
//!   good signatures in shared memory, for every backend;
//! - `gucs`: every `pg_jwt.*` setting;
//! - `errors`: core errors to SQLSTATEs; `fmgr`: V1 argument and result helpers; `clock`;
//!   `expiry`: the timer that ends the per-row path shortly before a token expires;
//! - `encoding`: claim text to and from the database encoding;
//! - `setup`: the install-time check that the library is preloaded;
//! - `worker`: the key fetcher (a background worker), `jwks_fetch`: its HTTPS client (plain
//!   Rust), `shared`: what it shares with the backends, `jwks_status`: its SQL functions;
//! - `roles`: `jwt_set_role()` (role from a claim) and `jwt_token_from_request_headers()`
//!   (PostgREST);
//! - `revocation`: the denylist table, its triggers and the per-token lookup;
//!   `revocation_filter`: its Bloom filter in shared memory; `shmem`: raw shared-memory regions.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod accessors;
mod clock;
mod encoding;
mod errors;
mod expiry;
mod fastpath;
mod fmgr;
mod functions;
mod gucs;
mod jwks_fetch;
mod jwks_status;
mod revocation;
mod revocation_filter;
mod roles;
mod session;
mod setup;
mod shared;
mod shared_cache;
mod shmem;
mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    if gucs::preloaded() {
        // Shared memory and the key fetcher exist only under shared_preload_libraries.
        shared::init();
        shmem::init();
        worker::register();
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // The session-token path requires preloading (src/setup.rs).
        vec!["shared_preload_libraries = 'pg_jwt'"]
    }
}
