//! The soak (`make soak`, scripts/soak.sh): pooled clients with tenant transactions over
//! thousands of distinct tokens for a set time, under key rotation, expiring and bad tokens,
//! savepoints, cancelled queries and terminated backends, while every backend's memory is
//! sampled. scripts/soak.sh starts the throwaway cluster and pgbouncer and passes:
//! - PGJWT_SOAK_HOST, PGJWT_SOAK_PORT: the cluster (unix socket directory, port);
//! - PGJWT_SOAK_BOUNCER_PORT: pgbouncer (transaction pooling) on 127.0.0.1;
//! - SOAK_SECONDS (600), SOAK_TOKENS (tokens per key generation, 2000), SOAK_ROTATE (seconds
//!   between key rotations, 30), SOAK_DIRECT and SOAK_POOLED (client threads, 4 and 4);
//! - SOAK_OUT: where the summary (JSON) goes.
//!
//! What must hold, checked here (the script checks the server log for crashes):
//! - 0 rows of another tenant, ever; every verified transaction sees exactly its tenant's rows;
//! - a good token is never refused and a bad one (a changed byte, a key removed by rotation,
//!   expired, revoked, garbage) never accepted; tokens within a second or two of their expiry,
//!   or revoked or rotated out while a transaction used them, may go either way;
//! - every error is a documented SQLSTATE or one the soak caused (57014 from
//!   pg_cancel_backend, 57P01 or a lost connection from pg_terminate_backend);
//! - each long-lived backend's memory (pg_backend_memory_contexts and RssAnon) is flat after
//!   warm-up.
//!
//! Exits 1 with the reasons if anything failed.
//!
//! Every statement of the clients uses the unnamed statement (`query_typed`): a named prepared
//! statement made through a transaction-mode pooler stays on whichever server connection
//! prepared it, and the client's close goes to another one, so the server backends of the
//! pool accumulate prepared statements (the first soak found ~20 kB per transaction).

use pg_jwt_client_tests::{lit, sqlstate};
use postgres::types::Type;
use postgres::{Client, Config, NoTls};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TENANTS: usize = 8;
const ROWS_PER_TENANT: i64 = 500;
/// A long claim name (the accessors compare names byte by byte, never by a fixed-size buffer).
const LONG_NAME_LEN: usize = 240;
/// The SQLSTATEs the README documents for pg_jwt.
const DOCUMENTED: &[&str] = &["28000", "22023", "55000", "22P05", "42501", "42P06", "22P02", "22003"];
/// Memory a long-lived backend may gain between the end of warm-up and the end of the run.
const CONTEXT_TOLERANCE: i64 = 1 << 20;
const RSS_TOLERANCE_KB: i64 = 4 << 10;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn env_str(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the soak through scripts/soak.sh"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// xorshift64*: enough randomness for choosing work, no dependency.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone)]
struct Tok {
    text: String,
    tenant: usize,
    sub: String,
    exp: i64,
    /// Drawn from `previous` in pool generation N: refusing it is allowed once the pools
    /// have moved past N (its key may have left the set meanwhile).
    drawn_from_previous: Option<u64>,
}

fn tenant_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{:012}", i)
}

fn long_name() -> String {
    format!("claim_{}", "x".repeat(LONG_NAME_LEN - 6))
}

/// The tokens workers draw from. `current` and `previous` are signed by keys in the set in
/// force; `retired` by a key that rotation removed before `retired_since`.
struct Pools {
    /// Bumped at every change, so that a worker knows whether a rotation happened while it
    /// used a token it drew from `previous`.
    generation: u64,
    current: Arc<Vec<Tok>>,
    previous: Arc<Vec<Tok>>,
    retired: Arc<Vec<Tok>>,
    retired_since: Instant,
}

#[derive(Default)]
struct Stats {
    transactions: u64,
    verified: u64,
    refused_expected: u64,
    savepoints: u64,
    writes: u64,
    rls_write_refusals: u64,
    ambiguous: u64,
    revoked_refused: u64,
    cancelled: u64,
    terminated: u64,
    reconnects: u64,
    errors: BTreeMap<String, u64>,
    failures: Vec<String>,
    failure_count: u64,
}

impl Stats {
    fn fail(&mut self, what: String) {
        self.failure_count += 1;
        if self.failures.len() < 50 {
            self.failures.push(what);
        }
    }
    fn merge(&mut self, o: Stats) {
        self.transactions += o.transactions;
        self.verified += o.verified;
        self.refused_expected += o.refused_expected;
        self.savepoints += o.savepoints;
        self.writes += o.writes;
        self.rls_write_refusals += o.rls_write_refusals;
        self.ambiguous += o.ambiguous;
        self.revoked_refused += o.revoked_refused;
        self.cancelled += o.cancelled;
        self.terminated += o.terminated;
        self.reconnects += o.reconnects;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for f in o.failures {
            if self.failures.len() < 50 {
                self.failures.push(f);
            }
        }
        self.failure_count += o.failure_count;
    }
}

