//! The key fetcher's work for listed providers (one call per turn of its loop, `jwks::fetcher`):
//! each provider that has a `jwks_uri` is fetched on its own schedule (the server's max-age
//! clamped to `pg_jwt.jwks_min_refresh`..`jwks_max_refresh`; after a failure a backoff that
//! doubles from the minimum), at most `CONCURRENCY` at once, each on a thread of its own. A
//! provider that hangs holds one of those threads until its timeouts, never the loop, and never
//! another provider's answer: a backend that asked for a refetch waits on its provider's own
//! counters (`slots::Signals`).
//!
//! The fetched sets live in `slots`; the last good set of each is also written to
//! `pg_jwt_providers/<name>.json` in the data directory (`jwks::persist`), so a restart while a
//! provider is unreachable still verifies its tokens, for at most `pg_jwt.jwks_max_stale`.

use crate::jwks::http::{self, Source};
use crate::jwks::persist;
use crate::providers::slots::{self, REQUEST_FORCED, REQUEST_UNKNOWN_KID};
use crate::{clock, gucs};
use pg_jwt_core::provider::Issuer;
use pg_jwt_core::token::key_set_fingerprint;
use pg_jwt_core::Providers;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// Fetches of listed providers running at once, at most.
pub const CONCURRENCY: usize = 8;

/// One listed provider that fetches, as the worker sees it.
struct Tracked {
    uri: String,
    /// The source's identity: the issuer for `discover`, else empty.
    source_issuer: String,
    /// The issuer to discover from (`discover` only).
    issuer: Option<String>,
    /// Its slot; `None`: every slot is taken (reported, fails closed).
    slot: Option<usize>,
    in_flight: Option<std::thread::JoinHandle<Result<http::Fetched, String>>>,
    failures_in_a_row: u32,
}

/// The worker's memory of listed providers between turns.
#[derive(Default)]
pub struct Fetching {
    tracked: HashMap<String, Tracked>,
    /// Whether the list was read since the worker started (or last reloaded).
    loaded: bool,
    /// Fetches in flight.
    running: usize,
    /// Unix seconds when the next scheduled fetch is due (the list is scanned then).
    next_due: i64,
    /// A fetch was due or asked for but no thread was free: scan again next turn.
    scan_again: bool,
    /// The second of the last staleness check (once a second).
    stale_checked: i64,
}

/// After a reload (SIGHUP): the list is read again at the next turn.
pub fn reloaded(f: &mut Fetching) {
    f.loaded = false;
}

/// The clock moved back by `step` seconds (the key fetcher's turn saw it,
/// `fetcher::clock_moved_back`): every provider's recorded times move back by as much, so that
/// each set keeps its age and each schedule its delay.
pub fn clock_moved_back(f: &mut Fetching, step: i64) {
    let back = |t: i64| persist::moved_back(t, step);
    slots::write(|w| {
        for i in 0..w.len() {
            if let Some(h) = w.head(i) {
                h.last_success = back(h.last_success);
                h.last_attempt = back(h.last_attempt);
                h.next_refresh = back(h.next_refresh);
            }
        }
    });
    if f.next_due != i64::MAX {
        f.next_due = back(f.next_due);
    }
    f.stale_checked = back(f.stale_checked);
    // The persisted files too, so that a restart keeps each set and its age.
    for (name, t) in &f.tracked {
        let Some(slot) = t.slot else { continue };
        let saved = slots::read(|r| {
            r.jwks(slot)
                .zip(r.head(slot))
                .map(|(j, h)| (j.to_vec(), h.from(), h.last_success))
        })
        .flatten();
        if let Some((jwks, from, fetched_at)) = saved.filter(|(_, _, t)| *t > 0) {
            if let Ok(text) = String::from_utf8(jwks) {
                persist::save_for(Some(name), &t.uri, &t.source_issuer, &from, &text, fetched_at);
            }
        }
    }
}

