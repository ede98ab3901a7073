//! The shared verification cache (src/shared_cache.rs): a signature verified by one backend is
//! not verified again by another; only successes are stored; entries are keyed by the exact
//! token bytes and the key set; a reload keeps them; the size bound holds when full.
//! On the main cluster, in databases of their own ("shared_*"), with key sets set per database
//! (ES256) or by ALTER SYSTEM (HS256, reset at the end).

use pg_jwt_client_tests::*;
use postgres::Client;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn database(name: &str) {
    let mut su = superuser();
    let exists: bool = su
        .query_one("SELECT count(*) > 0 FROM pg_database WHERE datname = $1", &[&name])
        .unwrap()
        .get(0);
    if !exists {
        su.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    }
    connect_as("postgres", name)
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_jwt")
        .unwrap();
}

/// `c`'s own figures, and the cluster-wide ones (`shared`, `cluster`: for superusers and
/// pg_monitor only, so read through a superuser's session when `c` cannot see them).
fn stats(c: &mut Client) -> serde_json::Value {
    let read = |c: &mut Client| -> serde_json::Value {
        let text: String = c.query_one("SELECT jwt_cache_stats()::text", &[]).unwrap().get(0);
        serde_json::from_str(&text).unwrap()
    };
    let mut own = read(c);
    if own["shared"].is_null() {
        let all = read(&mut superuser());
        own["shared"] = all["shared"].clone();
        own["cluster"] = all["cluster"].clone();
    }
    own
}

/// The application role sees its own backend's figures, not the cluster's.
#[test]
fn c0_the_cluster_wide_figures_are_for_pg_monitor() {
    setup();
    let mut app = connect_as("app", "app");
    let text: String = app.query_one("SELECT jwt_cache_stats()::text", &[]).unwrap().get(0);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v["shared"].is_null() && v["cluster"].is_null(), "{v}");
    assert!(v["verifications"].is_i64(), "{v}");
    let mut su = superuser();
    su.batch_execute("DROP ROLE IF EXISTS c0_monitor; CREATE ROLE c0_monitor LOGIN IN ROLE pg_monitor")
        .unwrap();
    let mut m = connect_as("c0_monitor", "app");
    let text: String = m.query_one("SELECT jwt_cache_stats()::text", &[]).unwrap().get(0);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v["shared"]["capacity"].as_i64().unwrap_or(0) > 0, "{v}");
    assert!(v["cluster"]["revocation_lookups"].is_i64(), "{v}");
    drop(m);
    su.batch_execute("DROP ROLE c0_monitor").unwrap();
}

fn n(v: &serde_json::Value, path: &[&str]) -> i64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_i64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

/// `jwt_claim('sub')` with the token set for one transaction: the value or the SQLSTATE.
fn sub(c: &mut Client, token: &str) -> String {
    c.batch_execute("BEGIN").unwrap();
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&token])
        .map(|_| ())
        .unwrap();
    let r = c.query_one("SELECT jwt_claim('sub')", &[]);
    let out = match &r {
        Ok(row) => row.get::<_, Option<String>>(0).unwrap_or_default(),
        Err(_) => sqlstate(&r),
    };
    c.batch_execute("ROLLBACK").unwrap();
    out
}

/// Two ES256 keys with the same kid; database shared_a trusts the first, shared_b the second.
fn two_databases() -> (String, String) {
    database("shared_a");
    database("shared_b");
    let mut su = superuser();
    let key = |su: &mut Client| -> (String, String) {
        let private: String = su
            .query_one("SELECT jwt_generate_jwk('ES256', 'same-kid')::text", &[])
            .unwrap()
            .get(0);
        let public: String = su
            .query_one("SELECT jwt_public_jwks($1::text::jsonb)::text", &[&private])
            .unwrap()
            .get(0);
        (private, public)
    };
    let (a, a_pub) = key(&mut su);
    let (_, b_pub) = key(&mut su);
    su.batch_execute(&format!(
        "ALTER DATABASE shared_a SET pg_jwt.jwks = {}; ALTER DATABASE shared_b SET pg_jwt.jwks = {}",
        lit(&a_pub),
        lit(&b_pub)
    ))
    .unwrap();
    let sign = |su: &mut Client, sub: &str| -> String {
        su.query_one(
            "SELECT jwt_sign(jsonb_build_object('sub', $1::text, 'exp', extract(epoch FROM now())::bigint + 600), $2::text::jsonb)",
            &[&sub, &a],
        )
        .unwrap()
        .get(0)
    };
    (sign(&mut su, "shared-user"), sign(&mut su, "shared-other"))
}

