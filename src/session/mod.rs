//! The claims of the session token: verified at most once per distinct token per backend,
//! re-checked for expiry at every access.
//!
//! Per access (the per-row path of an RLS policy) the cost is two counter loads and one atomic
//! load of the shared generation (fetched key set, revocations), a coarse
//! clock read and the claim lookup: when neither the token nor the configuration changed since
//! the last access, the previous result is reused without touching the token's bytes.
//! When the token changes, the bounded cache (keyed by the exact token bytes) avoids verifying
//! a token twice; when the key set or a validation setting changes, the cache is emptied; when
//! only the revocation list changes (or a standby replays), each cached token is checked for
//! revocation again at its next use, and nothing else (`generations`).
//!
//! Everything here is derived from settings (`pg_jwt.token` and the configuration), which
//! PostgreSQL copies into parallel workers, and from shared memory and the revocation table,
//! which workers read as well (the revocation lookup with a snapshot of the present, as in a
//! serial plan). A worker verifies the token again in its own cache. That is why the accessors can be
//! PARALLEL SAFE.

use crate::fmgr::v1_function;
use crate::jwks::state;
use crate::{clock, errors, gucs, revocation, shared_cache};
use pg_jwt_core::claims::{Body, TimeClaims};
use pg_jwt_core::provider::Provider;
use pg_jwt_core::token::{self, HeaderPolicy, Signature};
use pg_jwt_core::Providers;
use pg_jwt_core::{Json, KeyError, KeySet, TokenError, Validation};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use table::Table;

mod table;

/// The verified claims of one token, prepared for fast lookups.
#[derive(Debug)]
pub struct Claims {
    /// A tree (a full verification), or the top-level members of a token verified from the
    /// shared cache's record, whose tree is built at the first use that needs it.
    pub body: Body,
    pub times: TimeClaims,
    /// The provider that verified the token (`default`: the single-provider settings).
    pub provider: Rc<str>,
    /// Its leeway, for the re-checks of expiry at every access.
    pub leeway: i64,
    /// Accessor results already converted from these claims (`accessors::callsite`).
    pub converted: RefCell<Converted>,
}

/// The last few results of the one-name accessors converted from one token's claims, as the
/// bytes of their SQL value (a uuid's 16 bytes, a bigint's 8, a text's varlena), or NULL; keyed
/// by the accessor's result type (its `tag`) and the claim name as the call gave it. The claims
/// are immutable and a conversion depends on nothing else (the database encoding is fixed for
/// the backend's life), so a result found here is the one a conversion would give. Errors are
/// never kept.
///
/// Why: each transaction of a pooled connection calls a policy's accessor at least twice with a
/// token that changed since the last transaction: the planner evaluates it (for its estimate)
/// and the executor's new call site calls it again; each call looked the member up in the
/// claims and converted it. `perf` put the lookup alone at 0.27 µs per transaction (100 users
/// in turn: the claims' memory is cold by the time their token returns), of about 2 µs that
/// pg_jwt costs per transaction. A token met again finds its results here.
///
/// Bounded: `SLOTS` slots inline (replaced in turn), names up to `MAX_NAME` bytes and values
/// up to `MAX_VALUE` bytes (a text's with its 4-byte header); anything longer is converted at
/// every call, as before.
#[derive(Clone, Copy)]
pub struct Converted {
    slots: [ConvertedSlot; Converted::SLOTS],
    next: u8,
}

#[derive(Clone, Copy)]
struct ConvertedSlot {
    /// 0: empty.
    tag: u8,
    name_len: u8,
    /// `NULL_VALUE`: the result is NULL.
    value_len: u8,
    name: [u8; Converted::MAX_NAME],
    value: [u8; Converted::MAX_VALUE],
}

/// Never shows what it holds (claim values).
impl std::fmt::Debug for Converted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Converted")
    }
}

impl Converted {
    pub const SLOTS: usize = 4;
    pub const MAX_NAME: usize = 32;
    pub const MAX_VALUE: usize = 48;
    const NULL_VALUE: u8 = u8::MAX;

    pub const EMPTY: Converted = Converted {
        slots: [ConvertedSlot {
            tag: 0,
            name_len: 0,
            value_len: 0,
            name: [0; Converted::MAX_NAME],
            value: [0; Converted::MAX_VALUE],
        }; Converted::SLOTS],
        next: 0,
    };

    /// The value kept for (`tag`, `name`): `Some(None)` for NULL; `None` if none is kept.
    pub fn get(&self, tag: u8, name: &[u8]) -> Option<Option<&[u8]>> {
        if tag == 0 {
            return None;
        }
        let slot = self
            .slots
            .iter()
            .find(|s| s.tag == tag && s.name.get(..usize::from(s.name_len)) == Some(name))?;
        if slot.value_len == Self::NULL_VALUE {
            return Some(None);
        }
        slot.value.get(..usize::from(slot.value_len)).map(Some)
    }

    /// Keeps `value` (`None`: NULL) for (`tag`, `name`) if both fit, in the next slot in turn.
    pub fn put(&mut self, tag: u8, name: &[u8], value: Option<&[u8]>) {
        let value_len = match value {
            None => Self::NULL_VALUE,
            Some(v) if v.len() <= Self::MAX_VALUE => v.len() as u8,
            Some(_) => return,
        };
        if tag == 0 || name.len() > Self::MAX_NAME || self.get(tag, name).is_some() {
            return;
        }
        let i = usize::from(self.next) % Self::SLOTS;
        self.next = ((i + 1) % Self::SLOTS) as u8;
        let Some(slot) = self.slots.get_mut(i) else { return };
        slot.tag = tag;
        // Lossless: both checked against limits under 255 above.
        slot.name_len = name.len() as u8;
        slot.value_len = value_len;
        if let Some(to) = slot.name.get_mut(..name.len()) {
            to.copy_from_slice(name);
        }
        if let (Some(v), Some(to)) = (value, slot.value.get_mut(..value.map_or(0, <[u8]>::len))) {
            to.copy_from_slice(v);
        }
    }
}

