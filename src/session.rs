//! The claims of the session token: verified at most once per distinct token per backend,
//! re-checked for expiry at every access.
//!
//! Per access (the per-row path of an RLS policy) the cost is two counter loads, a coarse
//! clock read and the claim lookup: when neither the token nor the configuration changed since
//! the last access, the previous result is reused without touching the token's bytes.
//! When the token changes, the bounded cache (keyed by the exact token bytes) avoids verifying
//! a token twice; when the key set or a validation setting changes, the cache is emptied.
//!
//! Everything here is derived from settings (`pg_jwt.token` and the configuration), which
//! PostgreSQL copies into parallel workers; a worker verifies the token again in its own cache.
//! That is why the accessors can be PARALLEL SAFE.

use crate::fmgr::v1_function;
use crate::{clock, errors, gucs};
use lru::LruCache;
use pg_jwt_core::claims::TimeClaims;
use pg_jwt_core::token::{self, HeaderPolicy};
use pg_jwt_core::{Json, KeyError, KeySet, TokenError, Validation};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::rc::Rc;

/// The verified claims of one token, prepared for fast lookups.
#[derive(Debug)]
pub struct Claims {
    pub json: Json,
    pub times: TimeClaims,
}

/// The validation settings in force, captured when the configuration generation changes.
struct Config {
    keys: Result<KeySet, KeyError>,
    audience: Option<String>,
    issuer: Option<String>,
    required: Vec<String>,
    leeway: i64,
    policy: HeaderPolicy,
}

impl Config {
    fn load() -> Config {
        let keys = match gucs::jwks_text() {
            Some(text) => KeySet::parse(text.as_bytes()),
            None => Err(KeyError::Set("pg_jwt.jwks is not set".into())),
        };
        Config {
            keys,
            audience: gucs::audience(),
            issuer: gucs::issuer(),
            required: gucs::required_claims(),
            leeway: gucs::leeway(),
            policy: HeaderPolicy {
                max_token_bytes: gucs::max_token_bytes(),
                ..HeaderPolicy::default()
            },
        }
    }
}

/// The result of the last access, valid while both generations are unchanged.
struct Current {
    token_generation: u64,
    config_generation: u64,
    claims: Option<Rc<Claims>>,
}

struct State {
    config_generation: u64,
    config: Option<Config>,
    cache: LruCache<Box<[u8]>, Rc<Claims>>,
    current: Option<Current>,
    verifications: u64,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        config_generation: 0,
        config: None,
        cache: LruCache::new(NonZeroUsize::MIN),
        current: None,
        verifications: 0,
    });
}

/// Why no claims could be produced.
pub enum SessionError {
    Token(TokenError),
    Keys(KeyError),
}

impl SessionError {
    pub fn report(&self) -> ErrorReport {
        match self {
            SessionError::Token(e) => errors::token_rejected(e),
            SessionError::Keys(e) => errors::bad_key(e)
                .set_hint("a superuser must set pg_jwt.jwks to the identity provider's key set (JWKS)"),
        }
    }
}

/// The verified claims of `pg_jwt.token`; `Ok(None)` when no token is set.
pub fn current_claims() -> Result<Option<Rc<Claims>>, ErrorReport> {
    if !gucs::preloaded() {
        // Findings: without preloading, a setting can be read or replaced before we load.
        return Err(errors::not_preloaded());
    }
    let tg = gucs::token_generation();
    let cg = gucs::config_generation();
    let fast = STATE.with(|s| {
        let s = s.borrow();
        match &s.current {
            Some(c) if c.token_generation == tg && c.config_generation == cg => Some(c.claims.clone()),
            _ => None,
        }
    });
    let claims = match fast {
        Some(claims) => claims,
        None => slow_path(tg, cg).map_err(|e| e.report())?,
    };
    if let Some(c) = &claims {
        // Expiry is checked at every access against the clock, not only at verification.
        c.times
            .check(clock::now_unix_coarse(), gucs::leeway())
            .map_err(|e| errors::token_rejected(&e))?;
    }
    Ok(claims)
}

fn slow_path(tg: u64, cg: u64) -> Result<Option<Rc<Claims>>, SessionError> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.config_generation != cg || s.config.is_none() {
            // New key set or settings: every cached verification is void (checklist D19).
            let size = NonZeroUsize::new(gucs::cache_size()).unwrap_or(NonZeroUsize::MIN);
            s.cache = LruCache::new(size);
            s.config = Some(Config::load());
            s.config_generation = cg;
        }
        s.current = None;
        // SAFETY: the token is only read within this call, which assigns no setting; what is
        // kept (the cache key) is copied.
        let Some(token) = (unsafe { gucs::token_bytes() }) else {
            s.current = Some(Current {
                token_generation: tg,
                config_generation: cg,
                claims: None,
            });
            return Ok(None);
        };
        // Before hashing it for the cache: the size cap comes first.
        let max = s.config.as_ref().map_or(0, |c| c.policy.max_token_bytes);
        token::check_size(token, max).map_err(SessionError::Token)?;
        if let Some(hit) = s.cache.get(token) {
            let claims = Rc::clone(hit);
            s.current = Some(Current {
                token_generation: tg,
                config_generation: cg,
                claims: Some(claims.clone()),
            });
            return Ok(Some(claims));
        }
        let Some(config) = s.config.as_ref() else {
            return Err(SessionError::Keys(KeyError::Set("not loaded".into())));
        };
        let keys = config.keys.as_ref().map_err(|e| SessionError::Keys(e.clone()))?;
        let validation = Validation {
            leeway: config.leeway,
            audience: config.audience.as_deref(),
            issuer: config.issuer.as_deref(),
            ..Validation::new(clock::now_unix(), &config.required)
        };
        let verified = token::verify(token, keys, &config.policy, &validation).map_err(SessionError::Token)?;
        let claims = Rc::new(Claims {
            json: verified.claims,
            times: verified.times,
        });
        s.verifications += 1;
        s.cache.put(token.into(), Rc::clone(&claims));
        s.current = Some(Current {
            token_generation: tg,
            config_generation: cg,
            claims: Some(claims.clone()),
        });
        Ok(Some(claims))
    })
}

/// (verifications done, tokens cached, configured capacity) in this backend. The capacity is
/// the setting's (applied to the cache at the next access after a change), so it is right
/// before the first verification too.
pub fn cache_stats() -> (u64, usize, usize) {
    STATE.with(|s| {
        let s = s.borrow();
        (s.verifications, s.cache.len(), gucs::cache_size())
    })
}

v1_function! {
    /// `jwt_cache_stats()`: this backend's verification cache as
    /// `{"verifications": n, "cached_tokens": n, "capacity": n}`. VOLATILE, PARALLEL SAFE.
    fn jwt_cache_stats_wrapper / pg_finfo_jwt_cache_stats_wrapper(_fcinfo) {
        let (verifications, cached, capacity) = cache_stats();
        crate::fmgr::jsonb_from_text(&format!(
            r#"{{"verifications": {verifications}, "cached_tokens": {cached}, "capacity": {capacity}}}"#
        ))
    }
}

extension_sql!(
    r#"
CREATE FUNCTION jwt_cache_stats() RETURNS jsonb
    VOLATILE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_cache_stats_wrapper';
COMMENT ON FUNCTION jwt_cache_stats() IS 'This backend''s verification cache: verifications, cached_tokens, capacity';
"#,
    name = "jwt_cache_stats"
);