#[test]
fn c1_a_token_verified_in_one_backend_is_not_verified_again_in_another() {
    setup();
    let (t, _) = two_databases();
    let mut a1 = connect_as("app", "shared_a");
    let mut a2 = connect_as("app", "shared_a");
    let before = stats(&mut a1);
    assert_eq!(sub(&mut a1, &t), "shared-user");
    let s1 = stats(&mut a1);
    assert_eq!(n(&s1, &["shared_signature_hits"]), 0, "first verification checks: {s1}");
    assert_eq!(
        n(&s1, &["shared", "inserts"]),
        n(&before, &["shared", "inserts"]) + 1,
        "{s1}"
    );
    assert_eq!(sub(&mut a2, &t), "shared-user");
    let s2 = stats(&mut a2);
    assert_eq!(
        n(&s2, &["shared_signature_hits"]),
        1,
        "the second backend used the entry: {s2}"
    );
    assert_eq!(n(&s2, &["verifications"]), 1, "claims were still checked: {s2}");
    assert!(n(&s2, &["shared", "capacity"]) >= 65_536, "{s2}");
}

#[test]
fn c2_one_token_under_two_key_sets_never_shares_an_entry() {
    setup();
    // The same kid names different keys in the two databases: an entry made in shared_a (where
    // the signature is good) must not vouch for it in shared_b (where it is not).
    let (t, _) = two_databases();
    assert_eq!(sub(&mut connect_as("app", "shared_a"), &t), "shared-user");
    let mut b = connect_as("app", "shared_b");
    assert_eq!(sub(&mut b, &t), "28000", "key set B must check the signature itself");
    assert_eq!(n(&stats(&mut b), &["shared_signature_hits"]), 0);
}

#[test]
fn c3_only_successes_are_stored_and_a_one_byte_change_is_another_token() {
    setup();
    let (t, _) = two_databases();
    let mut a = connect_as("app", "shared_a");
    assert_eq!(sub(&mut a, &t), "shared-user");
    let inserts = n(&stats(&mut a), &["shared", "inserts"]);
    // Every single-character change of the signature segment (still base64url of the right
    // length) is refused in a fresh backend, and none of the refusals is stored.
    let dot = t.rfind('.').unwrap();
    let mut refused = 0;
    for i in (dot + 1..t.len() - 1).step_by(7) {
        let mut bytes = t.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        let mut other = connect_as("app", "shared_a");
        assert_eq!(sub(&mut other, &forged), "28000", "byte {i}");
        refused += 1;
    }
    assert!(refused > 5);
    let s = stats(&mut a);
    assert_eq!(n(&s, &["shared", "inserts"]), inserts, "a refusal was stored: {s}");
}

/// A reload changes nothing a record vouches for (the key set's fingerprint keys it; every
/// setting is checked again at each hit): the entries stay, and a fresh backend finds its
/// token's signature there. The same keys in another text (another fingerprint) find none.
#[test]
fn c4_a_reload_keeps_the_entries_a_new_key_set_text_does_not() {
    setup();
    let (t, _) = two_databases();
    let mut a = connect_as("app", "shared_a");
    assert_eq!(sub(&mut a, &t), "shared-user");
    let entries = n(&stats(&mut a), &["shared", "entries"]);
    assert!(entries >= 1);
    superuser().batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        n(&stats(&mut a), &["shared", "entries"]) >= entries,
        "a reload voided entries"
    );
    let mut fresh = connect_as("app", "shared_a");
    assert_eq!(sub(&mut fresh, &t), "shared-user");
    assert_eq!(
        n(&stats(&mut fresh), &["shared_signature_hits"]),
        1,
        "the signature was checked again after a reload"
    );
    let mut su = connect_as("postgres", "shared_a");
    let keys: String = su
        .query_one("SELECT current_setting('pg_jwt.jwks')", &[])
        .unwrap()
        .get(0);
    su.batch_execute(&format!(
        "ALTER DATABASE shared_a SET pg_jwt.jwks = {}",
        lit(&format!("{keys} "))
    ))
    .unwrap();
    let mut other_text = connect_as("app", "shared_a");
    assert_eq!(sub(&mut other_text, &t), "shared-user");
    assert_eq!(
        n(&stats(&mut other_text), &["shared_signature_hits"]),
        0,
        "a record made under another key set text vouched for the signature"
    );
    su.batch_execute(&format!("ALTER DATABASE shared_a SET pg_jwt.jwks = {}", lit(&keys)))
        .unwrap();
}

