//! Several identity providers (`pg_jwt.providers`): each issuer with its own keys, audiences,
//! algorithms and claim constraints, chosen by the token's `iss`, never by trying keys.
//!
//! - `mod.rs` (here): the list in force in this backend (parsed once per configuration
//!   generation), and each listed provider's key set (pinned, fetched, or both), imported when
//!   a token of that provider is first verified and kept while its fingerprint is unchanged;
//! - `slots.rs`: the fetched key sets in shared memory, bounded (`pg_jwt.max_providers` ×
//!   `pg_jwt.provider_jwks_max_bytes`);
//! - `fetch.rs`: the key fetcher's work for listed providers (own schedule and backoff each,
//!   bounded concurrency);
//! `jwt_provider()` is a claim accessor (`accessors`); the providers' rows of
//! `jwt_jwks_status()` and `jwt_jwks_refresh(provider)` are with the implicit provider's
//! (`jwks::sql`).
//!
//! The single-provider settings (`pg_jwt.jwks`, `pg_jwt.jwks_uri`, `pg_jwt.issuer`, ...) keep
//! working as the implicit provider `default` (`session`). Why a token's provider costs nothing
//! per row: the choice is made once per verification (an exact issuer is one hash lookup), and
//! the per-row path reads the verified claims, which carry their provider's name.

pub mod fetch;
pub mod slots;

use crate::generations;
use pg_jwt_core::provider::Provider;
use pg_jwt_core::token::key_set_fingerprint;
use pg_jwt_core::{KeyError, KeySet, Providers};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// The parsed list and the configuration generation it was parsed at.
    static LIST: RefCell<Option<(u64, Rc<Providers>)>> = const { RefCell::new(None) };
    /// Imported key sets by provider name, with the fingerprint of the texts they came from.
    /// (fingerprint of what it was imported from, the slot's fingerprint of the fetched part).
    static KEYS: RefCell<HashMap<String, Imported>> = RefCell::new(HashMap::new());
}

struct Imported {
    print: [u8; 32],
    slot_print: Option<[u8; 32]>,
    set: Rc<KeySet>,
    /// (configuration generation, keys generation) when it was last found current: while both
    /// stay, neither the list nor any fetched set changed (`key_set_changed` bumps the keys
    /// generation), so the import is used without reading shared memory.
    checked_at: (u64, u64),
}

/// The provider list in force in this backend (empty when `pg_jwt.providers` is unset). The
/// check hook refused every list that does not parse, so a parse error here cannot happen; it
/// would leave no listed provider (their tokens refused: fail closed).
pub fn list() -> Rc<Providers> {
    let generation = generations::config_generation();
    LIST.with(|l| {
        let mut l = l.borrow_mut();
        if let Some((g, list)) = l.as_ref() {
            if *g == generation {
                return Rc::clone(list);
            }
        }
        // SAFETY: parsed at once, before anything can change the setting.
        let parsed = unsafe { crate::gucs::providers_bytes() }
            .map(|t| Providers::parse_with(t, false))
            .unwrap_or_else(|| Ok(Providers::default()))
            .unwrap_or_default();
        let list = Rc::new(parsed);
        // Imports of providers no longer listed are dropped.
        KEYS.with(|k| k.borrow_mut().retain(|name, _| list.by_name(name).is_some()));
        *l = Some((generation, Rc::clone(&list)));
        list
    })
}

/// A listed provider's key source as the fetcher identifies it: (uri, issuer for discover).
fn source(p: &Provider) -> Option<(String, String)> {
    let uri = p.jwks_uri.clone()?;
    let issuer = fetch::source_issuer(&uri, &p.issuer);
    Some((uri, issuer))
}

/// What the slot of a fetching provider holds right now.
enum Fetched {
    /// The key set's text is unchanged since the fingerprint the caller knows.
    Same([u8; 32]),
    New(Vec<u8>, [u8; 32]),
    Missing(String),
}

fn fetched(p: &Provider, uri: &str, issuer: &str, known: Option<[u8; 32]>) -> Fetched {
    let found = slots::read(|r| {
        let Some(i) = r.find(&p.name, uri, issuer) else {
            return Fetched::Missing(format!(
                "provider \"{}\" has no key set in shared memory: every slot is taken (raise pg_jwt.max_providers) or the key fetcher has not taken up the list yet",
                p.name
            ));
        };
        let head = r.head(i).copied().unwrap_or_default();
        match r.jwks(i) {
            Some(_) if known == Some(head.fingerprint) => Fetched::Same(head.fingerprint),
            Some(text) => Fetched::New(text.to_vec(), head.fingerprint),
            // Not the fetch's error: it names the provider's `jwks_uri` (a query string may
            // hold a credential), which `pg_jwt.providers` hides; `jwt_jwks_status()` shows it
            // to those who may read that setting, and the key fetcher logs it.
            None if head.error().is_empty() => {
                Fetched::Missing(format!("no key set of provider \"{}\" is in force yet", p.name))
            }
            None => Fetched::Missing(format!(
                "no key set of provider \"{}\" is in force: its last fetch failed (see jwt_jwks_status() or the server log)",
                p.name
            )),
        }
    });
    found.unwrap_or_else(|| {
        Fetched::Missing("no shared memory for listed providers' key sets (pg_jwt.max_providers is 0)".into())
    })
}