impl Claims {
    /// The claims as a tree, for what reads more than a top-level string or number
    /// (`jwt_claims()`, a path, `jwt_set_role()`'s pointer). Built once per token; from the same
    /// bytes the strict parser accepted when the token was verified, so it cannot fail, and if
    /// it did the token is refused (28000).
    pub fn json(&self) -> Result<&Json, ErrorReport> {
        self.body.tree().map_err(|e| SessionError::Token(e).report())
    }
}

/// The validation settings in force, captured when the configuration generation changes.
struct Config {
    keys: Result<KeySet, KeyError>,
    /// The shared cache's keys under a fingerprint of the texts `keys` was imported from.
    keyer: token::CacheKeyer,
    audience: Option<String>,
    issuer: Option<String>,
    required: Vec<String>,
    leeway: i64,
    policy: HeaderPolicy,
    /// `pg_jwt.session_claim` (a validation setting: a change reloads this), read here once
    /// rather than copied out of the setting at every verification.
    session_claim: String,
    /// A fingerprint of everything above and of every other setting a verification reads
    /// (`settings_fingerprint`): two loads with the same one verify every token alike.
    settings: [u8; 32],
}

/// The key set in force: `pg_jwt.jwks`, the set fetched from `pg_jwt.jwks_uri`, or both merged
/// for lookup (a `kid` in both is refused); with a fingerprint of the texts it was imported
/// from (the shared cache's key includes it).
fn load_keys() -> (Result<KeySet, KeyError>, [u8; 32]) {
    let pinned = gucs::jwks_text();
    let fixed = match pinned.as_deref().map(|t| KeySet::parse(t.as_bytes())).transpose() {
        Ok(fixed) => fixed,
        Err(e) => return (Err(e), [0; 32]),
    };
    let (fetched, fetched_print) = match gucs::jwks_uri() {
        None => (None, None),
        Some(uri) => match fetched_keys(&uri) {
            Ok((set, print)) => (Some(set), Some(print)),
            // Fail closed, naming the source, unless a pinned set is there to use alone.
            Err(reason) if fixed.is_none() => return (Err(KeyError::Set(reason)), [0; 32]),
            Err(_) => (None, None),
        },
    };
    let print = token::key_set_fingerprint(&[
        pinned.as_deref().map(str::as_bytes),
        fetched_print.as_ref().map(|p: &[u8; 32]| p.as_slice()),
    ]);
    let keys = match (fixed, fetched) {
        (None, None) => Err(KeyError::Set("pg_jwt.jwks is not set".into())),
        (Some(set), None) | (None, Some(set)) => Ok(set),
        (Some(fixed), Some(fetched)) => KeySet::merge(fixed, fetched),
    };
    (keys, print)
}

/// The set the key fetcher holds for `uri`, if it holds one (its text copied under the shared
/// lock, imported after), with a fingerprint of its text.
fn fetched_keys(uri: &str) -> Result<(KeySet, [u8; 32]), String> {
    let issuer = state::source_issuer(uri, gucs::issuer().as_deref());
    state::read(|state| {
        if !state.is_for(uri, &issuer) {
            return Err(
                "the key fetcher works for another pg_jwt.jwks_uri (or, for discover, another pg_jwt.issuer) than this session's: set them server-wide (postgresql.conf or ALTER SYSTEM) and reload"
                    .into(),
            );
        }
        // Never the URL nor the fetch's error (which names it): the message reaches any role
        // that sets a token, and a URL's query string may hold a credential. `jwt_jwks_status()`
        // shows both to those who may read the setting, and the key fetcher logs them.
        let Some(text) = state.jwks() else {
            let error = state.error();
            return Err(if error.is_empty() {
                "no key set of provider default (pg_jwt.jwks_uri) is in force yet".to_owned()
            } else if error.starts_with(crate::jwks::persist::STALE) {
                "no key set of provider default (pg_jwt.jwks_uri) is in force: the fetched set is stale, no fetch succeeded within pg_jwt.jwks_max_stale (see jwt_jwks_status() or the server log)".to_owned()
            } else {
                "no key set of provider default (pg_jwt.jwks_uri) is in force: its last fetch failed (see jwt_jwks_status() or the server log)".to_owned()
            });
        };
        // Copied under the shared lock, imported after it is released: the key fetcher takes
        // it exclusively after every fetch, and waits behind every holder.
        Ok(text.to_vec())
    })
    .and_then(|text| {
        let set = KeySet::parse(&text)
            .map_err(|e| format!("the key set fetched for provider default (pg_jwt.jwks_uri) does not import: {e}"))?;
        if set.holds_secrets {
            // The key fetcher refuses such a set (`http::fetch`); a saved file could still hold one.
            return Err("the key set fetched for provider default (pg_jwt.jwks_uri) holds a secret (oct) key".to_owned());
        }
        Ok((set, token::key_set_fingerprint(&[Some(&text)])))
    })
}

