//! # pg_jwt_core
//!
//! The verification core of pg_jwt: strict JWS compact parsing, header policy, JWK/JWKS import,
//! signature checks (ring) and claim validation. Pure Rust, no PostgreSQL: bytes in, `Result`
//! out, no panics on any input, so it can be unit-tested and fuzzed on its own.
//!
//! The order of checks follows the fail-closed pipeline of the project's security checklist:
//! size cap, three segments, strict base64url, header JSON and policy, key choice by exact
//! `kid` (the algorithm must be allowed by the key), signature over the received bytes, and
//! only then the payload and its claims.

#![forbid(unsafe_code)]

pub mod alg;
pub mod b64;
pub mod claims;
pub mod error;
pub mod json;
pub mod jwk;
pub mod provider;
pub mod signing;
pub mod token;

pub use alg::Algorithm;
pub use claims::{TimeClaims, Validation};
pub use error::{KeyError, TokenError};
pub use json::Json;
pub use jwk::{KeySet, SigningKey};
pub use provider::{Provider, Providers};
pub use token::{HeaderPolicy, VerifiedToken};