/// The key set of listed provider `p` (pinned `jwks`, its fetched set, or both merged: a `kid`
/// in both is refused) and a fingerprint of what it was imported from, which keys the shared
/// verification cache (with the provider's name).
pub fn keys(p: &Provider) -> Result<(Rc<KeySet>, [u8; 32]), KeyError> {
    let now = (generations::config_generation(), generations::keys_generation());
    let current = KEYS.with(|k| {
        k.borrow()
            .get(&p.name)
            .and_then(|i| (i.checked_at == now).then(|| (Rc::clone(&i.set), i.print)))
    });
    if let Some(found) = current {
        return Ok(found);
    }
    let pinned = p.jwks.as_deref().map(str::as_bytes);
    let known = KEYS.with(|k| k.borrow().get(&p.name).and_then(|i| i.slot_print));
    let (fetched_text, fetched_print) = match source(p) {
        None => (None, None),
        Some((uri, issuer)) => {
            // Unchanged since the last import: no copy of the text.
            match fetched(p, &uri, &issuer, known) {
                Fetched::Same(f) => (None, Some(f)),
                Fetched::New(text, f) => (Some(text), Some(f)),
                Fetched::Missing(reason) if pinned.is_none() => return Err(KeyError::Set(reason)),
                Fetched::Missing(_) => (None, None),
            }
        }
    };
    let print = key_set_fingerprint(&[
        Some(p.name.as_bytes()),
        pinned,
        fetched_print.as_ref().map(|f: &[u8; 32]| f.as_slice()),
    ]);
    let reused = KEYS.with(|k| {
        let mut k = k.borrow_mut();
        let i = k.get_mut(&p.name)?;
        (i.print == print).then(|| {
            i.checked_at = now;
            Rc::clone(&i.set)
        })
    });
    if let Some(set) = reused {
        return Ok((set, print));
    }
    // The slot's set is unchanged but this import is not (the pinned part changed): copy it,
    // labelled with the fingerprint of what this second read returned.
    let (fetched_text, fetched_print, print) = match (fetched_text, source(p)) {
        (None, Some((uri, issuer))) if fetched_print.is_some() => match fetched(p, &uri, &issuer, None) {
            Fetched::New(text, f) => {
                let print = key_set_fingerprint(&[Some(p.name.as_bytes()), pinned, Some(f.as_slice())]);
                (Some(text), Some(f), print)
            }
            _ => (None, None, print),
        },
        (text, _) => (text, fetched_print, print),
    };
    let fixed = pinned.map(KeySet::parse).transpose()?;
    let from_slot = fetched_text
        .as_deref()
        .map(|t| {
            KeySet::parse(t)
                .map_err(|e| {
                    KeyError::Set(format!(
                        "the key set fetched for provider \"{}\" does not import: {e}",
                        p.name
                    ))
                })
                .and_then(|set| {
                    // The key fetcher refuses such a set (`http::fetch`); a saved file could
                    // still hold one.
                    if set.holds_secrets {
                        Err(KeyError::Set(format!(
                            "the key set fetched for provider \"{}\" holds a secret (oct) key",
                            p.name
                        )))
                    } else {
                        Ok(set)
                    }
                })
        })
        .transpose()?;
    let set = match (fixed, from_slot) {
        (None, None) => return Err(KeyError::Set(format!("provider \"{}\" has no key set", p.name))),
        (Some(s), None) | (None, Some(s)) => s,
        (Some(a), Some(b)) => KeySet::merge(a, b)?,
    };
    let set = Rc::new(set);
    let imported = Imported {
        print,
        slot_print: fetched_print,
        set: Rc::clone(&set),
        checked_at: now,
    };
    KEYS.with(|k| k.borrow_mut().insert(p.name.clone(), imported));
    Ok((set, print))
}

/// After an unknown `kid` in a token of listed provider `p`: asks the key fetcher to refetch
/// its set (rate limited across backends) and waits up to `pg_jwt.jwks_fetch_wait`. True when
/// the keys generation moved meanwhile (a new set: worth a retry).
pub fn refetched_for_unknown_key(p: &Provider) -> bool {
    let wait = crate::gucs::jwks_fetch_wait_ms();
    let Some((uri, issuer)) = source(p) else { return false };
    if wait <= 0 {
        return false;
    }
    let Some(Some(slot)) = slots::read(|r| r.find(&p.name, &uri, &issuer)) else {
        return false;
    };
    let before = generations::keys_generation();
    let now = crate::clock::now_unix();
    let Some(started) = slots::request(slot, slots::REQUEST_UNKNOWN_KID, now, crate::gucs::jwks_min_refresh()) else {
        return false;
    };
    slots::wait(slot, started, wait);
    generations::keys_generation() != before
}