impl Config {
    fn load() -> Config {
        let (keys, fingerprint) = load_keys();
        let audience = gucs::audience();
        let issuer = gucs::issuer();
        let required = gucs::required_claims();
        let leeway = gucs::leeway();
        let max_token_bytes = gucs::max_token_bytes();
        let session_claim = gucs::session_claim();
        let required_list: Vec<u8> = required
            .iter()
            .flat_map(|c| (c.len() as u64).to_le_bytes().into_iter().chain(c.bytes()))
            .collect();
        let jwks_uri = gucs::jwks_uri();
        // SAFETY: read at once (hashed below), before anything can change the setting.
        let providers = unsafe { gucs::providers_bytes() };
        // Every input of a verification that a setting gives, apart from the keys generation
        // (compared on its own): the key set's sources (and whether it imported), where its
        // fetched part comes from, the implicit provider's rules, the provider list (each
        // listed provider's rules and pinned keys), and the size of the cache itself.
        let settings = token::key_set_fingerprint(&[
            Some(b"pg_jwt session settings v1"),
            Some(&fingerprint),
            Some(&[u8::from(keys.is_ok())]),
            jwks_uri.as_deref().map(str::as_bytes),
            audience.as_deref().map(str::as_bytes),
            issuer.as_deref().map(str::as_bytes),
            Some(&required_list),
            Some(&leeway.to_le_bytes()),
            Some(&(max_token_bytes as u64).to_le_bytes()),
            Some(session_claim.as_bytes()),
            providers,
            Some(&(gucs::cache_size() as u64).to_le_bytes()),
        ]);
        Config {
            keys,
            keyer: token::CacheKeyer::new(&fingerprint),
            audience,
            issuer,
            required,
            leeway,
            policy: HeaderPolicy {
                max_token_bytes,
                ..HeaderPolicy::default()
            },
            session_claim,
            settings,
        }
    }
}

pub use crate::generations::Generations;

/// The result of the last access, valid while the generations are unchanged.
struct Current {
    generations: Generations,
    claims: Option<Rc<Claims>>,
}

/// A verified token in this backend's cache, with the shared generation at which it was last
/// found not revoked: a change of the revocation list (or standby replay) only re-checks that.
struct Cached {
    claims: Rc<Claims>,
    checked: u64,
}

struct State {
    /// The configuration and keys generations the configuration and key sets were loaded at.
    loaded_at: (u64, u64),
    config: Option<Config>,
    /// Verified tokens; once full, a token is kept on its second miss (`Table::keep`).
    cache: Table<Cached>,
    current: Option<Current>,
    verifications: u64,
    /// Verifications whose signature was found good in the shared cache.
    shared_hits: u64,
    /// Of those, the ones verified from the record (the header not decoded again).
    shared_record_hits: u64,
}

impl State {
    /// A validation setting was assigned, or a key set changed (`loaded`: the configuration and
    /// keys generations). A new key set, or a setting whose value changed, voids every cached
    /// verification: an empty cache of the configured size, with a new seed (and no misses
    /// remembered). A reload assigns every setting of the configuration files again, changed
    /// or not: when nothing a verification reads changed (the same settings fingerprint, the
    /// same keys generation), the cache is kept, so that an unrelated reload does not send every
    /// backend through a new verification of every token it meets.
    fn reload(&mut self, config: Config, loaded: (u64, u64)) {
        let unchanged =
            self.loaded_at.1 == loaded.1 && self.config.as_ref().is_some_and(|c| c.settings == config.settings);
        if !unchanged {
            self.cache = Table::new(gucs::cache_size());
        }
        self.config = Some(config);
        self.loaded_at = loaded;
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        loaded_at: (0, 0),
        config: None,
        cache: Table::new(1),
        current: None,
        verifications: 0,
        shared_hits: 0,
        shared_record_hits: 0,
    });
}

/// Why no claims could be produced.
pub enum SessionError {
    Token(TokenError),
    Keys(KeyError),
    /// In `jwt_revocations` (by jti, session id or subject).
    Revoked,
    /// A PostgreSQL error from the revocation lookup.
    Report(ErrorReport),
}

impl SessionError {
    pub fn report(self) -> ErrorReport {
        match self {
            SessionError::Token(e) => errors::token_rejected(&e),
            SessionError::Revoked => errors::token_revoked(),
            SessionError::Report(r) => r,
            SessionError::Keys(e) => errors::bad_key(&e).set_hint(
                "a superuser must give the token's provider its keys: pg_jwt.jwks or pg_jwt.jwks_uri for the provider default, jwks or jwks_uri in pg_jwt.providers for a listed one (see jwt_jwks_status())",
            ),
        }
    }
}

/// Whether a verification is running in this backend (a query it runs itself, such as the
/// revocation lookup, starts an executor: the sign-in's statement check must not re-enter).
#[cfg_attr(not(feature = "pg18"), allow(dead_code))]
pub fn busy() -> bool {
    STATE.with(|s| s.try_borrow_mut().is_err())
}

/// The verified claims of `pg_jwt.token`; `Ok(None)` when no token is set.
pub fn current_claims() -> Result<Option<Rc<Claims>>, ErrorReport> {
    // Findings: without preloading, a setting can be read or replaced before we load.
    crate::setup::require_preloaded()?;
    let now = Generations::now();
    let fast = STATE.with(|s| {
        let s = s.borrow();
        match &s.current {
            Some(c) if c.generations == now => Some(c.claims.clone()),
            _ => None,
        }
    });
    let claims = match fast {
        Some(claims) => claims,
        None => match verify_current_token(now) {
            // A kid in no key set: the provider may have rotated. Ask the key fetcher for the
            // current set (rate limited across all backends), wait a bounded time, retry once.
            Err(SessionError::Token(TokenError::NoMatchingKey(_))) if refetched_for_unknown_key() => {
                verify_current_token(Generations::now()).map_err(refused)?
            }
            other => other.map_err(refused)?,
        },
    };
    if let Some(c) = &claims {
        // Expiry is checked at every access against the clock, not only at verification.
        c.times.check(clock::now_unix_coarse(), c.leeway).map_err(|e| {
            REFUSED_BY.with(|r| *r.borrow_mut() = Rc::clone(&c.provider));
            SIGNED.with(|v| v.set(true));
            refused(SessionError::Token(e))
        })?;
    }
    Ok(claims)
}