/// One turn: follow the list, collect finished fetches, answer requests, start what is due.
pub fn turn(f: &mut Fetching) {
    let now = clock::now_unix();
    if !f.loaded {
        f.loaded = true;
        follow_list(f, now);
        f.next_due = now;
    }
    if f.running > 0 {
        let names: Vec<String> = f
            .tracked
            .iter()
            .filter(|(_, t)| t.in_flight.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in &names {
            collect(f, name);
        }
        f.running = f.tracked.values().filter(|t| t.in_flight.is_some()).count();
    }
    // Idle turns (every 100 ms) cost a few loads, whatever the number of providers: the list is
    // scanned only when a fetch is due, a backend asked, or a fetch finished.
    let asked_any = slots::take_requests();
    if asked_any || now >= f.next_due || f.scan_again {
        scan(f, now);
    }
    if now != f.stale_checked {
        f.stale_checked = now;
        drop_stale(f, now);
    }
}

/// Starts what is due or asked for (at most `CONCURRENCY` at once), answers requests that come
/// too soon, and notes when the next fetch is due.
fn scan(f: &mut Fetching, now: i64) {
    f.scan_again = false;
    // Every slot's schedule in one pass under the shared lock.
    let times: Vec<(i64, i64)> = slots::read(|r| {
        (0..r.len())
            .map(|i| r.head(i).map_or((0, 0), |h| (h.next_refresh, h.last_attempt)))
            .collect()
    })
    .unwrap_or_default();
    let min_refresh = gucs::jwks_min_refresh();
    let mut next_due = i64::MAX;
    let names: Vec<String> = f
        .tracked
        .iter()
        .filter(|(_, t)| t.slot.is_some() && t.in_flight.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    for name in &names {
        let Some(slot) = f.tracked.get(name).and_then(|t| t.slot) else {
            continue;
        };
        let Some(signals) = slots::signals(slot) else { continue };
        let request = signals.request.swap(0, Ordering::AcqRel);
        let (next_refresh, last_attempt) = times.get(slot).copied().unwrap_or((0, 0));
        let asked = match request {
            REQUEST_FORCED => true,
            REQUEST_UNKNOWN_KID => now - last_attempt >= min_refresh,
            _ => false,
        };
        let due = now >= next_refresh;
        if (asked || due) && f.running < CONCURRENCY {
            start(f, name);
            f.running += 1;
        } else if asked || due {
            // No thread free: waits for a later turn (the next that collects a fetch scans).
            if asked {
                signals.request.fetch_max(request, Ordering::AcqRel);
            }
            f.scan_again = true;
        } else {
            if request != 0 {
                // Too soon after the last attempt: whoever asked gets the current state now.
                signals.started.fetch_add(1, Ordering::AcqRel);
                signals.finished.fetch_add(1, Ordering::AcqRel);
            }
            next_due = next_due.min(next_refresh);
        }
    }
    f.next_due = next_due;
}

/// The source's identity of a provider (as `jwks::state::source_issuer`).
pub fn source_issuer(uri: &str, issuer: &Issuer) -> String {
    match issuer {
        Issuer::Exact(iss) if uri == "discover" => iss.clone(),
        _ => String::new(),
    }
}

/// Reads `pg_jwt.providers` and matches the tracked providers to it: a provider whose source is
/// unchanged keeps its slot and its set; a removed or changed one frees its slot; a new one takes
/// a free slot (its persisted set, if any and not stale) and is fetched at once.
fn follow_list(f: &mut Fetching, now: i64) {
    // SAFETY: parsed at once, before anything can change the setting.
    let list = unsafe { gucs::providers_bytes() }
        .map(|t| Providers::parse_with(t, false))
        .unwrap_or_else(|| Ok(Providers::default()))
        .unwrap_or_default();
    let mut wanted: HashMap<String, (String, String, Option<String>)> = HashMap::new();
    for p in &list.list {
        if let Some(uri) = &p.jwks_uri {
            let issuer = match &p.issuer {
                Issuer::Exact(i) => Some(i.clone()),
                Issuer::Template { .. } => None,
            };
            wanted.insert(p.name.clone(), (uri.clone(), source_issuer(uri, &p.issuer), issuer));
        }
    }
    let mut changed = false;
    // Forget what is gone or changed (a fetch in flight is left to finish, its result unused),
    // and every provider still without a slot: it is placed again below, now that slots may
    // have been freed.
    let gone: Vec<String> = f
        .tracked
        .iter()
        .filter(|(name, t)| {
            t.slot.is_none()
                || wanted
                    .get(*name)
                    .is_none_or(|(u, s, _)| *u != t.uri || *s != t.source_issuer)
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in gone {
        if let Some(Tracked { slot: Some(i), .. }) = f.tracked.remove(&name) {
            slots::write(|w| {
                if let Some(h) = w.head(i) {
                    *h = slots::Head::default();
                }
                w.clear_jwks(i);
            });
            // Its fetch in flight, if any, will never count as finished.
            slots::settle(i);
            changed = true;
        }
    }
    // Slots no tracked provider holds (a restarted worker finds its predecessor's): adopted by
    // the provider and source they were made for, if it is still wanted; freed otherwise.
    // Before any new provider looks for a free slot.
    let held: Vec<usize> = f.tracked.values().filter_map(|t| t.slot).collect();
    let adopted: Vec<(String, usize)> = slots::write(|w| {
        let mut adopted = Vec::new();
        for i in 0..w.len() {
            if held.contains(&i) {
                continue;
            }
            let Some(h) = w.head(i) else { continue };
            if h.used == 0 {
                continue;
            }
            let name = h.name();
            let keep = !f.tracked.contains_key(&name)
                && !adopted.iter().any(|(n, _)| *n == name)
                && wanted.get(&name).is_some_and(|(u, s, _)| h.is(&name, u, s));
            if keep {
                adopted.push((name, i));
            } else {
                *h = slots::Head::default();
                w.clear_jwks(i);
                changed = true;
            }
        }
        adopted
    })
    .unwrap_or_default();
    for (name, i) in adopted {
        let Some((uri, source, issuer)) = wanted.get(&name) else {
            continue;
        };
        slots::write(|w| {
            if let Some(h) = w.head(i) {
                h.next_refresh = now;
            }
        });
        // The predecessor's fetch in flight, if any, ended with it.
        slots::settle(i);
        log!("pg_jwt: key fetcher: the key set in force for provider \"{name}\" stays");
        f.tracked.insert(
            name,
            Tracked {
                uri: uri.clone(),
                source_issuer: source.clone(),
                issuer: issuer.clone(),
                slot: Some(i),
                in_flight: None,
                failures_in_a_row: 0,
            },
        );
    }
    // New providers, in list order, take free slots.
    for p in &list.list {
        let Some((uri, source, issuer)) = wanted.get(&p.name) else {
            continue;
        };
        if f.tracked.contains_key(&p.name) {
            continue;
        }
        let slot = slots::write(|w| {
            let free = (0..w.len()).find(|&i| w.head(i).is_some_and(|h| h.used == 0))?;
            if let Some(h) = w.head(free) {
                h.assign(&p.name, uri, source);
                h.next_refresh = now;
            }
            Some(free)
        })
        .flatten();
        if let Some(i) = slot {
            slots::settle(i);
            if let Some(saved) = persist::load_for(Some(&p.name), uri, source, now) {
                let print = key_set_fingerprint(&[Some(saved.jwks.as_bytes())]);
                slots::write(|w| {
                    if w.set_jwks(i, saved.jwks.as_bytes(), print) {
                        if let Some(h) = w.head(i) {
                            h.set_from(&saved.from);
                            h.last_success = saved.fetched_at;
                        }
                    }
                });
                log!(
                    "pg_jwt: key set of provider \"{}\" restored from the data directory (fetched at {})",
                    p.name,
                    saved.fetched_at
                );
                changed = true;
            }
        } else {
            warning!(
                "pg_jwt: provider \"{}\" has no slot for its key set: all {} slots (pg_jwt.max_providers) are taken; its tokens are refused",
                p.name,
                slots::count()
            );
        }
        f.tracked.insert(
            p.name.clone(),
            Tracked {
                uri: uri.clone(),
                source_issuer: source.clone(),
                issuer: issuer.clone(),
                slot,
                in_flight: None,
                failures_in_a_row: 0,
            },
        );
    }
    // The implicit provider's issuer is also a listed one's: the listed provider verifies
    // those tokens (it is chosen first), never `default`. Said once per reload.
    if let Some(iss) = gucs::issuer() {
        if let Some(p) = list.choose(&iss).and_then(|c| list.get(c)) {
            warning!(
                "pg_jwt: pg_jwt.issuer is also the issuer of listed provider \"{}\": its tokens are verified by that provider, never by the provider default",
                p.name
            );
        }
    }
    if changed {
        crate::generations::key_set_changed();
    }
}

fn start(f: &mut Fetching, name: &str) {
    let Some(t) = f.tracked.get_mut(name) else { return };
    let Some(slot) = t.slot else { return };
    let ca_file = gucs::jwks_ca_file();
    let uri = t.uri.clone();
    let issuer = t.issuer.clone();
    let work = move || {
        http::fetch(&Source {
            jwks_uri: &uri,
            issuer: issuer.as_deref(),
            ca_file: ca_file.as_deref(),
        })
    };
    if let Some(s) = slots::signals(slot) {
        s.started.fetch_add(1, Ordering::AcqRel);
    }
    match http::spawn_blocked(work) {
        Ok(handle) => t.in_flight = Some(handle),
        Err(e) => apply(f, name, Err(format!("could not start the fetch: {}", e.kind()))),
    }
}

fn collect(f: &mut Fetching, name: &str) {
    let Some(t) = f.tracked.get_mut(name) else { return };
    let Some(handle) = t.in_flight.take_if(|h| h.is_finished()) else {
        return;
    };
    let result = handle
        .join()
        .unwrap_or_else(|_| Err("the fetch failed unexpectedly".to_owned()));
    apply(f, name, result);
}

/// Applies the result of a fetch to the provider's slot, then marks its requests answered.
fn apply(f: &mut Fetching, name: &str, result: Result<http::Fetched, String>) {
    let Some(t) = f.tracked.get_mut(name) else { return };
    let Some(slot) = t.slot else { return };
    let done = clock::now_unix();
    let min = gucs::jwks_min_refresh();
    let max = gucs::jwks_max_refresh().max(min);
    let result = result.and_then(|fetched| {
        let cap = slots::capacity();
        if fetched.text.len() > cap {
            Err(format!(
                "the key set from {} is {} bytes, larger than pg_jwt.provider_jwks_max_bytes ({cap})",
                fetched.uri,
                fetched.text.len()
            ))
        } else {
            Ok(fetched)
        }
    });
    match result {
        Ok(fetched) => {
            t.failures_in_a_row = 0;
            let wait = fetched
                .max_age
                .map_or(max, |d| i64::try_from(d.as_secs()).unwrap_or(max))
                .clamp(min, max);
            let print = key_set_fingerprint(&[Some(fetched.text.as_bytes())]);
            let changed = slots::write(|w| {
                let changed = w.head(slot).is_some_and(|h| h.jwks_len == 0 || h.fingerprint != print);
                w.set_jwks(slot, fetched.text.as_bytes(), print);
                if let Some(h) = w.head(slot) {
                    h.set_from(&fetched.uri);
                    h.set_error("");
                    h.last_success = done;
                    h.last_attempt = done;
                    h.next_refresh = done + wait;
                    h.fetches += 1;
                }
                changed
            })
            .unwrap_or(false);
            if changed {
                log!(
                    "pg_jwt: new key set for provider \"{name}\" from {}: kids [{}]",
                    fetched.uri,
                    // A provider chooses its kids: printable (control characters escaped).
                    fetched
                        .kids
                        .iter()
                        .map(|k| pg_jwt_core::error::printable(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                crate::generations::key_set_changed();
            }
            persist::save_for(Some(name), &t.uri, &t.source_issuer, &fetched.uri, &fetched.text, done);
        }
        Err(reason) => {
            t.failures_in_a_row = t.failures_in_a_row.saturating_add(1);
            let backoff = min
                .saturating_mul(1i64 << t.failures_in_a_row.saturating_sub(1).min(20))
                .clamp(min, max);
            warning!("pg_jwt: fetching the key set of provider \"{name}\" failed, its last good set stays in force: {reason}");
            slots::write(|w| {
                if let Some(h) = w.head(slot) {
                    h.set_error(&reason);
                    h.last_attempt = done;
                    h.next_refresh = done + backoff;
                    h.failures += 1;
                }
            });
        }
    }
    if let Some(s) = slots::signals(slot) {
        s.finished.fetch_add(1, Ordering::AcqRel);
    }
    // Its next fetch (or retry) may be due before the time noted: scan at the next turn.
    f.scan_again = true;
}

/// Drops a provider's fetched set after `pg_jwt.jwks_max_stale` without a successful fetch
/// (checked once a second, in one pass).
fn drop_stale(f: &mut Fetching, now: i64) {
    let max_stale = gucs::jwks_max_stale();
    let stale: Vec<usize> = slots::read(|r| {
        (0..r.len())
            .filter(|&i| {
                r.head(i)
                    .is_some_and(|h| h.used == 1 && h.jwks_len > 0 && persist::stale(now, h.last_success, max_stale))
            })
            .collect()
    })
    .unwrap_or_default();
    for (name, t) in &f.tracked {
        let Some(slot) = t.slot.filter(|s| stale.contains(s)) else {
            continue;
        };
        slots::write(|w| {
            w.clear_jwks(slot);
            if let Some(h) = w.head(slot) {
                h.set_error(persist::STALE);
            }
        });
        warning!("pg_jwt: the key set of provider \"{name}\" is stale and no longer in force");
        persist::remove_for(Some(name));
        crate::generations::key_set_changed();
    }
}
