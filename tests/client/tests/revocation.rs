//! Revocation (jwt_revocations): by jti, by subject before a time, by session id; effective at
//! the next statement of a live pooled session after commit, never on rollback; concurrency;
//! purge; privileges. Subjects and ids are unique to these tests and removed afterwards.

use pg_jwt_client_tests::*;
use postgres::Client;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn count_docs(c: &mut Client, token: &str) -> Result<i64, postgres::Error> {
    c.batch_execute("BEGIN")?;
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&token])
        .map(|_| ())?;
    let r = c
        .query_one("SELECT count(*) FROM docs", &[])
        .map(|r| r.get::<_, i64>(0));
    c.batch_execute(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    r
}

fn assert_revoked(r: Result<i64, postgres::Error>, what: &str) {
    assert_eq!(sqlstate(&r), "28000", "{what}: {}", message(&r));
    assert!(
        message(&r).starts_with("pg_jwt: token revoked"),
        "{what}: {}",
        message(&r)
    );
}

#[test]
fn r1_revoke_by_jti_refuses_a_cached_token_at_the_next_statement() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 1, 600, r#"{"sub": "rv-jti", "jti": "rv-jti-1"}"#);
    let other = token(&mut su, 2, 600, r#"{"sub": "rv-jti-other", "jti": "rv-jti-2"}"#);
    let mut c = app();
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000);
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000, "cached");
    su.batch_execute("SELECT jwt_revoke_token('rv-jti-1', now() + interval '1 hour')")
        .unwrap();
    assert_revoked(count_docs(&mut c, &t), "same session, next statement");
    assert_revoked(count_docs(&mut app(), &t), "a new session");
    assert_eq!(count_docs(&mut c, &other).unwrap(), 1000, "another token is untouched");
    su.batch_execute("SELECT jwt_unrevoke('jti', 'rv-jti-1')").unwrap();
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000, "undone");
}

#[test]
fn r2_revoke_a_subject_before_a_time_logs_it_out_everywhere() {
    setup();
    let mut su = superuser();
    let iat = "extract(epoch FROM now())::bigint - 5";
    let old: String = su
        .query_one(
            &format!(
                "SELECT jwt_sign(jsonb_build_object('sub', 'rv-sub', 'tenant_id', {t}, 'aud', {a}, 'iss', {i},
                        'iat', {iat}, 'exp', extract(epoch FROM now())::bigint + 600), key) FROM test_keys",
                t = lit(&tenant(3)),
                a = lit(AUDIENCE),
                i = lit(ISSUER)
            ),
            &[],
        )
        .unwrap()
        .get(0);
    let no_iat = token(&mut su, 3, 600, r#"{"sub": "rv-sub"}"#);
    let mut c = app();
    assert_eq!(count_docs(&mut c, &old).unwrap(), 1000);
    su.batch_execute("SELECT jwt_revoke_subject('rv-sub')").unwrap();
    assert_revoked(count_docs(&mut c, &old), "issued before");
    assert_revoked(count_docs(&mut c, &no_iat), "no iat counts as before");
    std::thread::sleep(Duration::from_millis(1100));
    let fresh: String = su
        .query_one(
            &format!(
                "SELECT jwt_sign(jsonb_build_object('sub', 'rv-sub', 'tenant_id', {t}, 'aud', {a}, 'iss', {i},
                        'iat', extract(epoch FROM now())::bigint, 'exp', extract(epoch FROM now())::bigint + 600), key)
                 FROM test_keys",
                t = lit(&tenant(3)),
                a = lit(AUDIENCE),
                i = lit(ISSUER)
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        count_docs(&mut c, &fresh).unwrap(),
        1000,
        "a token issued after the logout works"
    );
    su.batch_execute("SELECT jwt_unrevoke('sub', 'rv-sub')").unwrap();
}

