//! Statistics and the refusal log: what an operator needs at the first question of an incident
//! (how many tokens were refused, why, from which provider; who was behind a statement). This
//! folder:
//! - `mod.rs` (here): cluster-wide counters of verifications by provider, outcome and reason, in
//!   shared memory, and their SQL functions `jwt_stats()` and `jwt_stats_reset()`;
//! - `log.rs`: the refused-token lines (`pg_jwt.log_refusals`, rate limited cluster-wide by
//!   `pg_jwt.log_refusals_per_second`) and the verified-identity lines
//!   (`pg_jwt.log_verified = first`), never with the token, a segment or a signature.
//!
//! Cost: one atomic add per verification (a token verified, or refused, in a backend), nothing
//! per row: the per-row path never reaches here. Counters are relaxed atomics: a reader may see
//! a verification counted a moment late, never lost.

pub mod log;

use crate::fmgr::v1_function;
use crate::shmem::Region;
use pg_jwt_core::TokenError;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outcomes counted, by index: 0 accepted, then each refusal reason of SQLSTATE 28000, with
/// the words of the error messages (`pg_jwt: <reason>`).
pub const OUTCOMES: [&str; 15] = [
    "accepted",
    "token revoked",
    "malformed token",
    "unsupported token feature",
    "token too large",
    "algorithm not allowed",
    "no matching key",
    "invalid signature",
    "token expired",
    "token not yet valid",
    "audience mismatch",
    "issuer mismatch",
    "missing required claim",
    "invalid claim type",
    "claim constraint not met",
];
pub const ACCEPTED: usize = 0;
pub const REVOKED: usize = 1;

/// The providers counted apart: the settings' implicit provider, and every listed provider
/// (`pg_jwt.providers`) together; the log lines name each listed provider.
pub const PROVIDERS: [&str; 2] = ["default", "listed"];

/// The row of `jwt_stats()` a provider's verifications count in.
pub fn row_of(provider: &str) -> usize {
    usize::from(provider != pg_jwt_core::provider::DEFAULT_NAME)
}

/// Words of the region: the counters (provider-major), then the log's rate limiter.
const COUNTERS: usize = PROVIDERS.len() * OUTCOMES.len();
pub(crate) const LOG_SECOND: usize = COUNTERS;
pub(crate) const LOG_LINES: usize = COUNTERS + 1;
pub(crate) const LOG_SUPPRESSED: usize = COUNTERS + 2;
/// Cluster-wide revocation figures (each backend's own are in `revocation::stats`).
const REVOCATION_LOOKUPS: usize = COUNTERS + 3;
const REVOCATION_FILTERED: usize = COUNTERS + 4;
const REVOCATION_PROBES: usize = COUNTERS + 5;
const WORDS: usize = COUNTERS + 6;

fn region_bytes() -> usize {
    WORDS * std::mem::size_of::<AtomicU64>()
}

pub static REGION: Region = Region::new(c"pg_jwt statistics", region_bytes);

/// The region's words; None when the library is not preloaded.
pub(crate) fn words() -> Option<&'static [AtomicU64]> {
    let (p, len) = REGION.get()?;
    if len < region_bytes() {
        return None;
    }
    // SAFETY: the region is at least WORDS u64s long, 8-byte aligned (ShmemInitStruct aligns to
    // a cache line), mapped for the life of the process, and all-zero (its initial state) is a
    // valid array of atomics. Only atomics are accessed through it.
    Some(unsafe { std::slice::from_raw_parts(p.cast::<AtomicU64>(), WORDS) })
}

/// The outcome index of a refused token.
pub fn reason_of(e: &TokenError) -> usize {
    match e {
        TokenError::Malformed(_) => 2,
        TokenError::Unsupported(_) => 3,
        TokenError::TooLarge(_) => 4,
        TokenError::AlgorithmNotAllowed(_) => 5,
        TokenError::NoMatchingKey(_) => 6,
        TokenError::InvalidSignature => 7,
        TokenError::Expired { .. } => 8,
        TokenError::NotYetValid { .. } => 9,
        TokenError::AudienceMismatch(_) => 10,
        TokenError::IssuerMismatch(_) => 11,
        TokenError::MissingClaim(_) => 12,
        TokenError::InvalidClaimType(_) => 13,
        TokenError::Constraint(_) => 14,
        TokenError::UnknownIssuer(_) => 11,
    }
}

/// Counts one verification of `provider` (an index of `PROVIDERS`) with outcome `outcome`.
#[inline]
pub fn count(provider: usize, outcome: usize) {
    if let Some(w) = words().and_then(|w| w.get(provider * OUTCOMES.len() + outcome)) {
        w.fetch_add(1, Ordering::Relaxed);
    }
}