thread_local! {
    /// The listed provider chosen by the last verification that failed for an unknown `kid`
    /// (whose key set to refetch); `None`: the implicit provider's.
    static UNKNOWN_KID_OF: RefCell<Option<(Rc<Providers>, usize)>> = const { RefCell::new(None) };
    /// The name of the implicit provider, shared by its claims.
    static DEFAULT_NAME: Rc<str> = Rc::from(pg_jwt_core::provider::DEFAULT_NAME);
    /// The provider a refusal is counted and logged for: the chosen one, else `default`.
    static REFUSED_BY: RefCell<Rc<str>> = RefCell::new(Rc::from(pg_jwt_core::provider::DEFAULT_NAME));
    /// Whether the token being refused got past its signature (checked, or vouched for by the
    /// shared cache's record): only then does the refusal log show its `sub` and `jti` as the
    /// issuer's. A refusal before (an `iss` no provider has, claims read to choose the
    /// provider) shows them as unverified, whatever its reason.
    static SIGNED: Cell<bool> = const { Cell::new(false) };
}

/// After an unknown `kid`: a refetch of the chosen provider's key set (see
/// `state::refetched_for_unknown_key`, `providers::refetched_for_unknown_key`).
fn refetched_for_unknown_key() -> bool {
    match UNKNOWN_KID_OF.with(|u| u.borrow_mut().take()) {
        Some((list, i)) => list
            .list
            .get(i)
            .is_some_and(crate::providers::refetched_for_unknown_key),
        None => state::refetched_for_unknown_key(),
    }
}

/// Which provider verifies a token.
enum Chosen {
    /// The single-provider settings (`pg_jwt.jwks`, `pg_jwt.jwks_uri`, `pg_jwt.issuer`, ...).
    Default,
    /// A listed provider (the list and its index), and the token's `iss` that chose it.
    Listed(Rc<Providers>, usize, String),
}

impl Chosen {
    fn listed(&self) -> Option<&Provider> {
        match self {
            Chosen::Listed(list, i, _) => list.list.get(*i),
            Chosen::Default => None,
        }
    }
}

/// The provider the token's `iss` chooses, with the claims read to find it (`token::peek`).
/// Without `pg_jwt.providers`, always the implicit one (and `iss` is not read before the
/// signature, as before providers). With a list: an exact issuer, then a template; else the
/// implicit provider if it has keys and its `pg_jwt.issuer` is `iss` (with a list, `default` is
/// chosen by its issuer like any other provider: never a catch-all, which would let a token
/// whose `iss` misses a listed provider by a character skip that provider's rules); else
/// refused, naming the issuer (a token refused for its form gets that reason first).
fn choose(config: &Config, token: &[u8]) -> Result<(Chosen, Option<token::Peeked>), SessionError> {
    let list = crate::providers::list();
    if list.is_empty() {
        return Ok((Chosen::Default, None));
    }
    let peeked = token::peek(token, &config.policy).map_err(SessionError::Token)?;
    let iss = peeked.issuer();
    if let Some(c) = iss.and_then(|i| list.choose(i)) {
        let iss = iss.unwrap_or_default().to_owned();
        return Ok((Chosen::Listed(list, c.0, iss), Some(peeked)));
    }
    let default_configured = gucs::jwks_text().is_some() || gucs::jwks_uri().is_some();
    let default_takes = matches!((&config.issuer, iss), (Some(expected), Some(actual)) if expected == actual);
    if default_configured && default_takes {
        return Ok((Chosen::Default, Some(peeked)));
    }
    token::check_form(token, &config.policy).map_err(SessionError::Token)?;
    Err(SessionError::Token(TokenError::UnknownIssuer(match iss {
        Some(i) => pg_jwt_core::error::printable(i),
        None => "(the token has no iss)".to_owned(),
    })))
}