#[test]
fn c5_key_rotation_under_eight_connections_no_old_token_after_the_reload() {
    setup();
    database("shared_rot");
    let mut su = superuser();
    let key = |su: &mut Client| -> String {
        su.query_one("SELECT jwt_generate_jwk('HS256', 'rot')::text", &[])
            .unwrap()
            .get(0)
    };
    let (old_key, new_key) = (key(&mut su), key(&mut su));
    let reload_to = |su: &mut Client, k: &str| {
        su.batch_execute(&format!("ALTER SYSTEM SET pg_jwt.jwks = {}", lit(k)))
            .unwrap();
        su.batch_execute("SELECT pg_reload_conf()").unwrap();
    };
    reload_to(&mut su, &old_key);
    std::thread::sleep(Duration::from_millis(500));
    // 40 tokens of the old key, shared by every connection.
    let tokens: Vec<String> = (0..40)
        .map(|i| {
            su.query_one(
                "SELECT jwt_sign(jsonb_build_object('sub', 'rot-' || $1::int, 'exp', extract(epoch FROM now())::bigint + 600), $2::text::jsonb)",
                &[&i, &old_key],
            )
            .unwrap()
            .get(0)
        })
        .collect();
    let tokens = Arc::new(tokens);
    let cutoff: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (late, before, total) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (tokens, cutoff, stop, late, before, total) = (
                Arc::clone(&tokens),
                Arc::clone(&cutoff),
                Arc::clone(&stop),
                Arc::clone(&late),
                Arc::clone(&before),
                Arc::clone(&total),
            );
            std::thread::spawn(move || {
                let mut c = connect_as("app", "shared_rot");
                let mut i = w;
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let started = Instant::now();
                    let ok = sub(&mut c, &tokens[i % tokens.len()]).starts_with("rot-");
                    i += 3;
                    total.fetch_add(1, Ordering::Relaxed);
                    match *cutoff.lock().unwrap() {
                        Some(at) if started > at => {
                            if ok {
                                late.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            if ok {
                                before.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    reload_to(&mut su, &new_key);
    // pg_reload_conf() signals asynchronously: every backend has read the new file once the
    // postmaster forwarded the signal; a grace before the cutoff (300 ms was once too short on
    // a loaded 2-core machine under PostgreSQL 18: no backend had read the file by then).
    std::thread::sleep(Duration::from_millis(1500));
    *cutoff.lock().unwrap() = Some(Instant::now());
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    su.batch_execute("ALTER SYSTEM RESET pg_jwt.jwks").unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    assert!(
        before.load(Ordering::Relaxed) > 40,
        "the old tokens worked before the rotation"
    );
    assert!(total.load(Ordering::Relaxed) > 100, "too few transactions");
    assert_eq!(
        late.load(Ordering::Relaxed),
        0,
        "an old-key token was accepted after the reload"
    );
}

#[test]
fn c6_the_size_bound_holds_with_a_million_distinct_tokens() {
    setup();
    database("shared_size");
    let mut su = superuser();
    let k: String = su
        .query_one("SELECT jwt_generate_jwk('HS256', 'size')::text", &[])
        .unwrap()
        .get(0);
    su.batch_execute(&format!("ALTER SYSTEM SET pg_jwt.jwks = {}", lit(&k)))
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut c = connect_as("postgres", "shared_size");
    c.batch_execute("SET pg_jwt.cache_size = 1").unwrap();
    let before = stats(&mut c);
    c.batch_execute(&format!(
        "DO $$ DECLARE k jsonb := {}::jsonb; e bigint := extract(epoch FROM now())::bigint + 600; BEGIN
           FOR i IN 1..1000000 LOOP
             PERFORM set_config('pg_jwt.token', jwt_sign(jsonb_build_object('sub', 's' || i, 'exp', e), k), false);
             IF jwt_claim('sub') IS DISTINCT FROM 's' || i THEN RAISE 'wrong claims for token %', i; END IF;
           END LOOP; END $$",
        lit(&k)
    ))
    .unwrap();
    let after = stats(&mut c);
    su.batch_execute("ALTER SYSTEM RESET pg_jwt.jwks").unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    let capacity = n(&after, &["shared", "capacity"]);
    let inserts = n(&after, &["shared", "inserts"]) - n(&before, &["shared", "inserts"]);
    let evictions = n(&after, &["shared", "evictions"]) - n(&before, &["shared", "evictions"]);
    assert_eq!(inserts, 1_000_000, "each new token stored once: {after}");
    assert!(n(&after, &["shared", "entries"]) <= capacity, "{after}");
    assert!(
        evictions >= 1_000_000 - capacity,
        "a full table evicts: {evictions} evictions, capacity {capacity}"
    );
    assert_eq!(
        n(&after, &["verifications"]) - n(&before, &["verifications"]),
        1_000_000
    );
}

#[test]
fn c7_the_next_backend_verifies_from_the_record_against_its_own_settings() {
    setup();
    let (t, _) = two_databases();
    // First backend: verified in full, recorded with its algorithm.
    let mut a1 = connect_as("app", "shared_a");
    assert_eq!(sub(&mut a1, &t), "shared-user");
    // Next backend: from the record (the header is not decoded again).
    let mut a2 = connect_as("app", "shared_a");
    assert_eq!(sub(&mut a2, &t), "shared-user");
    let s2 = stats(&mut a2);
    assert_eq!(n(&s2, &["shared_signature_hits"]), 1, "{s2}");
    assert_eq!(n(&s2, &["shared_record_hits"]), 1, "{s2}");
    // A record is checked against the backend's own settings: an audience refuses the token
    // (it has no aud). (The size cap and the algorithm allowlist: core/tests/signature_cache.rs.)
    let mut other = connect_as("postgres", "shared_a");
    other.batch_execute("SET pg_jwt.audience = 'someone-else'").unwrap();
    let hits = n(&stats(&mut other), &["shared", "hits"]);
    assert_eq!(sub(&mut other, &t), "28000");
    let s3 = stats(&mut other);
    assert_eq!(
        n(&s3, &["shared", "hits"]),
        hits + 1,
        "found on record, then refused: {s3}"
    );
    assert_eq!(n(&s3, &["verifications"]), 0, "{s3}");
}
