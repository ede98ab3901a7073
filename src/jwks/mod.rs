//! Keys from the identity provider: everything between a JWKS URL and the key set a backend
//! verifies with. No backend ever does network I/O.
//! - `fetcher`: the key fetcher, a background worker registered at preload: its loop (which
//!   also watches standby replay and calls the revocation purge's launcher);
//! - `persist`: the last good set in the data directory (`pg_jwt_jwks.json`);
//! - `http`: fetching a JWKS over HTTPS and OpenID Connect discovery (plain Rust, on the
//!   fetcher's own thread);
//! - `state`: what the fetcher shares with every backend in shared memory (the fetched set,
//!   refetch requests and their tickets, the shared generation);
//! - `sql`: `jwt_jwks_status()` and `jwt_jwks_refresh()`.

pub mod fetcher;
pub mod http;
pub mod persist;
pub mod sql;
pub mod state;