#[test]
fn r3_revoke_a_session_id() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 4, 600, r#"{"sub": "rv-sid", "sid": "rv-session-1"}"#);
    let other = token(&mut su, 4, 600, r#"{"sub": "rv-sid", "sid": "rv-session-2"}"#);
    let mut c = app();
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000);
    su.batch_execute("SELECT jwt_revoke_session('rv-session-1', now() + interval '1 hour')")
        .unwrap();
    assert_revoked(count_docs(&mut c, &t), "revoked session");
    assert_eq!(
        count_docs(&mut c, &other).unwrap(),
        1000,
        "the same user's other session"
    );
    su.batch_execute("SELECT jwt_unrevoke('sid', 'rv-session-1')").unwrap();
}

#[test]
fn r4_a_rolled_back_revocation_never_happened() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 5, 600, r#"{"sub": "rv-rollback", "jti": "rv-rollback-1"}"#);
    let mut c = app();
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000);
    su.batch_execute("BEGIN; SELECT jwt_revoke_token('rv-rollback-1', now() + interval '1 hour'); ROLLBACK")
        .unwrap();
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000, "rollback");
    su.batch_execute(
        "BEGIN; SAVEPOINT s; SELECT jwt_revoke_token('rv-rollback-1', now() + interval '1 hour');
         ROLLBACK TO SAVEPOINT s; COMMIT",
    )
    .unwrap();
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000, "rollback to savepoint");
    // Inside the revoking transaction, before commit, other sessions still accept it.
    su.batch_execute("BEGIN; SELECT jwt_revoke_token('rv-rollback-1', now() + interval '1 hour')")
        .unwrap();
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000, "not committed yet");
    su.batch_execute("COMMIT").unwrap();
    assert_revoked(count_docs(&mut c, &t), "committed");
    su.batch_execute("SELECT jwt_unrevoke('jti', 'rv-rollback-1')").unwrap();
}