/// Adds to the cluster-wide revocation figures (once per token lookup, never per row).
pub fn count_revocation(lookups: u64, filtered: u64, probes: u64) {
    let Some(w) = words() else { return };
    for (i, n) in [
        (REVOCATION_LOOKUPS, lookups),
        (REVOCATION_FILTERED, filtered),
        (REVOCATION_PROBES, probes),
    ] {
        if n > 0 {
            if let Some(c) = w.get(i) {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// The cluster-wide revocation figures: (lookups, answered by the filter alone, index probes).
pub fn revocation_figures() -> (u64, u64, u64) {
    let w = words().unwrap_or_default();
    let get = |i: usize| w.get(i).map_or(0, |c| c.load(Ordering::Relaxed));
    (
        get(REVOCATION_LOOKUPS),
        get(REVOCATION_FILTERED),
        get(REVOCATION_PROBES),
    )
}

v1_function! {
    /// `pg_jwt_stats_counts() RETURNS jsonb`: `{"<provider>": {"<outcome>": n, ...}}` (the
    /// source of `jwt_stats()`). VOLATILE, PARALLEL SAFE.
    fn pg_jwt_stats_counts / pg_finfo_pg_jwt_stats_counts(_fcinfo) {
        crate::setup::require_preloaded()?;
        let w = words().unwrap_or_default();
        let mut providers = Vec::new();
        for (p, provider) in PROVIDERS.iter().enumerate() {
            let counts: Vec<String> = OUTCOMES
                .iter()
                .enumerate()
                .map(|(o, name)| {
                    let n = w.get(p * OUTCOMES.len() + o).map_or(0, |c| c.load(Ordering::Relaxed));
                    format!("\"{name}\": {}", i64::try_from(n).unwrap_or(i64::MAX))
                })
                .collect();
            providers.push(format!("\"{provider}\": {{{}}}", counts.join(", ")));
        }
        crate::fmgr::jsonb_from_text(&format!("{{{}}}", providers.join(", ")))
    }
}

v1_function! {
    /// `jwt_stats_reset() RETURNS void`: every counter of `jwt_stats()` to zero.
    fn pg_jwt_stats_reset / pg_finfo_pg_jwt_stats_reset(_fcinfo) {
        crate::setup::require_preloaded()?;
        for w in words().unwrap_or_default().iter().take(COUNTERS) {
            w.store(0, Ordering::Relaxed);
        }
        Ok(pgrx::pg_sys::Datum::null())
    }
}

extension_sql!(
    r#"
-- upgrade 0.3.0 begin
-- Statistics (src/stats/mod.rs): cluster-wide counts of verifications by provider, outcome and
-- reason; for pg_monitor and superusers, not PUBLIC.
CREATE FUNCTION pg_jwt_stats_counts() RETURNS jsonb
    LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pg_jwt_stats_counts';
COMMENT ON FUNCTION pg_jwt_stats_counts() IS 'Internal: the counters of jwt_stats() as jsonb';
CREATE FUNCTION jwt_stats() RETURNS TABLE (provider text, outcome text, reason text, count bigint)
    LANGUAGE sql VOLATILE PARALLEL SAFE
BEGIN ATOMIC
    SELECT p.key, CASE WHEN o.key OPERATOR(pg_catalog.=) 'accepted' THEN 'accepted' ELSE 'refused' END,
           CASE WHEN o.key OPERATOR(pg_catalog.=) 'accepted' THEN NULL ELSE o.key END,
           (o.value OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[])::pg_catalog.int8
      FROM pg_catalog.jsonb_each(@extschema@.pg_jwt_stats_counts()) p,
           pg_catalog.jsonb_each(p.value) o
     ORDER BY 1, 2, 3 NULLS FIRST;
END;
COMMENT ON FUNCTION jwt_stats() IS 'Verifications since the last jwt_stats_reset(), cluster-wide: by provider, outcome (accepted, refused) and the refusal''s reason';
CREATE FUNCTION jwt_stats_reset() RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'pg_jwt_stats_reset';
COMMENT ON FUNCTION jwt_stats_reset() IS 'Superuser: every counter of jwt_stats() to zero';
REVOKE ALL ON FUNCTION pg_jwt_stats_counts(), jwt_stats(), jwt_stats_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_jwt_stats_counts(), jwt_stats() TO pg_monitor;
-- upgrade 0.3.0 end
"#,
    name = "stats"
);
