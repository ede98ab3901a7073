//! pg_jwt: verify JSON Web Tokens inside PostgreSQL.
//!
//! The token and key logic lives in the `pg_jwt_core` crate (no PostgreSQL dependency). This
//! crate is the SQL layer, one room per feature (folders) and a few shared helpers:
//! - `accessors/`: the claim accessors for RLS policies (`jwt_claim`, ...): `mod.rs` their SQL
//!   declarations and per-row path with a per-call-site cache, `convert.rs` claim values to SQL;
//! - `jwks/`: keys from the identity provider: `fetcher.rs` (the background worker),
//!   `http.rs`, `persist.rs`, `state.rs` (shared with the backends), `sql.rs`;
//! - `revocation/`: the denylist: `mod.rs` (table, triggers, per-token lookup), `filter.rs`
//!   (its Bloom filter in shared memory), `purge.rs` (background purge of expired rows);
//! - `providers/`: several identity providers (`pg_jwt.providers`), chosen by the token's `iss`:
//!   `mod.rs` (the list and each provider's keys), `slots.rs` (their fetched key sets in shared
//!   memory), `fetch.rs` (the key fetcher's work for them);
//! - `signin/`: PostgreSQL 18 only: sign in with a token (an OAuth validator module), its
//!   claims in force for the session;
//! - `session`: the per-backend verification cache behind the accessors, and `shared_cache`:
//!   good signatures in shared memory, for every backend;
//! - `stats/`: cluster-wide statistics of verifications (`jwt_stats()`) and the refusal and
//!   verified-identity logs;
//! - `roles`: `jwt_set_role()` (role from a claim) and `jwt_token_from_request_headers()`
//!   (PostgREST); `functions`: SQL functions that take token and keys as arguments
//!   (`jwt_verify`, ...);
//! - `generations`: every invalidation counter (what the per-row path compares);
//! - `gucs`: every `pg_jwt.*` setting; `errors`: core errors to SQLSTATEs; `fmgr`: V1 argument
//!   and result helpers; `clock`; `expiry`: the timer that ends the per-row path shortly before
//!   a token expires; `encoding`: claim text to and from the database encoding; `setup`: the
//!   install-time check that the library is preloaded; `privileges`: the install script's last
//!   statement, which keeps default privileges off the extension's members; `shmem`: raw
//!   shared-memory regions.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod accessors;
mod clock;
mod encoding;
mod errors;
mod expiry;
mod fmgr;
mod functions;
mod generations;
mod gucs;
mod jwks;
mod privileges;
mod providers;
mod revocation;
mod roles;
mod session;
mod setup;
mod shared_cache;
mod shmem;
#[cfg(feature = "pg18")]
mod signin;
mod stats;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// The raw shared-memory regions (see `shmem` for the inventory of all shared memory).
static SHMEM_REGIONS: [&shmem::Region; 4] = [
    &revocation::filter::REGION,
    &shared_cache::REGION,
    &stats::REGION,
    &providers::slots::REGION,
];

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    if gucs::preloaded() {
        // Shared memory and the key fetcher exist only under shared_preload_libraries.
        generations::init();
        jwks::state::init();
        providers::slots::init();
        shmem::init(&SHMEM_REGIONS);
        jwks::fetcher::register();
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