fn verify_current_token(now: Generations) -> Result<Option<Rc<Claims>>, SessionError> {
    SIGNED.with(|v| v.set(false));
    // A refusal before a provider is chosen (the size cap) is the implicit provider's, never
    // the provider of the token verified before.
    REFUSED_BY.with(|r| *r.borrow_mut() = DEFAULT_NAME.with(Rc::clone));
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        // Through a plain reference, the fields borrow apart (the settings while counting).
        let s = &mut *s;
        let loaded = (now.config, crate::generations::keys_generation());
        if s.loaded_at != loaded || s.config.is_none() {
            // A setting assigned or a key set changed: a new key set, or a value a verification
            // reads that changed, voids every cached verification (checklist D19; `reload`). A
            // change of the revocation list alone keeps them (each is re-checked below).
            s.reload(Config::load(), loaded);
        }
        s.current = None;
        // SAFETY: the token is only read within this call, which assigns no setting; what is
        // kept (the cache key) is copied.
        let Some(token) = (unsafe { gucs::token_bytes() }) else {
            // The next token's line is written even if it is the one logged last: the
            // statements in between ran without claims.
            LOGGED.with(|l| l.borrow_mut().clear());
            s.current = Some(Current {
                generations: now,
                claims: None,
            });
            return Ok(None);
        };
        // Before hashing it for the cache: the size cap comes first.
        let max = s.config.as_ref().map_or(0, |c| c.policy.max_token_bytes);
        token::check_size(token, max).map_err(SessionError::Token)?;
        if let Some(hit) = s.cache.get_mut(token) {
            let claims = Rc::clone(&hit.claims);
            SIGNED.with(|v| v.set(true));
            // A refusal from here (revoked) is counted and logged for this token's provider.
            REFUSED_BY.with(|r| *r.borrow_mut() = Rc::clone(&claims.provider));
            if hit.checked != now.shared {
                // The revocation list changed (or a standby replayed) since this token was last
                // found not revoked: check that again, nothing else (keys and settings are as
                // they were: the keys and configuration generations did not move).
                let Some(config) = s.config.as_ref() else {
                    return Err(SessionError::Keys(KeyError::Set("not loaded".into())));
                };
                let lookup = revocation::is_revoked(&claims.body, &claims.provider, &config.session_claim, now.shared)
                    .map_err(SessionError::Report)?;
                if lookup.revoked {
                    s.cache.pop(token);
                    return Err(SessionError::Revoked);
                }
                if !lookup.fresh {
                    // Good for this statement only (see below).
                    log_identity(&claims, token);
                    return Ok(Some(claims));
                }
                if let Some(hit) = s.cache.get_mut(token) {
                    hit.checked = now.shared;
                }
            }
            log_identity(&claims, token);
            s.current = Some(Current {
                generations: now,
                claims: Some(claims.clone()),
            });
            return Ok(Some(claims));
        }
        let Some(config) = s.config.as_ref() else {
            return Err(SessionError::Keys(KeyError::Set("not loaded".into())));
        };
        let verified = verify_token(config, token, None)?;
        if verified.known {
            s.shared_hits += 1;
        }
        if verified.from_record {
            s.shared_record_hits += 1;
        }
        let provider = verified.provider;
        let leeway = verified.leeway;
        // Revoked? Checked once per token per generation (a revocation's commit bumps it).
        let lookup = revocation::is_revoked(&verified.claims, &provider, &config.session_claim, now.shared)
            .map_err(SessionError::Report)?;
        if lookup.revoked {
            return Err(SessionError::Revoked);
        }
        let claims = Rc::new(Claims {
            body: verified.claims,
            times: verified.times,
            provider,
            leeway,
            converted: RefCell::new(Converted::EMPTY),
        });
        s.verifications += 1;
        // Counted by the backend that serves the session: a parallel worker verifies the token
        // again (it has no cache of its own), which is not another acceptance; nor is a
        // signed-in session's verification of its login token (counted once, at the sign-in's
        // end: `signin`), which a setting of its database or role may void after the sign-in.
        if !in_parallel_worker() && gucs::login_token().is_none() {
            crate::stats::count(crate::stats::row_of(&claims.provider), crate::stats::ACCEPTED);
        }
        log_identity(&claims, token);
        if !lookup.fresh {
            // Found in parallel mode, or by a transaction that changed the revocation list itself:
            // good for this statement (each call site caches it for the query), never kept
            // beyond it.
            return Ok(Some(claims));
        }
        // Kept unless the cache is full and the token did not miss before (`Table::keep`).
        s.cache.keep(
            token,
            Cached {
                claims: Rc::clone(&claims),
                checked: now.shared,
            },
        );
        s.current = Some(Current {
            generations: now,
            claims: Some(claims.clone()),
        });
        Ok(Some(claims))
    })
}