#[test]
fn r5_no_transaction_starting_after_the_commit_succeeds_with_the_revoked_token() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 0, 600, r#"{"sub": "rv-race", "jti": "rv-race-1"}"#);
    let committed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let late_successes = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (t, committed_at, stop, late, total) = (
                t.clone(),
                Arc::clone(&committed_at),
                Arc::clone(&stop),
                Arc::clone(&late_successes),
                Arc::clone(&total),
            );
            std::thread::spawn(move || {
                let mut c = app();
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let started = Instant::now();
                    let ok = count_docs(&mut c, &t).is_ok();
                    total.fetch_add(1, Ordering::Relaxed);
                    if ok {
                        if let Some(at) = *committed_at.lock().unwrap() {
                            if started > at {
                                late.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    su.batch_execute("SELECT jwt_revoke_token('rv-race-1', now() + interval '1 hour')")
        .unwrap();
    *committed_at.lock().unwrap() = Some(Instant::now());
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        total.load(Ordering::Relaxed) > 50,
        "too few transactions to mean anything"
    );
    assert_eq!(
        late_successes.load(Ordering::Relaxed),
        0,
        "transactions after the commit succeeded"
    );
    su.batch_execute("SELECT jwt_unrevoke('jti', 'rv-race-1')").unwrap();
}

#[test]
fn r6_purge_removes_only_expired_revocations() {
    setup();
    let mut su = superuser();
    su.batch_execute(
        "SELECT jwt_revoke_token('rv-purge-old', now() - interval '2 hours');
         SELECT jwt_revoke_token('rv-purge-new', now() + interval '2 hours');
         SELECT jwt_revoke_subject('rv-purge-forever');",
    )
    .unwrap();
    let purged: i64 = su.query_one("SELECT jwt_purge_revocations()", &[]).unwrap().get(0);
    assert!(purged >= 1);
    let left: Vec<String> = su
        .query(
            "SELECT value FROM jwt_revocations WHERE value LIKE 'rv-purge-%' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["rv-purge-forever".to_owned(), "rv-purge-new".to_owned()]);
    su.batch_execute("DELETE FROM jwt_revocations WHERE value LIKE 'rv-purge-%'")
        .unwrap();
}

#[test]
fn r7_the_application_role_cannot_revoke_or_read_revocations() {
    setup();
    let mut c = app();
    for q in [
        "SELECT jwt_revoke_token('x', now())",
        "SELECT jwt_revoke_subject('x')",
        "SELECT jwt_revoke_session('x', now())",
        "SELECT jwt_unrevoke('jti', 'x')",
        "SELECT jwt_purge_revocations()",
        "SELECT count(*) FROM jwt_revocations",
        "INSERT INTO jwt_revocations (kind, value) VALUES ('jti', 'x')",
        "DELETE FROM jwt_revocations",
    ] {
        let r = c.batch_execute(q);
        assert_eq!(sqlstate(&r), "42501", "{q}: {}", message(&r));
    }
}

#[test]
fn r8_parallel_workers_check_revocations_too() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 2, 600, r#"{"sub": "rv-parallel", "jti": "rv-parallel-1"}"#);
    let mut c = app();
    let parallel = format!(
        "{}; SET LOCAL parallel_setup_cost = 0;
         SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0;
         SET LOCAL max_parallel_workers_per_gather = 2; SET LOCAL parallel_leader_participation = off",
        force_parallel(&mut c)
    );
    let q = "SELECT count(*) FROM docs WHERE body LIKE 'doc%'";
    c.batch_execute(&format!("BEGIN; {parallel}; SET LOCAL pg_jwt.token = {}", lit(&t)))
        .unwrap();
    assert_eq!(
        c.query_one(q, &[]).unwrap().get::<_, i64>(0),
        1000,
        "workers verify and find it not revoked"
    );
    c.batch_execute("COMMIT").unwrap();
    su.batch_execute("SELECT jwt_revoke_token('rv-parallel-1', now() + interval '1 hour')")
        .unwrap();
    c.batch_execute(&format!("BEGIN; {parallel}; SET LOCAL pg_jwt.token = {}", lit(&t)))
        .unwrap();
    let r = c.query_one(q, &[]);
    assert_eq!(sqlstate(&r), "28000", "{}", message(&r));
    c.batch_execute("ROLLBACK").unwrap();
    su.batch_execute("SELECT jwt_unrevoke('jti', 'rv-parallel-1')").unwrap();
}

/// The shared filter (src/revocation/filter.rs) answers "certainly not revoked" for most tokens;
/// it must never say so for a committed revocation, however the row was written.
#[test]
fn r9_the_shared_filter_never_misses_a_revocation() {
    setup();
    let mut su = superuser();
    // Many rows at once (one statement: the row trigger adds each to the filter).
    su.batch_execute(
        "INSERT INTO jwt_revocations (kind, value, expires)
         SELECT 'jti', 'rv-bulk-' || g, now() + interval '1 hour' FROM generate_series(1, 5000) g",
    )
    .unwrap();
    let mut c = app();
    for i in [1, 2500, 5000] {
        let t = token(
            &mut su,
            6,
            600,
            &format!(r#"{{"sub": "rv-bulk", "jti": "rv-bulk-{i}"}}"#),
        );
        assert_revoked(count_docs(&mut c, &t), &format!("bulk row {i}"));
    }
    let t = token(&mut su, 1, 600, r#"{"sub": "rv-bulk", "jti": "rv-bulk-5001"}"#);
    assert_eq!(count_docs(&mut c, &t).unwrap(), 1000, "not in the table");
    // Written under session_replication_role = replica (as logical replication and some
    // restores do): the triggers are ENABLE ALWAYS, so it counts at once.
    su.batch_execute(
        "SET session_replication_role = replica;
         INSERT INTO jwt_revocations (kind, value, expires) VALUES ('jti', 'rv-bulk-5001', now() + interval '1 hour');
         RESET session_replication_role",
    )
    .unwrap();
    assert_revoked(count_docs(&mut c, &t), "written as a replica");
    // An UPDATE that renames a row: the new value counts.
    let u = token(&mut su, 1, 600, r#"{"sub": "rv-bulk", "jti": "rv-renamed"}"#);
    assert_eq!(count_docs(&mut c, &u).unwrap(), 1000);
    su.batch_execute("UPDATE jwt_revocations SET value = 'rv-renamed' WHERE kind = 'jti' AND value = 'rv-bulk-1'")
        .unwrap();
    assert_revoked(count_docs(&mut c, &u), "renamed by UPDATE");
    su.batch_execute("DELETE FROM jwt_revocations WHERE value LIKE 'rv-bulk-%' OR value = 'rv-renamed'")
        .unwrap();
    assert_eq!(count_docs(&mut c, &u).unwrap(), 1000, "deleted");
}

/// After a restart the filter is empty and is rebuilt from the table; a reader that would
/// build it while a revoking transaction is open never waits for it and never misses its row
/// once committed. On the key-fetcher cluster (restartable), with a static HS256 key.
#[test]
fn r10_the_filter_is_rebuilt_after_a_restart_and_never_waits_for_a_writer() {
    let mut su = connect_fetch("postgres");
    let key: String = su
        .query_one("SELECT jwt_generate_jwk('HS256', 'rv')::text", &[])
        .unwrap()
        .get(0);
    for (name, value) in [
        ("pg_jwt.jwks_uri", ""),
        ("pg_jwt.issuer", ""),
        ("pg_jwt.audience", ""),
        ("pg_jwt.jwks", &format!(r#"{{"keys":[{key}]}}"#)),
    ] {
        su.batch_execute(&format!("ALTER SYSTEM SET {name} = {}", lit(value)))
            .unwrap();
    }
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    let sign = |su: &mut Client, jti: &str| -> String {
        su.query_one(
            "SELECT jwt_sign(jsonb_build_object('sub', 'rv-restart', 'jti', $1::text,
                    'exp', extract(epoch FROM now())::bigint + 600), $2::text::jsonb)",
            &[&jti, &key],
        )
        .unwrap()
        .get(0)
    };
    let sub_of = |c: &mut Client, t: &str| -> Result<Option<String>, postgres::Error> {
        c.batch_execute(&format!("SET pg_jwt.token = {}", lit(t)))?;
        c.query_one("SELECT jwt_claim('sub')", &[]).map(|r| r.get(0))
    };
    let (t1, t2, t3) = (
        sign(&mut su, "rv-r-1"),
        sign(&mut su, "rv-r-2"),
        sign(&mut su, "rv-r-3"),
    );
    su.batch_execute("SELECT jwt_revoke_token('rv-r-1', now() + interval '1 hour')")
        .unwrap();
    drop(su);
    restart_fetch_cluster();
    let mut app = connect_fetch("app");
    let r = sub_of(&mut app, &t1);
    assert_eq!(sqlstate(&r), "28000", "revoked before the restart: {}", message(&r));
    assert_eq!(sub_of(&mut app, &t2).unwrap().as_deref(), Some("rv-restart"));

    // Again from an empty filter, with a writer holding its transaction open.
    restart_fetch_cluster();
    let mut su = connect_fetch("postgres");
    su.batch_execute("BEGIN; SELECT jwt_revoke_token('rv-r-2', now() + interval '1 hour')")
        .unwrap();
    let mut app = connect_fetch("app");
    let started = std::time::Instant::now();
    assert_eq!(
        sub_of(&mut app, &t2).unwrap().as_deref(),
        Some("rv-restart"),
        "not committed yet"
    );
    assert_eq!(sub_of(&mut app, &t3).unwrap().as_deref(), Some("rv-restart"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a reader waited for the writer"
    );
    su.batch_execute("COMMIT").unwrap();
    let r = sub_of(&mut app, &t2);
    assert_eq!(
        sqlstate(&r),
        "28000",
        "committed while the filter was not built: {}",
        message(&r)
    );
    let r = sub_of(&mut app, &t1);
    assert_eq!(sqlstate(&r), "28000", "{}", message(&r));
    assert_eq!(sub_of(&mut app, &t3).unwrap().as_deref(), Some("rv-restart"));
    su.batch_execute("DELETE FROM jwt_revocations WHERE value LIKE 'rv-r-%'")
        .unwrap();
    su.batch_execute("ALTER SYSTEM RESET pg_jwt.jwks").unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
}

/// The key fetcher starts a purge in each database whose revocations are in use, every
/// pg_jwt.revocation_purge_interval seconds: expired rows go, others stay.
#[test]
fn r11_the_background_worker_purges_expired_revocations() {
    setup();
    let mut su = superuser();
    su.batch_execute(
        "SELECT jwt_revoke_token('rv-bg-old', now() - interval '2 hours');
         SELECT jwt_revoke_token('rv-bg-new', now() + interval '2 hours');",
    )
    .unwrap();
    // A verification in this database (the list is not empty: its filter is built).
    let t = token(&mut su, 1, 600, r#"{"sub": "rv-bg", "jti": "rv-bg-other"}"#);
    assert_eq!(count_docs(&mut app(), &t).unwrap(), 1000);
    su.batch_execute("ALTER SYSTEM SET pg_jwt.revocation_purge_interval = 1")
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let left = loop {
        let left: Vec<String> = su
            .query(
                "SELECT value FROM jwt_revocations WHERE value LIKE 'rv-bg-%' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if left.len() < 2 || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    su.batch_execute("ALTER SYSTEM RESET pg_jwt.revocation_purge_interval")
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    su.batch_execute("DELETE FROM jwt_revocations WHERE value LIKE 'rv-bg-%'")
        .unwrap();
    assert_eq!(
        left,
        vec!["rv-bg-new".to_owned()],
        "the worker purged nothing, or too much"
    );
}

/// S40: a role that owns a schema holds a lock on `pg_namespace` (an open `ALTER SCHEMA ...
/// RENAME`): the purge worker, which locks `pg_namespace` in SHARE mode, waited behind it for
/// as long as it was held, and a new one started every interval, each keeping a worker slot.
/// It now gives up after a second and tries again at the next interval.
#[test]
fn r12_a_held_lock_on_pg_namespace_does_not_pile_up_purge_workers() {
    setup();
    let mut su = superuser();
    let db: String = su.query_one("SELECT current_database()::text", &[]).unwrap().get(0);
    su.batch_execute(&format!(
        "GRANT CREATE ON DATABASE {db} TO app;
         SELECT jwt_revoke_token('rv12-old', now() - interval '2 hours');"
    ))
    .unwrap();
    let t = token(&mut su, 1, 600, r#"{"sub": "rv12", "jti": "rv12-other"}"#);
    assert_eq!(count_docs(&mut app(), &t).unwrap(), 1000);
    let mut owner = app();
    owner
        .batch_execute("DROP SCHEMA IF EXISTS rv12_held; DROP SCHEMA IF EXISTS rv12_renamed; CREATE SCHEMA rv12_held")
        .unwrap();
    owner
        .batch_execute("BEGIN; ALTER SCHEMA rv12_held RENAME TO rv12_renamed")
        .unwrap();
    su.batch_execute("ALTER SYSTEM SET pg_jwt.revocation_purge_interval = 1")
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    // Sampled for 6 s: no purge worker older than 3 s (each gives up after its 1 s lock wait).
    let mut oldest = Vec::new();
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(500));
        let row = su
            .query_one(
                "SELECT count(*), coalesce(max(extract(epoch FROM now() - backend_start)), 0)::float8
                 FROM pg_stat_activity WHERE backend_type = 'pg_jwt revocation purge'",
                &[],
            )
            .unwrap();
        oldest.push((row.get::<_, i64>(0), row.get::<_, f64>(1)));
    }
    owner.batch_execute("ROLLBACK").unwrap();
    // Released: the next purge deletes the expired row.
    let deadline = Instant::now() + Duration::from_secs(20);
    let purged = loop {
        let n: i64 = su
            .query_one("SELECT count(*) FROM jwt_revocations WHERE value = 'rv12-old'", &[])
            .unwrap()
            .get(0);
        if n == 0 || Instant::now() > deadline {
            break n == 0;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    su.batch_execute("ALTER SYSTEM RESET pg_jwt.revocation_purge_interval")
        .unwrap();
    su.batch_execute(&format!(
        "SELECT pg_reload_conf();
         DELETE FROM jwt_revocations WHERE value LIKE 'rv12-%';
         DROP SCHEMA IF EXISTS rv12_held; REVOKE CREATE ON DATABASE {db} FROM app;"
    ))
    .unwrap();
    assert!(
        oldest.iter().all(|&(n, age)| n <= 2 && age < 3.0),
        "purge workers (count, oldest age in s) every 0.5 s: {oldest:?}"
    );
    assert!(purged, "the purge ran again once the lock was released");
}