struct Sample {
    at: f64,
    pid: i32,
    /// "direct" or "pool".
    route: &'static str,
    context_bytes: i64,
    rss_anon_kb: i64,
}

struct Shared {
    pools: RwLock<Pools>,
    /// The `jti`s revoked so far (each added after its revocation committed).
    revoked: RwLock<HashSet<String>>,
    /// The `jti`s whose revocation was sent (each added before it is sent): the server may see a
    /// revocation committed before the revoker hears back, so a refusal of one of these as
    /// revoked is not a wrong outcome even while it is not yet in `revoked`.
    revoking: RwLock<HashSet<String>>,
    revocations: AtomicU64,
    stop: AtomicBool,
    /// Backends the chaos thread must not terminate (their memory is followed to the end).
    protected: Mutex<HashSet<i32>>,
    samples: Mutex<Vec<Sample>>,
    rotations: AtomicU64,
    started: Instant,
}

impl Shared {
    fn is_revoked(&self, t: &Tok) -> bool {
        self.revoked.read().map(|r| r.contains(&jti_of(t))).unwrap_or(true)
    }

    /// Revoked, or its revocation sent (committed or not yet).
    fn may_be_revoked(&self, t: &Tok) -> bool {
        self.revoking.read().map(|r| r.contains(&jti_of(t))).unwrap_or(true)
    }
}

/// The `jti` of a soak token: `user-G-N` has `soak-G-N`.
fn jti_of(t: &Tok) -> String {
    t.sub.replacen("user-", "soak-", 1)
}