thread_local! {
    /// The token of the last "verified token" line this backend wrote (`log_identity`).
    static LOGGED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Whether this process is a parallel worker (it serves a leader's query, not a session).
fn in_parallel_worker() -> bool {
    // SAFETY: a plain read of a backend global (-1 outside parallel workers).
    unsafe { pg_sys::ParallelWorkerNumber >= 0 }
}

/// `pg_jwt.log_verified = first`: one line whenever this backend starts serving the claims of
/// another token (`token`, compared byte for byte) than the one it last logged, whether it
/// verified the token now or found it in its cache, so that the lines of a pooled backend
/// (pgaudit, `log_statement`) that follow are tied to the right person. The same token verified
/// again (its cache voided, a statement of a transaction that changed the revocation list)
/// writes no second line. Not in parallel workers (their leader logs).
fn log_identity(claims: &Claims, token: &[u8]) {
    if !gucs::log_verified_first() || in_parallel_worker() {
        return;
    }
    if LOGGED.with(|l| l.borrow().as_slice() == token) {
        return;
    }
    crate::stats::log::verified(&claims.provider, &claims.body);
    LOGGED.with(|l| {
        let mut l = l.borrow_mut();
        l.clear();
        l.extend_from_slice(token);
    });
}

/// A token whose signature and claims its provider's rules accept (revocation not checked).
pub struct Verified {
    pub claims: Body,
    pub times: TimeClaims,
    pub provider: Rc<str>,
    pub leeway: i64,
    /// Its signature was found in the shared verification cache.
    pub known: bool,
    /// With its algorithm: the header was not decoded again (`token::verify_recorded`).
    pub from_record: bool,
    /// The provider's `identity_claim` (sign-in), if it has one.
    #[cfg_attr(not(feature = "pg18"), allow(dead_code))]
    pub identity_claim: Option<String>,
}

/// Chooses the provider of `token` by its `iss` (a sign-in's, `signin`, is the provider whose
/// issuer is the `pg_hba.conf` line's: `choose_for_signin`, and the token's `iss` must then be
/// that issuer), and verifies signature and claims with that provider's keys and rules.
fn verify_token(config: &Config, token: &[u8], signin: Option<Chosen>) -> Result<Verified, SessionError> {
    REFUSED_BY.with(|r| *r.borrow_mut() = DEFAULT_NAME.with(Rc::clone));
    UNKNOWN_KID_OF.with(|u| *u.borrow_mut() = None);
    SIGNED.with(|v| v.set(false));
    let (chosen, peeked) = match signin {
        None => choose(config, token)?,
        Some(chosen) => (chosen, None),
    };
    if let Some(p) = chosen.listed() {
        REFUSED_BY.with(|r| *r.borrow_mut() = Rc::from(p.name.as_str()));
    }
    // The claims were read to choose the provider (`choose`): a token refused for its form gets
    // that reason before any other, as when the header was checked first (`token::peek`).
    let was_peeked = peeked.is_some();
    let form_first = |e: SessionError| match (was_peeked, &e) {
        (true, SessionError::Keys(_)) => match token::check_form(token, &config.policy) {
            Err(t) => SessionError::Token(t),
            Ok(()) => e,
        },
        _ => e,
    };
    // The coarse clock (a few ms behind at most), as every access's expiry re-check reads it:
    // seconds are all the claims are checked to.
    let now_s = clock::now_unix_coarse();
    // What the chosen provider verifies with: keys (and the fingerprint of their source,
    // which keys the shared cache), header policy and claim validation.
    let listed_keys;
    let listed_policy;
    let listed_keyer;
    let listed_required: Vec<String>;
    let (keys, keyer, policy, validation, provider, leeway) = match &chosen {
        Chosen::Default => {
            let keys = config
                .keys
                .as_ref()
                .map_err(|e| form_first(SessionError::Keys(e.clone())))?;
            let validation = Validation {
                leeway: config.leeway,
                audience: config.audience.as_deref(),
                issuer: config.issuer.as_deref(),
                session_claim: Some(&config.session_claim),
                ..Validation::new(now_s, &config.required)
            };
            let name = DEFAULT_NAME.with(Rc::clone);
            (keys, &config.keyer, &config.policy, validation, name, config.leeway)
        }
        Chosen::Listed(list, i, iss) => {
            let p = list
                .list
                .get(*i)
                .ok_or_else(|| form_first(SessionError::Keys(KeyError::Set("the provider list changed".into()))))?;
            let (set, print) = crate::providers::keys(p).map_err(|e| form_first(SessionError::Keys(e)))?;
            listed_keys = set;
            listed_keyer = token::CacheKeyer::new(&print);
            listed_policy = HeaderPolicy {
                allowed_algs: p.algorithms.clone(),
                allowed_typ: p.typ.clone(),
                ..config.policy.clone()
            };
            let leeway = p.leeway.unwrap_or(config.leeway);
            // A provider's `required_claims` adds to `pg_jwt.required_claims`, never replaces
            // it: a list naming the claims a provider needs (`sub`) must not drop `exp`.
            let required: &[String] = match &p.required_claims {
                None => &config.required,
                Some(own) => {
                    listed_required = config
                        .required
                        .iter()
                        .chain(own.iter().filter(|c| !config.required.contains(c)))
                        .cloned()
                        .collect();
                    &listed_required
                }
            };
            let validation = Validation {
                leeway,
                audience: None,
                audiences: &p.audience,
                issuer: Some(iss.as_str()),
                session_claim: Some(&config.session_claim),
                ..Validation::new(now_s, required)
            };
            (
                &*listed_keys,
                &listed_keyer,
                &listed_policy,
                validation,
                Rc::from(p.name.as_str()),
                leeway,
            )
        }
    };
    // A verification on record in shared memory (any backend verified these exact bytes under
    // this exact key set of this provider): only what may differ since is checked (the size cap,
    // the algorithm allowlist, the claims against this backend's settings and the clock:
    // `token::verify_recorded`, on the claims `choose` read if it read them); with a `typ` rule,
    // which needs the header, the signature only is vouched for. Nothing on record: everything.
    // (Both callers checked the size cap before anything hashes the token.)
    // From here a refusal for the claims (expiry, audience, issuer, ...) comes after the
    // signature: `verify_with` checks it before them, a record vouches for it. Earlier
    // refusals for the form or the key (outcomes the log never shows claims for) may follow too.
    SIGNED.with(|v| v.set(true));
    let place = shared_cache::place(token);
    let cache_key = keyer.key(token);
    let found = shared_cache::lookup(&place, &cache_key, now_s);
    let from_record = match (found, peeked) {
        (Some(Some(alg)), Some(peeked)) => token::verify_recorded_peeked(token, peeked, alg, policy, &validation),
        (Some(Some(alg)), None) => token::verify_recorded(token, alg, policy, &validation),
        _ => None,
    };
    let (claims, times, new_alg) = match from_record {
        Some(result) => {
            let (claims, times) = result.map_err(SessionError::Token)?;
            (claims, times, None)
        }
        None => {
            if was_peeked {
                // The header, as before the claims were read to choose the provider: a token
                // refused for its form gets that reason (a record vouches for the form).
                token::check_form(token, &config.policy).map_err(SessionError::Token)?;
            }
            let signature = if found.is_some() {
                Signature::KnownGood
            } else {
                Signature::Check
            };
            let verified = match token::verify_with(token, keys, policy, &validation, signature) {
                Err(TokenError::NoMatchingKey(m)) => {
                    if let Chosen::Listed(list, i, _) = &chosen {
                        UNKNOWN_KID_OF.with(|u| *u.borrow_mut() = Some((Rc::clone(list), *i)));
                    }
                    return Err(SessionError::Token(TokenError::NoMatchingKey(m)));
                }
                other => other.map_err(SessionError::Token)?,
            };
            (Body::Tree(verified.claims), verified.times, Some(verified.alg))
        }
    };
    if let Some(p) = chosen.listed() {
        // The template's claim, max_lifetime, claims constraints (read from the members of a
        // token from the record, without building its tree).
        p.check(&claims).map_err(SessionError::Token)?;
    }
    let known = found.is_some();
    if let (Some(alg), None) = (new_alg, found) {
        let until = times.window(leeway).until;
        // `as` saturates: no exp (an infinite window) is i64::MAX.
        shared_cache::insert(&place, &cache_key, until as i64, now_s, alg);
    }
    let identity_claim = chosen.listed().and_then(|p| p.identity_claim.clone());
    Ok(Verified {
        claims,
        times,
        provider,
        leeway,
        known,
        from_record: known && new_alg.is_none(),
        identity_claim,
    })
}

/// Verifies the token of a sign-in (PostgreSQL 18, `signin`) as a session token is verified,
/// with the provider whose issuer is `issuer` (the `pg_hba.conf` line's), except revocation
/// (no table can be read before a database is open: the first statement checks it). A refusal
/// is counted and logged as any other; the error is its reason, for the sign-in's log line.
#[cfg_attr(not(feature = "pg18"), allow(dead_code))]
pub fn verify_for_signin(token: &[u8], issuer: &str) -> Result<Verified, String> {
    SIGNED.with(|v| v.set(false));
    // Read before the configuration is loaded: a change meanwhile makes the session load again.
    let loaded = (
        crate::generations::config_generation(),
        crate::generations::keys_generation(),
    );
    let config = Config::load();
    // The provider is the line's, chosen once; a refusal before the verification (the size cap
    // comes first, then an issuer no provider has) is counted and logged for it (`default` when
    // the line's issuer names none).
    let chosen = choose_for_signin(&config, issuer);
    let line_provider = match &chosen {
        Ok(c) => c.listed().map(|p| Rc::from(p.name.as_str())),
        Err(_) => None,
    };
    REFUSED_BY.with(|r| *r.borrow_mut() = line_provider.unwrap_or_else(|| DEFAULT_NAME.with(Rc::clone)));
    let result = token::check_size(token, config.policy.max_token_bytes)
        .map_err(SessionError::Token)
        .and_then(|()| chosen)
        .and_then(|c| verify_token(&config, token, Some(c)));
    if let Ok(v) = &result {
        // The session starts with this configuration and this verification in its cache, so its
        // first statement does not verify the token again; it does check revocation (no table
        // could be read at sign-in): `checked` matches no shared generation.
        let claims = Rc::new(Claims {
            body: v.claims.clone(),
            times: v.times,
            provider: Rc::clone(&v.provider),
            leeway: v.leeway,
            converted: RefCell::new(Converted::EMPTY),
        });
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.reload(config, loaded);
            s.cache.keep(
                token,
                Cached {
                    claims,
                    checked: u64::MAX,
                },
            );
            s.current = None;
        });
    }
    result.map_err(|e| {
        let outcome = match &e {
            SessionError::Token(t) => Some(crate::stats::reason_of(t)),
            _ => None,
        };
        let provider = REFUSED_BY.with(|r| Rc::clone(&r.borrow()));
        if let Some(outcome) = outcome {
            crate::stats::log::refused(&provider, outcome, Some(token), SIGNED.with(Cell::get));
        }
        let report = e.report();
        match report.detail() {
            Some(d) => format!("{} ({d}), provider {provider}", report.message()),
            None => format!("{}, provider {provider}", report.message()),
        }
    })
}

