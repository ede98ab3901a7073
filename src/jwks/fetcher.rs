//! The key fetcher: one background worker, registered at preload, that does all network I/O
//! (no backend ever does). It needs no database connection, so it also runs on a hot standby.
//!
//! Each turn (every 100 ms, or when a backend sets its latch) it watches standby replay, starts
//! revocation purges, and decides whether to fetch
//! `pg_jwt.jwks_uri`: when the refresh time has come (the server's `Cache-Control: max-age` or
//! `Expires`, clamped between `pg_jwt.jwks_min_refresh` and `pg_jwt.jwks_max_refresh`; after a
//! failure, a backoff that doubles from the minimum), when a backend met an unknown `kid` (at
//! most once per minimum interval), or when `jwt_jwks_refresh()` asks. A fetch that fails keeps
//! the last good set; a set older than `pg_jwt.jwks_max_stale` without a successful fetch is
//! dropped, and tokens that needed it fail closed. The last good set is also written to
//! `pg_jwt_jwks.json` in the data directory, so a restart while the provider is unreachable still
//! verifies tokens.
//!
//! The fetch itself (DNS, TLS, HTTP: up to `http::DNS_TIMEOUT` plus
//! `http::TOTAL_TIMEOUT` per request) runs on a thread of its own that calls no
//! PostgreSQL function and receives no signal; the worker's loop only starts it and collects
//! its result. So a provider that hangs never delays the replay watcher (revocations on a
//! standby) or the purges.

use crate::jwks::http::{self, Source};
use crate::jwks::persist;
use crate::jwks::state;
use crate::{clock, gucs};
use pg_jwt_core::KeySet;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;
use std::time::Duration;

/// Registers the worker. Call from `_PG_init`, only when preloaded.
pub fn register() {
    BackgroundWorkerBuilder::new("pg_jwt key fetcher")
        .set_type("pg_jwt key fetcher")
        .set_library("pg_jwt")
        .set_function("pg_jwt_key_fetcher_main")
        .enable_shmem_access(None)
        .set_start_time(BgWorkerStartTime::PostmasterStart)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// A fetch running on its own thread.
struct InFlight {
    handle: std::thread::JoinHandle<Result<http::Fetched, String>>,
    /// The last request ticket issued when it started: answered when it is collected.
    ticket: u64,
}

/// What the worker remembers between turns (the rest is in shared memory).
struct Turn {
    /// On a hot standby: the WAL replay position last seen (see `standby_replay`).
    replayed: u64,
    /// The `pg_jwt.jwks_uri` value it works for ("" when fetching is off).
    uri: String,
    /// With `uri`, the source's identity (`state::source_issuer`).
    issuer: String,
    in_flight: Option<InFlight>,
    /// Failed attempts in a row (for the backoff).
    failures_in_a_row: u32,
    /// Unix seconds of the last purge of expired revocations.
    last_purge: i64,
    /// Unix seconds at the previous turn (to see the clock move back).
    last_now: i64,
    /// Listed providers (`providers::fetch`).
    providers: crate::providers::fetch::Fetching,
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_jwt_key_fetcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // SAFETY: MyProc is this process's PGPROC, in shared memory, set before the worker's main.
    state::set_worker_proc(unsafe { pg_sys::MyProc });
    let mut turn = Turn {
        replayed: 0,
        uri: String::new(),
        issuer: String::new(),
        in_flight: None,
        failures_in_a_row: 0,
        last_purge: clock::now_unix(),
        // A worker restarted after the clock moved back finds the times its predecessor
        // recorded ahead of it: the last attempt stands for its last turn.
        last_now: clock::now_unix().max(state::read(|s| s.last_attempt)),
        providers: Default::default(),
    };
    while BackgroundWorker::wait_latch(Some(Duration::from_millis(100))) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a background worker to reread its configuration.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            // The shared cache is not voided: a record is keyed by its key set's fingerprint,
            // and every setting it does not depend on is checked again at each hit. Voiding it
            // at every reload sent every backend through a new signature check of every token.
            crate::providers::fetch::reloaded(&mut turn.providers);
        }
        one_turn(&mut turn);
    }
    state::set_worker_proc(std::ptr::null_mut());
}

fn one_turn(turn: &mut Turn) {
    // Requests with a ticket up to this one are answered by the end of this turn, unless a
    // fetch is running: then by the end of the turn that collects it.
    let ticket = state::last_ticket();
    let now = clock::now_unix();
    if persist::clock_moved_back(now, turn.last_now) {
        clock_moved_back(turn, turn.last_now.saturating_sub(now));
    }
    turn.last_now = now;
    standby_replay(turn);
    // Suppressed refused-token lines of an earlier second are reported within a turn.
    crate::stats::log::roll_second();
    crate::revocation::purge::launch_if_due(&mut turn.last_purge);
    turn_body(turn, ticket);
    crate::providers::fetch::turn(&mut turn.providers);
    if turn.in_flight.is_none() {
        state::answer(ticket);
    }
}