/// Revocation under load: every 2 s, five tokens of the current pool are revoked by `jti`
/// (`jwt_revoke_token`), then marked revoked for the workers. A token drawn after that must
/// be refused at once; one revoked while a transaction used it may go either way, from the
/// moment its revocation is sent (the commit is visible to the server's other sessions before
/// the revoker hears back: a refusal in between is right, not a failure).
fn revoker(shared: Arc<Shared>) {
    let mut su = connect(Route::Direct, "postgres").expect("revoker connection");
    let mut rng = Rng::new(99);
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(2));
        let picks: Vec<Tok> = {
            let p = shared.pools.read().unwrap_or_else(|e| e.into_inner());
            (0..5)
                .filter_map(|_| p.current.get(rng.below(p.current.len())).cloned())
                .collect()
        };
        for t in picks {
            let jti = jti_of(&t);
            shared
                .revoking
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(jti.clone());
            if su
                .execute("SELECT jwt_revoke_token($1, now() + interval '2 hours')", &[&jti])
                .is_ok()
            {
                shared.revoked.write().unwrap_or_else(|e| e.into_inner()).insert(jti);
                shared.revocations.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Route {
    Direct,
    Pooled,
}

fn connect(route: Route, user: &str) -> Result<Client, postgres::Error> {
    let mut cfg = Config::new();
    match route {
        Route::Direct => {
            cfg.host_path(env_str("PGJWT_SOAK_HOST"))
                .port(env_str("PGJWT_SOAK_PORT").parse().unwrap_or(54340));
        }
        Route::Pooled => {
            cfg.host("127.0.0.1")
                .port(env_str("PGJWT_SOAK_BOUNCER_PORT").parse().unwrap_or(64340));
        }
    }
    cfg.user(user)
        .dbname("soak")
        .connect_timeout(Duration::from_secs(10))
        // pgbouncer passes the name on to its server connections: the chaos thread tells the
        // pool's backends from the direct ones by it.
        .application_name(match route {
            Route::Direct => "soak-direct",
            Route::Pooled => "soak-pooled",
        });
    cfg.connect(NoTls)
}

fn connect_retry(route: Route, user: &str, shared: &Shared) -> Option<Client> {
    for _ in 0..100 {
        if let Ok(c) = connect(route, user) {
            return Some(c);
        }
        if shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn rss_anon_kb(pid: i32) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(-1)
}

/// Signs `n` tokens for key generation `generation` with `key` (a private JWK, as text).
fn sign_tokens(su: &mut Client, key: &str, generation: u64, n: u64) -> Vec<Tok> {
    let sql = format!(
        "SELECT g % {TENANTS}, 'user-{generation}-' || g, exp,
                jwt_sign(jsonb_build_object(
                    'sub', 'user-{generation}-' || g,
                    'tenant_id', '00000000-0000-4000-8000-' || lpad((g % {TENANTS})::text, 12, '0'),
                    'exp', exp,
                    'iat', extract(epoch FROM now())::bigint,
                    'jti', 'soak-{generation}-' || g,
                    'roles', jsonb_build_array('reader', 'writer-' || (g % {TENANTS})),
                    'profile', jsonb_build_object('org', jsonb_build_object('team', 'team-' || (g % {TENANTS}))),
                    {long}, 'long-' || g), {key}::jsonb)
         FROM (SELECT g, extract(epoch FROM now())::bigint
                        -- one token in ten expires 20 to 60 s after it is made
                        + CASE WHEN g % 10 = 0 THEN 20 + g % 41 ELSE 7200 END AS exp
               FROM generate_series(1, {n}) g) s",
        long = lit(&long_name()),
        key = lit(key)
    );
    su.query(&sql, &[])
        .expect("signing the soak tokens")
        .iter()
        .map(|r| Tok {
            tenant: r.get::<_, i32>(0) as usize,
            sub: r.get(1),
            exp: r.get(2),
            text: r.get(3),
            drawn_from_previous: None,
        })
        .collect()
}

fn public_set(su: &mut Client, keys: &[&str]) -> String {
    let arr: Vec<String> = keys.iter().map(|k| lit(k)).collect();
    let sql = format!(
        "SELECT jsonb_build_object('keys', jsonb_agg(jwt_public_jwks(k::jsonb) -> 'keys' -> 0))::text
         FROM unnest(ARRAY[{}]) k",
        arr.join(",")
    );
    su.query_one(&sql, &[]).expect("public key set").get(0)
}

/// The key set in force server-wide: ALTER SYSTEM (not in a transaction block), then a reload.
fn set_keys(su: &mut Client, set: &str) {
    su.batch_execute(&format!("ALTER SYSTEM SET pg_jwt.jwks = {}", lit(set)))
        .expect("ALTER SYSTEM SET pg_jwt.jwks");
    su.batch_execute("SELECT pg_reload_conf()").expect("reload");
}

/// Key rotation: a new ES256 key every `every` seconds; the set in force holds the new key
/// and the one before it, so tokens two generations old are refused from then on.
fn rotator(shared: Arc<Shared>, every: u64, n: u64, mut key: String) {
    let mut su = connect(Route::Direct, "postgres").expect("rotator connection");
    let mut generation = 1u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let until = Instant::now() + Duration::from_secs(every);
        while Instant::now() < until {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        generation += 1;
        let new_key: String = su
            .query_one(
                "SELECT jwt_generate_jwk('ES256', $1)::text",
                &[&format!("k{generation}")],
            )
            .expect("new key")
            .get(0);
        let tokens = sign_tokens(&mut su, &new_key, generation, n);
        let set = public_set(&mut su, &[&new_key, &key]);
        // The tokens of the key about to leave are no longer drawn as good ones; one drawn
        // before this point and used after the reload may go either way (Pools::generation).
        let leaving = {
            let mut p = shared.pools.write().unwrap_or_else(|e| e.into_inner());
            p.generation += 1;
            std::mem::replace(&mut p.previous, Arc::new(Vec::new()))
        };
        set_keys(&mut su, &set);
        // Every backend has had the signal when this sleep ends; a backend reads the new set
        // before it executes its next command.
        std::thread::sleep(Duration::from_secs(1));
        {
            let mut guard = shared.pools.write().unwrap_or_else(|e| e.into_inner());
            let p = &mut *guard;
            p.generation += 1;
            p.previous = std::mem::replace(&mut p.current, Arc::new(tokens));
            p.retired = leaving;
            p.retired_since = Instant::now();
        }
        key = new_key;
        shared.rotations.fetch_add(1, Ordering::Relaxed);
    }
}

/// Cancels a random running statement of the application every ~2 s and terminates a random
/// unprotected application backend every ~20 s; samples every application backend's RssAnon.
fn chaos(shared: Arc<Shared>) -> (u64, u64) {
    let mut su = connect(Route::Direct, "postgres").expect("chaos connection");
    let (mut cancels, mut terminations) = (0u64, 0u64);
    let mut tick = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        tick += 1;
        if tick % 4 == 0 {
            let n: i64 = su
                .query_one(
                    "SELECT count(pg_cancel_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
                      WHERE usename = 'app' AND state = 'active' ORDER BY random() LIMIT 1) s",
                    &[],
                )
                .map(|r| r.get(0))
                .unwrap_or(0);
            cancels += n as u64;
        }
        if tick % 40 == 20 {
            let protected: Vec<i32> = shared
                .protected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied()
                .collect();
            // In turn: an unprotected direct backend, or the newest backend of the pool (the
            // oldest one stays, so that one pool backend is followed to the end).
            let sql = if (tick / 40) % 2 == 0 {
                "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
                  WHERE usename = 'app' AND application_name = 'soak-direct' AND NOT pid = ANY($1)
                  ORDER BY random() LIMIT 1) s"
            } else {
                "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
                  WHERE usename = 'app' AND application_name = 'soak-pooled' AND NOT pid = ANY($1)
                  ORDER BY backend_start DESC LIMIT 1 OFFSET 0) s
                 WHERE (SELECT count(*) FROM pg_stat_activity
                        WHERE usename = 'app' AND application_name = 'soak-pooled') > 1"
            };
            let n: i64 = su.query_one(sql, &[&protected]).map(|r| r.get(0)).unwrap_or(0);
            terminations += n as u64;
        }
        if tick % 10 == 0 {
            let at = shared.started.elapsed().as_secs_f64();
            let pids: Vec<(i32, bool)> = su
                .query(
                    "SELECT pid, application_name = 'soak-pooled' FROM pg_stat_activity
                      WHERE usename = 'app' AND backend_type = 'client backend'",
                    &[],
                )
                .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
                .unwrap_or_default();
            let mut samples = shared.samples.lock().unwrap_or_else(|e| e.into_inner());
            for (pid, pooled) in pids {
                samples.push(Sample {
                    at,
                    pid,
                    route: if pooled { "pool" } else { "direct" },
                    context_bytes: -1,
                    rss_anon_kb: rss_anon_kb(pid),
                });
            }
        }
    }
    (cancels, terminations)
}