/// The provider of a sign-in: the listed provider that `issuer` (the `pg_hba.conf` line's)
/// chooses, else `default` when `pg_jwt.issuer` is that issuer; else refused.
fn choose_for_signin(config: &Config, issuer: &str) -> Result<Chosen, SessionError> {
    let list = crate::providers::list();
    if let Some(c) = list.choose(issuer) {
        return Ok(Chosen::Listed(list, c.0, issuer.to_owned()));
    }
    if config.issuer.as_deref() == Some(issuer) {
        return Ok(Chosen::Default);
    }
    Err(SessionError::Token(TokenError::UnknownIssuer(
        pg_jwt_core::error::printable(issuer),
    )))
}

/// A refused token: counted and logged (`stats`), then the error to raise.
fn refused(e: SessionError) -> ErrorReport {
    let outcome = match &e {
        SessionError::Token(t) => Some(crate::stats::reason_of(t)),
        SessionError::Revoked => Some(crate::stats::REVOKED),
        // Not a refusal of the token: no key set, or a PostgreSQL error of the lookup.
        SessionError::Keys(_) | SessionError::Report(_) => None,
    };
    if let Some(outcome) = outcome {
        let provider = REFUSED_BY.with(|r| Rc::clone(&r.borrow()));
        // SAFETY: the token is only read within this call, which assigns no setting.
        let token = unsafe { gucs::token_bytes() };
        crate::stats::log::refused(&provider, outcome, token, SIGNED.with(Cell::get));
    }
    e.report()
}