/// The clock moved back by `step` seconds since the previous turn (an NTP step): every time the
/// worker recorded by the old clock moves back by as much, so that each key set keeps its age
/// (`pg_jwt.jwks_max_stale` still counts from its last successful fetch) and each schedule its
/// delay (see `persist::clock_moved_back`). A fetch in flight records the new clock's time.
fn clock_moved_back(turn: &mut Turn, step: i64) {
    let back = |t: i64| persist::moved_back(t, step);
    state::update(|s| {
        s.last_success = back(s.last_success);
        s.last_attempt = back(s.last_attempt);
        s.next_refresh = back(s.next_refresh);
    });
    turn.last_purge = back(turn.last_purge);
    // The persisted file too, so that a restart keeps the set and its age.
    let saved = state::read(|s| s.jwks().map(|j| (j.to_vec(), s.from(), s.last_success)));
    if let Some((jwks, from, fetched_at)) = saved.filter(|(_, _, t)| *t > 0) {
        if let Ok(text) = String::from_utf8(jwks) {
            persist::save(&turn.uri, &turn.issuer, &from, &text, fetched_at);
        }
    }
    crate::providers::fetch::clock_moved_back(&mut turn.providers, step);
    warning!("pg_jwt: the clock moved back {step} s; the key fetcher's times moved back with it");
}

/// On a hot standby, revocations arrive by WAL replay, without the commit callback that bumps
/// the shared generation on the primary. So whenever replay has advanced since the last turn
/// (at most every 100 ms), bump it here: cached verifications are checked again against the
/// replayed table at their next access. Also after recovery has ended: what was replayed
/// between the last turn in recovery and the promotion (a paused or delayed replay's whole
/// backlog) moved the pointer once more, and the promoted server's backends must see it.
fn standby_replay(turn: &mut Turn) {
    // SAFETY: reads shared memory the startup process maintains (under its spinlock); callable
    // from any process attached to shared memory.
    let replayed = unsafe { pg_sys::GetXLogReplayRecPtr(std::ptr::null_mut()) };
    // On a server that was never a standby the pointer stays where crash recovery left it: one
    // bump at the key fetcher's start, none after.
    if replayed != turn.replayed {
        turn.replayed = replayed;
        crate::generations::bump_shared_generation();
    }
}

fn turn_body(turn: &mut Turn, ticket: u64) {
    let uri = gucs::jwks_uri().unwrap_or_default();
    let issuer_setting = gucs::issuer();
    let issuer = state::source_issuer(&uri, issuer_setting.as_deref());
    let now = clock::now_unix();
    if uri != turn.uri || issuer != turn.issuer {
        if let Some(old) = turn.in_flight.take() {
            // A fetch for the old source: left to finish on its own, its result unused.
            state::answer(old.ticket);
        }
        source_changed(turn, &uri, &issuer, now);
    }
    if let Some(f) = turn.in_flight.take_if(|f| f.handle.is_finished()) {
        let result = f
            .handle
            .join()
            .unwrap_or_else(|_| Err("the fetch failed unexpectedly".to_owned()));
        collect(turn, &uri, result);
        state::answer(f.ticket);
    }
    if uri.is_empty() {
        state::take_request();
        return;
    }
    if turn.in_flight.is_none() {
        let request = state::take_request();
        let (next_refresh, last_attempt) = state::read(|s| (s.next_refresh, s.last_attempt));
        let due = now >= next_refresh;
        let asked = match request {
            state::REQUEST_FORCED => true,
            state::REQUEST_UNKNOWN_KID => now - last_attempt >= gucs::jwks_min_refresh(),
            _ => false,
        };
        // Otherwise (too soon after the last attempt) whoever asked gets the current state.
        if due || asked {
            start_fetch(turn, &uri, issuer_setting, ticket);
        }
    }
    drop_if_stale(now);
}

/// A new source (`pg_jwt.jwks_uri`, and for `discover` `pg_jwt.issuer`), or the first turn:
/// forget the old source, take the persisted set if it is for this source and not stale, and
/// fetch at once. A worker that restarted finds its own source's live set in shared memory
/// and keeps it.
fn source_changed(turn: &mut Turn, uri: &str, issuer: &str, now: i64) {
    turn.uri = uri.to_owned();
    turn.issuer = issuer.to_owned();
    turn.failures_in_a_row = 0;
    let live = !uri.is_empty() && state::read(|s| s.is_for(uri, issuer) && s.jwks().is_some());
    if live {
        state::update(|s| s.next_refresh = now);
        log!("pg_jwt: key fetcher started; the key set in force for {uri} stays");
        return;
    }
    let persisted = if uri.is_empty() {
        None
    } else {
        persist::load(uri, issuer, now)
    };
    state::update(|s| {
        *s = state::FetchState::default();
        s.set_uri(uri);
        s.set_issuer(issuer);
        if let Some(p) = &persisted {
            s.set_jwks(p.jwks.as_bytes());
            s.set_from(&p.from);
            s.last_success = p.fetched_at;
        }
        s.next_refresh = now;
    });
    if let Some(p) = &persisted {
        log!(
            "pg_jwt: key set for {uri} restored from {} (fetched at {})",
            persist::FILE,
            p.fetched_at
        );
    }
    crate::generations::key_set_changed();
}