enum Kind {
    Good,
    /// A good token whose `jti` was revoked (committed) before it was drawn.
    Revoked,
    Changed,
    Retired,
    Garbage,
}

/// What the token should do at the time of the statement: verify, be refused, or either
/// (its expiry falls inside the run of the transaction, give or take two seconds).
#[derive(PartialEq, Clone, Copy, Debug)]
enum Expect {
    Accept,
    Refuse,
    Either,
}

fn expect_for(kind: &Kind, tok: &Tok, begun: i64) -> Expect {
    match kind {
        Kind::Changed | Kind::Retired | Kind::Garbage | Kind::Revoked => Expect::Refuse,
        Kind::Good => {
            let now = unix_now();
            if tok.exp <= begun - 2 {
                Expect::Refuse
            } else if tok.exp > now + 2 {
                Expect::Accept
            } else {
                Expect::Either
            }
        }
    }
}

/// Changes one character in the signature segment to another base64url character.
fn change_one_byte(t: &str, rng: &mut Rng) -> String {
    let mut b = t.as_bytes().to_vec();
    let sig = t.rfind('.').map(|i| i + 1).unwrap_or(0);
    // Not the last character: its low bits may be padding bits, which strict decoding refuses
    // anyway; any other position changes the signature.
    let last = b.len().saturating_sub(1);
    if last <= sig {
        return "x.y.z".into();
    }
    let i = sig + rng.below(last - sig);
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap_or_default()
}

fn garbage(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "a.b.c".into(),
        1 => "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".into(),
        2 => "x".repeat(20_000),
        3 => "Bearer abc.def.ghi".into(),
        4 => "e30.e30.e30.e30.e30".into(),
        _ => format!("{}.{}.{}", "\u{e9}", "%00", "\u{1F600}"),
    }
}

/// Whether the error is one the soak caused (cancel, terminate), and which.
fn induced(e: &postgres::Error, c: &Client) -> Option<&'static str> {
    match e.code().map(|c| c.code()) {
        Some("57014") => {
            let msg = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_default();
            if msg.contains("timeout") {
                None
            } else {
                Some("cancelled")
            }
        }
        Some("57P01") => Some("terminated"),
        // pgbouncer reports a server connection that went away as a protocol or connection
        // error; without a code, the connection itself was closed.
        Some(code) if code.starts_with("08") => Some("terminated"),
        None if c.is_closed() || e.is_closed() || e.as_db_error().is_none() => Some("terminated"),
        _ => None,
    }
}

struct Worker {
    route: Route,
    sampled: bool,
    id: usize,
}

fn worker(shared: Arc<Shared>, w: Worker) -> Stats {
    let mut st = Stats::default();
    let mut rng = Rng::new(1000 + w.id as u64);
    let long = long_name();
    let Some(mut c) = connect_retry(w.route, "app", &shared) else {
        st.fail(format!("worker {}: cannot connect", w.id));
        return st;
    };
    let mut pid = register(&mut c, &w, &shared);
    let mut last_sample = Instant::now() - Duration::from_secs(60);
    while !shared.stop.load(Ordering::Relaxed) {
        if c.is_closed() {
            st.reconnects += 1;
            match connect_retry(w.route, "app", &shared) {
                Some(n) => c = n,
                None => break,
            }
            pid = register(&mut c, &w, &shared);
        }
        if w.sampled && last_sample.elapsed() >= Duration::from_secs(5) {
            last_sample = Instant::now();
            sample_own_memory(&mut c, pid, &shared);
        }
        let (tok, other, kind) = {
            let p = shared.pools.read().unwrap_or_else(|e| e.into_inner());
            let pick = |v: &Arc<Vec<Tok>>, rng: &mut Rng| v.get(rng.below(v.len())).cloned();
            let roll = rng.below(100);
            let from_previous = rng.chance(20) && !p.previous.is_empty();
            let good = if from_previous {
                pick(&p.previous, &mut rng).map(|t| Tok {
                    drawn_from_previous: Some(p.generation),
                    ..t
                })
            } else {
                pick(&p.current, &mut rng)
            };
            let other = pick(&p.current, &mut rng);
            let retired_ok = !p.retired.is_empty() && p.retired_since.elapsed() > Duration::from_millis(100);
            match (good, other) {
                (Some(g), Some(o)) => {
                    if roll < 5 {
                        let t = Tok {
                            text: change_one_byte(&g.text, &mut rng),
                            ..g
                        };
                        (t, o, Kind::Changed)
                    } else if roll < 8 && retired_ok {
                        (pick(&p.retired, &mut rng).unwrap_or(g), o, Kind::Retired)
                    } else if roll < 10 {
                        let t = Tok {
                            text: garbage(&mut rng),
                            ..g
                        };
                        (t, o, Kind::Garbage)
                    } else if shared.is_revoked(&g) {
                        (g, o, Kind::Revoked)
                    } else {
                        (g, o, Kind::Good)
                    }
                }
                _ => continue,
            }
        };
        st.transactions += 1;
        if let Err(e) = transaction(&mut c, &tok, &other, &kind, &long, &mut rng, &mut st, &shared) {
            if let Some(what) = induced(&e, &c) {
                if what == "cancelled" {
                    st.cancelled += 1;
                } else {
                    st.terminated += 1;
                }
                let code = e
                    .code()
                    .map(|c| c.code().to_owned())
                    .unwrap_or_else(|| "connection lost".into());
                *st.errors.entry(code).or_default() += 1;
            } else {
                let code = sqlstate::<()>(&Err(e));
                *st.errors.entry(code.clone()).or_default() += 1;
                if !DOCUMENTED.contains(&code.as_str()) {
                    st.fail(format!("undocumented SQLSTATE {code}"));
                }
            }
            if !c.is_closed() {
                let _ = c.batch_execute("ROLLBACK");
            }
        }
    }
    if w.sampled {
        sample_own_memory(&mut c, pid, &shared);
    }
    st
}