/// (verifications done, tokens cached, configured capacity) in this backend. The capacity is
/// the setting's (applied to the cache at the next access after a change), so it is right
/// before the first verification too.
pub fn cache_stats() -> (u64, usize, usize, u64, u64) {
    STATE.with(|s| {
        let s = s.borrow();
        (
            s.verifications,
            s.cache.len(),
            gucs::cache_size(),
            s.shared_hits,
            s.shared_record_hits,
        )
    })
}

v1_function! {
    /// `jwt_cache_stats()`: this backend's verification cache as `{"verifications": n,
    /// "cached_tokens": n, "capacity": n, "shared_signature_hits": n, "shared_record_hits": n,
    /// "revocation_lookups": n,
    /// "revocation_filtered": n, "revocation_probes": n, "shared": {...}}`, where "shared" is the
    /// server's shared verification cache (capacity, entries, hits, misses, inserts, evictions)
    /// and "cluster" the revocation figures of every backend since the server started. Those two
    /// cover every database and tenant (how many distinct tokens the cluster verified, and when),
    /// so they are for superusers and members of pg_monitor, as `jwt_stats()` is: null for
    /// anyone else, who sees this backend's own figures. VOLATILE, PARALLEL SAFE.
    fn jwt_cache_stats_wrapper / pg_finfo_jwt_cache_stats_wrapper(_fcinfo) {
        let (verifications, cached, capacity, shared_hits, shared_record_hits) = cache_stats();
        let (lookups, filtered, probes) = crate::revocation::stats();
        // SAFETY: a SQL function's call, inside a transaction (a catalog lookup is allowed).
        let monitor = unsafe {
            pg_sys::has_privs_of_role(pg_sys::GetUserId(), pg_sys::Oid::from(pg_sys::ROLE_PG_MONITOR))
        };
        let (shared, cluster) = if monitor {
            let sh = shared_cache::stats(clock::now_unix());
            let (c_lookups, c_filtered, c_probes) = crate::stats::revocation_figures();
            (
                format!(
                    r#"{{"capacity": {}, "entries": {}, "hits": {}, "misses": {}, "inserts": {}, "evictions": {}}}"#,
                    sh.capacity, sh.entries, sh.hits, sh.misses, sh.inserts, sh.evictions
                ),
                format!(
                    r#"{{"revocation_lookups": {c_lookups}, "revocation_filtered": {c_filtered}, "revocation_probes": {c_probes}}}"#
                ),
            )
        } else {
            ("null".to_owned(), "null".to_owned())
        };
        crate::fmgr::jsonb_from_text(&format!(
            r#"{{"verifications": {verifications}, "cached_tokens": {cached}, "capacity": {capacity}, "shared_signature_hits": {shared_hits}, "shared_record_hits": {shared_record_hits}, "revocation_lookups": {lookups}, "revocation_filtered": {filtered}, "revocation_probes": {probes}, "shared": {shared}, "cluster": {cluster}}}"#
        ))
    }
}

extension_sql!(
    r#"
-- upgrade 0.3.0 begin
-- PARALLEL RESTRICTED: the figures are the calling backend's, never a parallel worker's.
CREATE FUNCTION jwt_cache_stats() RETURNS jsonb
    VOLATILE STRICT PARALLEL RESTRICTED LANGUAGE c AS 'MODULE_PATHNAME', 'jwt_cache_stats_wrapper';
-- upgrade 0.3.0 end
COMMENT ON FUNCTION jwt_cache_stats() IS 'This backend''s verification cache: verifications, cached_tokens, capacity';
"#,
    name = "jwt_cache_stats"
);

#[cfg(test)]
mod converted_tests {
    use super::Converted;

    /// Results are found under their own tag and name only, NULL included; names and values at
    /// the limits are kept, longer ones are not; tag 0 is never kept; slots are replaced in turn.
    #[test]
    fn converted_keeps_what_fits_under_its_own_key() {
        let mut c = Converted::EMPTY;
        c.put(2, b"tenant_id", Some(&[7; 16]));
        c.put(1, b"tenant_id", Some(b"text"));
        c.put(3, b"absent", None);
        assert_eq!(c.get(2, b"tenant_id"), Some(Some(&[7u8; 16][..])));
        assert_eq!(c.get(1, b"tenant_id"), Some(Some(&b"text"[..])));
        assert_eq!(c.get(3, b"absent"), Some(None));
        assert_eq!(c.get(2, b"tenant_i"), None);
        assert_eq!(c.get(2, b"tenant_idx"), None);
        assert_eq!(c.get(3, b"tenant_id"), None);
        // At the limits, and over them.
        let name = [b'n'; Converted::MAX_NAME];
        let value = [9u8; Converted::MAX_VALUE];
        c.put(1, &name, Some(&value));
        assert_eq!(c.get(1, &name), Some(Some(&value[..])));
        let long_name = [b'n'; Converted::MAX_NAME + 1];
        c.put(1, &long_name, Some(b"v"));
        assert_eq!(c.get(1, &long_name), None);
        c.put(1, b"big", Some(&[1; Converted::MAX_VALUE + 1]));
        assert_eq!(c.get(1, b"big"), None);
        c.put(0, b"claims", Some(b"{}"));
        assert_eq!(c.get(0, b"claims"), None);
        // Four slots: the fifth result replaces the first kept.
        c.put(4, b"", Some(b"provider"));
        assert_eq!(c.get(4, b""), Some(Some(&b"provider"[..])));
        assert_eq!(c.get(2, b"tenant_id"), None);
        assert_eq!(c.get(1, &name), Some(Some(&value[..])));
        // A result already kept is not kept twice.
        c.put(4, b"", Some(b"other"));
        assert_eq!(c.get(4, b""), Some(Some(&b"provider"[..])));
    }
}