/// Starts a fetch on its own thread, with every signal blocked there (PostgreSQL's handlers
/// must run on the worker's own thread).
fn start_fetch(turn: &mut Turn, uri: &str, issuer: Option<String>, ticket: u64) {
    let ca_file = gucs::jwks_ca_file();
    let uri = uri.to_owned();
    let work = move || {
        http::fetch(&Source {
            jwks_uri: &uri,
            issuer: issuer.as_deref(),
            ca_file: ca_file.as_deref(),
        })
    };
    let spawned = http::spawn_blocked(work);
    match spawned {
        Ok(handle) => turn.in_flight = Some(InFlight { handle, ticket }),
        Err(e) => collect(
            turn,
            &turn.uri.clone(),
            Err(format!("could not start the fetch: {}", e.kind())),
        ),
    }
}

/// Applies the result of a fetch for the current source.
fn collect(turn: &mut Turn, uri: &str, result: Result<http::Fetched, String>) {
    let done = clock::now_unix();
    let min = gucs::jwks_min_refresh();
    let max = gucs::jwks_max_refresh();
    match result {
        Ok(fetched) => {
            turn.failures_in_a_row = 0;
            let wait = fetched
                .max_age
                .map_or(max, |d| i64::try_from(d.as_secs()).unwrap_or(max))
                .clamp(min, max);
            // The old set's text, only when it differs (then its kids are logged).
            let old: Option<Option<Vec<u8>>> =
                state::read(|s| (s.jwks() != Some(fetched.text.as_bytes())).then(|| s.jwks().map(<[u8]>::to_vec)));
            state::update(|s| {
                s.set_jwks(fetched.text.as_bytes());
                s.set_from(&fetched.uri);
                s.set_error("");
                s.last_success = done;
                s.last_attempt = done;
                s.next_refresh = done + wait;
                s.fetches += 1;
            });
            if let Some(old) = old {
                log_kid_changes(old.as_deref(), &fetched.kids, &fetched.uri);
                crate::generations::key_set_changed();
            }
            // Every successful fetch, changed or not: the file's fetched_at is what a restart
            // with the provider down measures pg_jwt.jwks_max_stale from.
            persist::save(uri, &turn.issuer, &fetched.uri, &fetched.text, done);
        }
        Err(reason) => {
            turn.failures_in_a_row = turn.failures_in_a_row.saturating_add(1);
            let backoff = min
                .saturating_mul(1i64 << turn.failures_in_a_row.saturating_sub(1).min(20))
                .clamp(min, max);
            warning!("pg_jwt: fetching the key set failed, the last good set stays in force: {reason}");
            state::update(|s| {
                if s.jwks().is_none() && s.last_success > 0 {
                    // The set was dropped as stale: keep saying so, with the latest failure.
                    s.set_error(&format!("{}; the last attempt: {reason}", persist::STALE));
                } else {
                    s.set_error(&reason);
                }
                s.last_attempt = done;
                s.next_refresh = done + backoff;
                s.failures += 1;
            });
        }
    }
}

/// Drops the fetched set after `pg_jwt.jwks_max_stale` without a successful fetch.
fn drop_if_stale(now: i64) {
    let stale = state::read(|s| s.jwks().is_some() && persist::stale(now, s.last_success, gucs::jwks_max_stale()));
    if stale {
        let from = state::read(|s| s.from());
        state::update(|s| {
            s.clear_jwks();
            s.set_error(persist::STALE);
        });
        warning!(
            "pg_jwt: the key set from {from} is stale (no successful fetch within pg_jwt.jwks_max_stale) and no longer in force"
        );
        crate::generations::key_set_changed();
        persist::remove();
    }
}

fn log_kid_changes(old: Option<&[u8]>, new: &[String], from: &str) {
    let old: Vec<String> = old
        .and_then(|t| KeySet::parse(t).ok())
        .map(|s| s.kids().into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    // A provider chooses its kids: logged printable (control characters escaped).
    let shown = |k: &String| pg_jwt_core::error::printable(k);
    let added: Vec<String> = new.iter().filter(|k| !old.contains(k)).map(shown).collect();
    let removed: Vec<String> = old.iter().filter(|k| !new.contains(k)).map(shown).collect();
    log!(
        "pg_jwt: new key set from {from}: kids added [{}], removed [{}]",
        added.join(", "),
        removed.join(", ")
    );
}