/// One sample of this client's own backend: its memory contexts (the view shows only the
/// backend that reads it) and its RssAnon.
fn sample_own_memory(c: &mut Client, pid: i32, shared: &Shared) {
    if let Ok(r) = c.query_typed_one("SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts", &[]) {
        let bytes: Option<i64> = r.get(0);
        shared.samples.lock().unwrap_or_else(|e| e.into_inner()).push(Sample {
            at: shared.started.elapsed().as_secs_f64(),
            pid,
            route: "direct",
            context_bytes: bytes.unwrap_or(-1),
            rss_anon_kb: rss_anon_kb(pid),
        });
    }
}

fn register(c: &mut Client, w: &Worker, shared: &Shared) -> i32 {
    if w.route == Route::Pooled {
        return 0;
    }
    let pid: i32 = c
        .query_typed_one("SELECT pg_backend_pid()", &[])
        .map(|r| r.get(0))
        .unwrap_or(0);
    if w.sampled {
        shared.protected.lock().unwrap_or_else(|e| e.into_inner()).insert(pid);
    }
    pid
}

/// One tenant transaction. Errors the caller classifies; expectations are checked here.
fn transaction(
    c: &mut Client,
    tok: &Tok,
    other: &Tok,
    kind: &Kind,
    long: &str,
    rng: &mut Rng,
    st: &mut Stats,
    shared: &Shared,
) -> Result<(), postgres::Error> {
    let rotated_since = |t: &Tok| {
        t.drawn_from_previous
            .is_some_and(|g| shared.pools.read().map(|p| p.generation != g).unwrap_or(true))
    };
    let begun = unix_now();
    c.batch_execute("BEGIN")?;
    let set = c
        .execute("SELECT set_config('pg_jwt.token', $1, true)", &[&tok.text])
        .map(|_| ());
    let r = set.and_then(|_| {
        c.query_typed_one(
            &format!(
                "SELECT (SELECT count(*) FROM docs),
                        (SELECT count(*) FROM docs WHERE tenant_id <> $1::text::uuid),
                        jwt_claim('sub'), jwt_claim({l}), jwt_claims() ->> 'tenant_id',
                        jwt_claim('profile', 'org', 'team'), jwt_claim_array('roles')",
                l = lit(long)
            ),
            &[(&tenant_id(tok.tenant), Type::TEXT)],
        )
    });
    let expect = expect_for(kind, tok, begun);
    let row = match r {
        Ok(row) => row,
        Err(e) if e.code().map(|c| c.code()) == Some("28000") => {
            match expect {
                Expect::Accept if rotated_since(tok) || shared.may_be_revoked(tok) => st.ambiguous += 1,
                Expect::Accept => st.fail(format!(
                    "a good token was refused: {}",
                    e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_default()
                )),
                Expect::Either => st.ambiguous += 1,
                Expect::Refuse => {
                    st.refused_expected += 1;
                    if matches!(kind, Kind::Revoked) {
                        st.revoked_refused += 1;
                    }
                }
            }
            *st.errors.entry("28000".into()).or_default() += 1;
            c.batch_execute("ROLLBACK")?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match expect {
        Expect::Refuse => {
            st.fail(format!(
                "a token that must be refused was accepted ({})",
                match kind {
                    Kind::Changed => "one byte changed",
                    Kind::Retired => "key removed by rotation",
                    Kind::Garbage => "garbage",
                    Kind::Good => "expired",
                    Kind::Revoked => "revoked",
                }
            ));
            c.batch_execute("ROLLBACK")?;
            return Ok(());
        }
        Expect::Either => st.ambiguous += 1,
        Expect::Accept => {}
    }
    st.verified += 1;
    let (mine, others): (i64, i64) = (row.get(0), row.get(1));
    let sub: Option<String> = row.get(2);
    let long_v: Option<String> = row.get(3);
    let tenant: Option<String> = row.get(4);
    let team: Option<String> = row.get(5);
    let roles: Option<Vec<String>> = row.get(6);
    if others != 0 {
        st.fail(format!("{others} rows of another tenant visible"));
    }
    if mine != ROWS_PER_TENANT {
        st.fail(format!("{mine} rows visible, expected {ROWS_PER_TENANT}"));
    }
    let n = tok.sub.rsplit('-').next().unwrap_or("");
    if sub.as_deref() != Some(tok.sub.as_str())
        || long_v.as_deref() != Some(format!("long-{n}").as_str())
        || tenant.as_deref() != Some(tenant_id(tok.tenant).as_str())
        || team.as_deref() != Some(format!("team-{}", tok.tenant).as_str())
        || roles.as_ref().map(|r| r.len()) != Some(2)
    {
        st.fail(format!("claims do not match the token ({:?})", sub));
    }
    // A savepoint with another user's token inside, rolled back: the first token's claims
    // come back.
    if rng.chance(20) {
        st.savepoints += 1;
        c.batch_execute(&format!("SAVEPOINT s; SET LOCAL pg_jwt.token = {}", lit(&other.text)))?;
        let inner = c.query_typed_one("SELECT jwt_claim('sub')", &[]);
        match inner {
            Ok(r) => {
                if r.get::<_, Option<String>>(0).as_deref() != Some(other.sub.as_str()) {
                    st.fail("the savepoint's token did not take effect".into());
                }
            }
            Err(e) if e.code().map(|c| c.code()) == Some("28000") => {
                // The other token expired or was revoked just now: allowed.
                if other.exp > unix_now() + 2 && !shared.may_be_revoked(other) {
                    st.fail("a good token was refused inside a savepoint".into());
                }
            }
            Err(e) => return Err(e),
        }
        c.batch_execute("ROLLBACK TO SAVEPOINT s")?;
        let back: Option<String> = c.query_typed_one("SELECT jwt_claim('sub')", &[])?.get(0);
        if back.as_deref() != Some(tok.sub.as_str()) {
            st.fail("after ROLLBACK TO SAVEPOINT the claims are not the first token's".into());
        }
    }
    if rng.chance(10) {
        st.writes += 1;
        c.execute_typed(
            "INSERT INTO events (tenant_id, note) VALUES ($1::text::uuid, 'soak')",
            &[(&tenant_id(tok.tenant), Type::TEXT)],
        )?;
        if rng.chance(20) {
            // Another tenant's row: the policy's WITH CHECK refuses it.
            let r = c.execute_typed(
                "INSERT INTO events (tenant_id, note) VALUES ($1::text::uuid, 'cross')",
                &[(&tenant_id((tok.tenant + 1) % TENANTS), Type::TEXT)],
            );
            match r {
                Ok(_) => st.fail("a row for another tenant was written".into()),
                Err(e) if e.code().map(|c| c.code()) == Some("42501") => {
                    st.rls_write_refusals += 1;
                    *st.errors.entry("42501".into()).or_default() += 1;
                    c.batch_execute("ROLLBACK")?;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }
    c.batch_execute(if rng.chance(10) { "ROLLBACK" } else { "COMMIT" })?;
    Ok(())
}

/// The summary as the Markdown rows of BENCHMARKS.md's soak section.
fn markdown(s: &serde_json::Value) -> String {
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    let thousands = |v: u64| {
        let t = v.to_string();
        let mut out = String::new();
        for (i, ch) in t.chars().enumerate() {
            if i > 0 && (t.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    };
    let two = |a: &str, b: &str| format!("{} / {}", thousands(n(a)), thousands(n(b)));
    let mut m = String::new();
    m.push_str("| figure | value |\n|---|---|\n");
    let rows: Vec<(String, String)> = vec![
        (
            "duration".into(),
            format!("{} s (warm-up {} s)", n("seconds"), s["warmup_seconds"]),
        ),
        (
            "clients".into(),
            format!(
                "{} direct + {} through pgbouncer (transaction pooling)",
                s["clients"]["direct"], s["clients"]["pooled_through_pgbouncer"]
            ),
        ),
        (
            "key rotations (ALTER SYSTEM + reload)".into(),
            thousands(n("key_rotations")),
        ),
        ("distinct tokens signed".into(), thousands(n("distinct_tokens"))),
        ("transactions".into(), thousands(n("transactions"))),
        (
            "verified transactions (all rows checked)".into(),
            thousands(n("verified_transactions")),
        ),
        (
            "bad tokens refused (changed byte, rotated-out key, expired, revoked, garbage)".into(),
            thousands(n("refused_as_expected")),
        ),
        (
            "tokens at their expiry second, or revoked or rotated out while in use (either outcome allowed)".into(),
            thousands(n("expiring_either_way")),
        ),
        (
            "revocations (jwt_revoke_token, 5 every 2 s) / revoked tokens refused".into(),
            two("revocations", "revoked_tokens_refused"),
        ),
        (
            "savepoints with a second token, rolled back".into(),
            thousands(n("savepoints")),
        ),
        (
            "writes / cross-tenant writes refused by WITH CHECK".into(),
            two("writes", "cross_tenant_writes_refused"),
        ),
        (
            "pg_cancel_backend sent / statements cancelled".into(),
            two("cancels_sent", "statements_cancelled"),
        ),
        (
            "pg_terminate_backend sent / transactions lost / reconnects".into(),
            format!(
                "{} / {} / {}",
                n("terminations_sent"),
                n("transactions_lost_to_termination"),
                n("reconnects")
            ),
        ),
        (
            "errors by SQLSTATE".into(),
            s["errors_by_sqlstate"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}: {}", thousands(v.as_u64().unwrap_or(0))))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "none".into()),
        ),
        ("cross-tenant rows seen".into(), "0".into()),
    ];
    for (k, v) in rows {
        m.push_str(&format!("| {k} | {v} |\n"));
    }
    m.push_str("\nMemory of the backends followed from warm-up to the end:\n\n");
    m.push_str("| backend | measure | at start | after warm-up | at the end | growth after warm-up |\n|---|---|---|---|---|---|\n");
    if let Some(list) = s["memory"].as_array() {
        let mut list: Vec<&serde_json::Value> = list.iter().collect();
        list.sort_by_key(|v| (v["measure"].as_str().unwrap_or("").to_owned(), v["pid"].as_i64()));
        for v in list {
            let kb = v["measure"] == "rss_anon_kb";
            let f = |x: &serde_json::Value| {
                let x = x.as_i64().unwrap_or(0);
                if kb {
                    format!("{:.1} MiB", x as f64 / 1024.0)
                } else {
                    format!("{:.2} MiB", x as f64 / 1048576.0)
                }
            };
            let g = v["growth_after_warmup"].as_i64().unwrap_or(0);
            let growth = if kb {
                format!("{g:+} kB")
            } else {
                format!("{:+} kB", g / 1024)
            };
            m.push_str(&format!(
                "| {} ({}) | {} | {} | {} | {} | {} |\n",
                v["pid"],
                v["route"].as_str().unwrap_or("?"),
                if kb { "RssAnon" } else { "memory contexts" },
                f(&v["start"]),
                f(&v["after_warmup"]),
                f(&v["end"]),
                growth
            ));
        }
    }
    m
}

fn main() {
    let seconds = env_num("SOAK_SECONDS", 600);
    let per_generation = env_num("SOAK_TOKENS", 2000);
    let rotate = env_num("SOAK_ROTATE", 30);
    let direct = env_num("SOAK_DIRECT", 4) as usize;
    let pooled = env_num("SOAK_POOLED", 4) as usize;
    let out = std::env::var("SOAK_OUT").unwrap_or_else(|_| "soak-summary.json".into());
    let warmup = (seconds as f64 * 0.2).clamp(30.0, 120.0);

    let mut su = connect(Route::Direct, "postgres").expect("superuser connection");
    let k0: String = su
        .query_one("SELECT jwt_generate_jwk('ES256', 'k0')::text", &[])
        .unwrap()
        .get(0);
    let k1: String = su
        .query_one("SELECT jwt_generate_jwk('ES256', 'k1')::text", &[])
        .unwrap()
        .get(0);
    let previous = sign_tokens(&mut su, &k0, 0, per_generation);
    let current = sign_tokens(&mut su, &k1, 1, per_generation);
    let set = public_set(&mut su, &[&k1, &k0]);
    set_keys(&mut su, &set);
    std::thread::sleep(Duration::from_secs(1));

    let shared = Arc::new(Shared {
        pools: RwLock::new(Pools {
            current: Arc::new(current),
            previous: Arc::new(previous),
            retired: Arc::new(Vec::new()),
            retired_since: Instant::now(),
            generation: 0,
        }),
        stop: AtomicBool::new(false),
        revoked: RwLock::new(HashSet::new()),
        revoking: RwLock::new(HashSet::new()),
        revocations: AtomicU64::new(0),
        protected: Mutex::new(HashSet::new()),
        samples: Mutex::new(Vec::new()),
        rotations: AtomicU64::new(0),
        started: Instant::now(),
    });
    eprintln!(
        "soak: {seconds} s, {direct} direct + {pooled} pooled clients, {per_generation} tokens per key, rotation every {rotate} s"
    );
    let mut handles = Vec::new();
    for id in 0..direct + pooled {
        let s = shared.clone();
        let w = Worker {
            route: if id < direct { Route::Direct } else { Route::Pooled },
            // Half of the direct clients keep their backend to the end (followed for memory);
            // the others may be terminated.
            sampled: id < direct.div_ceil(2),
            id,
        };
        handles.push(std::thread::spawn(move || worker(s, w)));
    }
    let rot = {
        let s = shared.clone();
        std::thread::spawn(move || rotator(s, rotate, per_generation, k1))
    };
    let ch = {
        let s = shared.clone();
        std::thread::spawn(move || chaos(s))
    };
    let rv = {
        let s = shared.clone();
        std::thread::spawn(move || revoker(s))
    };
    let mut last_report = Instant::now();
    while shared.started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(500));
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            eprintln!(
                "soak: {:.0} s, {} rotations",
                shared.started.elapsed().as_secs_f64(),
                shared.rotations.load(Ordering::Relaxed)
            );
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut st = Stats::default();
    for h in handles {
        match h.join() {
            Ok(s) => st.merge(s),
            Err(_) => st.fail("a client thread panicked".into()),
        }
    }
    let _ = rot.join();
    let _ = rv.join();
    let (cancels, terminations) = ch.join().unwrap_or((0, 0));
    let elapsed = shared.started.elapsed().as_secs_f64();

    // Memory: per backend that lived from warm-up to the end, the first sample after warm-up
    // against the last one.
    let samples = shared.samples.lock().unwrap_or_else(|e| e.into_inner());
    let mut by_pid: HashMap<(i32, bool), Vec<&Sample>> = HashMap::new();
    for s in samples.iter().filter(|s| s.pid != 0) {
        by_pid.entry((s.pid, s.context_bytes >= 0)).or_default().push(s);
    }
    let mut memory = Vec::new();
    for ((pid, contexts), v) in &by_pid {
        let Some(first) = v.iter().find(|s| s.at >= warmup) else {
            continue;
        };
        let Some(last) = v.last() else { continue };
        let Some(start) = v.first() else { continue };
        if last.at < elapsed - 15.0 || last.at - first.at < (elapsed - warmup) * 0.5 {
            continue; // terminated during the run, or not followed long enough
        }
        let (grew, tolerance, unit) = if *contexts {
            (
                last.context_bytes - first.context_bytes,
                CONTEXT_TOLERANCE,
                "bytes of memory contexts",
            )
        } else {
            (last.rss_anon_kb - first.rss_anon_kb, RSS_TOLERANCE_KB, "kB RssAnon")
        };
        memory.push(serde_json::json!({
            "pid": pid,
            "route": last.route,
            "measure": if *contexts { "memory_contexts_bytes" } else { "rss_anon_kb" },
            "start": if *contexts { start.context_bytes } else { start.rss_anon_kb },
            "after_warmup": if *contexts { first.context_bytes } else { first.rss_anon_kb },
            "end": if *contexts { last.context_bytes } else { last.rss_anon_kb },
            "growth_after_warmup": grew,
        }));
        if grew > tolerance {
            st.fail(format!(
                "backend {pid} grew by {grew} {unit} after warm-up (tolerance {tolerance})"
            ));
        }
    }
    let followed_contexts = memory
        .iter()
        .filter(|m| m["measure"] == "memory_contexts_bytes")
        .count();
    if followed_contexts == 0 {
        st.fail("no backend was followed from warm-up to the end".into());
    }
    if st.verified == 0 {
        st.fail("nothing was verified".into());
    }
    let summary = serde_json::json!({
        "seconds": elapsed.round() as u64,
        "warmup_seconds": warmup,
        "clients": {"direct": direct, "pooled_through_pgbouncer": pooled},
        "key_rotations": shared.rotations.load(Ordering::Relaxed),
        "distinct_tokens": per_generation * (2 + shared.rotations.load(Ordering::Relaxed)),
        "transactions": st.transactions,
        "verified_transactions": st.verified,
        "refused_as_expected": st.refused_expected,
        "expiring_either_way": st.ambiguous,
        "revocations": shared.revocations.load(Ordering::Relaxed),
        "revoked_tokens_refused": st.revoked_refused,
        "savepoints": st.savepoints,
        "writes": st.writes,
        "cross_tenant_writes_refused": st.rls_write_refusals,
        "cancels_sent": cancels,
        "terminations_sent": terminations,
        "statements_cancelled": st.cancelled,
        "transactions_lost_to_termination": st.terminated,
        "reconnects": st.reconnects,
        "errors_by_sqlstate": st.errors,
        "memory": memory,
        "failures": st.failures,
        "failure_count": st.failure_count,
    });
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    if let Err(e) = std::fs::write(&out, &text) {
        eprintln!("cannot write {out}: {e}");
    }
    if let Ok(md) = std::env::var("SOAK_MARKDOWN") {
        if let Err(e) = std::fs::write(&md, markdown(&summary)) {
            eprintln!("cannot write {md}: {e}");
        }
    }
    println!("{text}");
    if st.failure_count > 0 {
        eprintln!("soak FAILED ({} failed checks; the first ones):", st.failure_count);
        for f in &st.failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    eprintln!("soak passed");
}
