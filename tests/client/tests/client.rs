//! pg_jwt from outside the server: a real client, a non-superuser role, RLS policies written with
//! the accessors, connection pools, pgbouncer, savepoints, generic plans and parallel query.
//! Rows F1–F12 of ../shared/security-checklist.md are named where tested.

use pg_jwt_client_tests::*;
use postgres::Client;
use std::collections::BTreeSet;

fn tokens(su: &mut Client) -> Vec<String> {
    (0..TENANTS).map(|i| token(su, i, 3600, "")).collect()
}

fn visible_tenants(c: &mut Client) -> BTreeSet<String> {
    c.query("SELECT DISTINCT tenant_id::text FROM docs", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn set_local(c: &mut Client, token: &str) {
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&token])
        .map(|_| ())
        .unwrap();
}

fn claim(c: &mut Client, name: &str) -> Option<String> {
    c.query_one("SELECT jwt_claim($1)", &[&name]).unwrap().get(0)
}

/// One transaction of tenant `i`: read, update a row by id (own or foreign), insert an event.
/// Returns the number of foreign rows seen or written (must be 0).
fn tenant_transaction(c: &mut Client, tokens: &[String], i: usize, n: usize) -> usize {
    let mut violations = 0;
    c.batch_execute("BEGIN").unwrap();
    set_local(c, &tokens[i]);
    let own = tenant(i);
    for row in c
        .query(
            "SELECT tenant_id::text FROM docs WHERE id % 97 = $1",
            &[&((n % 97) as i64)],
        )
        .unwrap()
    {
        if row.get::<_, String>(0) != own {
            violations += 1;
        }
    }
    // Rows with id % 6 == i belong to tenant i: updating any other id must touch nothing.
    let id = (n % 6000 + 1) as i64;
    let updated = c
        .execute("UPDATE docs SET hits = hits + 1 WHERE id = $1", &[&id])
        .unwrap();
    if (updated == 1) != ((id % 6) as usize == i) {
        violations += 1;
    }
    c.execute(
        "INSERT INTO events (tenant_id, note) VALUES (jwt_claim_uuid('tenant_id'), 'tx')",
        &[],
    )
    .unwrap();
    c.batch_execute("COMMIT").unwrap();
    violations
}

#[test]
fn pool_of_8_connections_10000_transactions_never_see_another_tenant() {
    setup();
    let mut su = superuser();
    let toks = tokens(&mut su);
    su.batch_execute("TRUNCATE events").unwrap();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let toks = toks.clone();
            std::thread::spawn(move || {
                let mut c = app();
                let mut violations = 0;
                let mut per_tenant = vec![0usize; TENANTS];
                for n in 0..1250 {
                    let i = (w * 7 + n * 5) % TENANTS;
                    violations += tenant_transaction(&mut c, &toks, i, w * 10_000 + n);
                    per_tenant[i] += 1;
                }
                (violations, per_tenant)
            })
        })
        .collect();
    let mut expected = vec![0usize; TENANTS];
    let mut violations = 0;
    for w in workers {
        let (v, per) = w.join().unwrap();
        violations += v;
        for (e, p) in expected.iter_mut().zip(per) {
            *e += p;
        }
    }
    assert_eq!(violations, 0, "rows of another tenant were seen or written");
    assert_eq!(expected.iter().sum::<usize>(), 10_000);
    for (i, want) in expected.iter().enumerate() {
        let got: i64 = su
            .query_one(
                "SELECT count(*) FROM events WHERE tenant_id = $1::text::uuid",
                &[&tenant(i)],
            )
            .unwrap()
            .get(0);
        assert_eq!(got as usize, *want, "events of tenant {i}");
    }
}

#[test]
fn pgbouncer_transaction_pooling_never_leaks_tenants() {
    setup();
    let mut su = superuser();
    let toks = tokens(&mut su);
    // 8 clients share pgbouncer's 3 server connections: each transaction may land on any.
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let toks = toks.clone();
            std::thread::spawn(move || {
                let mut c = connect_pgbouncer();
                let mut violations = 0;
                let mut backends = BTreeSet::new();
                for n in 0..500 {
                    let i = (w + n) % TENANTS;
                    violations += tenant_transaction(&mut c, &toks, i, w * 1000 + n);
                    // A transaction without a token right after: the pooled server connection
                    // must not remember the previous transaction's token.
                    if n % 10 == 0 {
                        c.batch_execute("BEGIN").unwrap();
                        violations += visible_tenants(&mut c).len();
                        let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
                        backends.insert(pid);
                        c.batch_execute("COMMIT").unwrap();
                    }
                }
                (violations, backends)
            })
        })
        .collect();
    let mut violations = 0;
    let mut backends = BTreeSet::new();
    for w in workers {
        let (v, b) = w.join().unwrap();
        violations += v;
        backends.extend(b);
    }
    assert_eq!(violations, 0);
    assert!(
        backends.len() <= 3,
        "pgbouncer should multiplex onto its pool: {backends:?}"
    );
}

#[test]
fn f4_set_local_ends_with_commit_and_rollback() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 1, 3600, "");
    let mut c = app();
    for end in ["COMMIT", "ROLLBACK"] {
        c.batch_execute("BEGIN").unwrap();
        set_local(&mut c, &t);
        assert_eq!(visible_tenants(&mut c), BTreeSet::from([tenant(1)]));
        c.batch_execute(end).unwrap();
        assert_eq!(claim(&mut c, "sub"), None, "after {end}");
        assert!(visible_tenants(&mut c).is_empty(), "no token sees nothing after {end}");
    }
    // Autocommit: SET LOCAL outside a transaction block does nothing (with a warning).
    c.batch_execute(&format!("SET LOCAL pg_jwt.token = {}", lit(&t)))
        .unwrap();
    assert_eq!(claim(&mut c, "sub"), None);
    // Session-level SET also works, and RESET removes it.
    c.batch_execute(&format!("SET pg_jwt.token = {}", lit(&t))).unwrap();
    assert_eq!(claim(&mut c, "sub"), Some("user-1".into()));
    c.batch_execute("RESET pg_jwt.token").unwrap();
    assert_eq!(claim(&mut c, "sub"), None);
}

#[test]
fn f5_rollback_to_savepoint_restores_the_previous_token() {
    setup();
    let mut su = superuser();
    let (a, b) = (token(&mut su, 1, 3600, ""), token(&mut su, 2, 3600, ""));
    let mut c = app();
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &a);
    c.batch_execute("SAVEPOINT s").unwrap();
    set_local(&mut c, &b);
    assert_eq!(visible_tenants(&mut c), BTreeSet::from([tenant(2)]));
    c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    assert_eq!(claim(&mut c, "sub"), Some("user-1".into()));
    assert_eq!(visible_tenants(&mut c), BTreeSet::from([tenant(1)]));
    // RELEASE keeps the inner value.
    c.batch_execute("SAVEPOINT s2").unwrap();
    set_local(&mut c, &b);
    c.batch_execute("RELEASE SAVEPOINT s2").unwrap();
    assert_eq!(claim(&mut c, "sub"), Some("user-2".into()));
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(claim(&mut c, "sub"), None);
}

#[test]
fn f6_prepared_statements_with_generic_plans_follow_the_token() {
    setup();
    let mut su = superuser();
    let toks = tokens(&mut su);
    let mut c = app();
    c.batch_execute("SET plan_cache_mode = force_generic_plan").unwrap();
    let stmt = c
        .prepare("SELECT count(*), min(tenant_id::text), max(tenant_id::text) FROM docs")
        .unwrap();
    for round in 0..3 {
        for (i, t) in toks.iter().enumerate() {
            c.batch_execute("BEGIN").unwrap();
            set_local(&mut c, t);
            let row = c.query_one(&stmt, &[]).unwrap();
            assert_eq!(row.get::<_, i64>(0), 1000, "round {round} tenant {i}");
            assert_eq!(row.get::<_, Option<String>>(1), Some(tenant(i)));
            assert_eq!(row.get::<_, Option<String>>(2), Some(tenant(i)));
            c.batch_execute("COMMIT").unwrap();
        }
        let row = c.query_one(&stmt, &[]).unwrap();
        assert_eq!(row.get::<_, i64>(0), 0, "no token: no rows");
    }
}

#[test]
fn f7_parallel_query_returns_the_same_rows_as_serial() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 3, 3600, "");
    let mut c = app();
    let q = "SELECT count(*), count(DISTINCT tenant_id), sum(id)::bigint FROM docs WHERE body LIKE 'doc%'";
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &t);
    let serial = c.query_one(q, &[]).unwrap();
    let force = force_parallel(&mut c);
    c.batch_execute(&format!(
        "{force}; SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
         SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
         SET LOCAL parallel_leader_participation = off"
    ))
    .unwrap();
    let plan: Vec<String> = c
        .query(&format!("EXPLAIN (ANALYZE, COSTS OFF) {q}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Gather"), "expected a parallel plan:\n{plan}");
    assert!(
        plan.contains("Workers Launched: 1") || plan.contains("Workers Launched: 2"),
        "workers ran:\n{plan}"
    );
    let parallel = c.query_one(q, &[]).unwrap();
    for col in 0..3 {
        assert_eq!(serial.get::<_, i64>(col), parallel.get::<_, i64>(col));
    }
    assert_eq!(parallel.get::<_, i64>(0), 1000);
    assert_eq!(parallel.get::<_, i64>(1), 1);
    // A rejected token errors in the workers too.
    set_local(&mut c, "eyJhbGciOiJFUzI1NiJ9.e30.AAAA");
    let r = c.query_one(q, &[]);
    assert_eq!(sqlstate(&r), "28000", "{}", message(&r));
    c.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn f3_non_superuser_cannot_change_the_key_settings() {
    setup();
    let mut c = app();
    for stmt in [
        "SET pg_jwt.jwks = '{}'",
        "SET pg_jwt.audience = 'x'",
        "SET pg_jwt.issuer = 'x'",
        "SET pg_jwt.leeway = 3600",
        "SET pg_jwt.required_claims = ''",
        "SET pg_jwt.max_token_bytes = 300",
        "SET pg_jwt.cache_size = 5",
        "SELECT set_config('pg_jwt.jwks', '{}', false)",
        "ALTER SYSTEM SET pg_jwt.jwks = '{}'",
        "ALTER ROLE app SET pg_jwt.jwks = '{}'",
        "SHOW pg_jwt.jwks",
        "SELECT current_setting('pg_jwt.jwks')",
    ] {
        let r = c.batch_execute(stmt);
        assert_eq!(sqlstate(&r), "42501", "{stmt}: {}", message(&r));
    }
    let hidden: i64 = c
        .query_one("SELECT count(*) FROM pg_settings WHERE name = 'pg_jwt.jwks'", &[])
        .unwrap()
        .get(0);
    assert_eq!(hidden, 0);
    // Through the startup packet (PGOPTIONS): with shared_preload_libraries (required) the
    // connection is refused (42501). Without preloading the session path refuses to work
    // (security_fixes.rs, S3); should a connection get through here, the attacker's key must
    // still never verify.
    let mut su = superuser();
    let attacker_key = r#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
    let forged: String = su
        .query_one(
            &format!(
                "SELECT jwt_sign(jsonb_build_object('sub', 'mallory', 'aud', {}, 'iss', {}, 'exp', 9999999999), {})",
                lit(AUDIENCE),
                lit(ISSUER),
                lit(attacker_key)
            ),
            &[],
        )
        .unwrap()
        .get(0);
    match try_connect(
        "app",
        "app",
        &format!("-c pg_jwt.jwks={}", attacker_key.replace('"', "\\\"")),
    ) {
        Err(e) => assert_eq!(sqlstate::<()>(&Err(e)), "42501"),
        Ok(mut c) => {
            c.batch_execute(&format!("SET pg_jwt.token = {}", lit(&forged)))
                .unwrap();
            let r = c.query_one("SELECT jwt_claim('sub')", &[]);
            let state = sqlstate(&r);
            assert!(
                state == "22023" || state == "28000",
                "attacker key must not verify: {state} {}",
                message(&r)
            );
        }
    }
}

#[test]
fn f1_claims_never_come_from_other_settings_or_startup_options() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 4, 3600, "");
    let forged = r#"{"sub":"mallory","tenant_id":"00000000-0000-4000-8000-000000000001"}"#;
    let mut c = connect_with(
        "app",
        "app",
        &format!("-c request.jwt.claims={}", forged.replace(' ', "")),
    );
    assert_eq!(claim(&mut c, "sub"), None);
    assert!(visible_tenants(&mut c).is_empty());
    c.batch_execute(&format!(
        "SELECT set_config('request.jwt.claims', {}, false)",
        lit(forged)
    ))
    .unwrap();
    assert!(visible_tenants(&mut c).is_empty());
    // A token given at connection time is verified like any other.
    let mut c = connect_with("app", "app", &format!("-c pg_jwt.token={t}"));
    assert_eq!(visible_tenants(&mut c), BTreeSet::from([tenant(4)]));
    // A token with forged claims but a valid-looking shape is refused.
    let parts: Vec<&str> = t.split('.').collect();
    let body = r#"{"sub":"mallory","tenant_id":"00000000-0000-4000-8000-000000000001","exp":9999999999}"#;
    let forged_token = format!("{}.{}.{}", parts[0], b64url(body.as_bytes()), parts[2]);
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &forged_token);
    let r = c.query("SELECT * FROM docs", &[]);
    assert_eq!(sqlstate(&r), "28000");
    c.batch_execute("ROLLBACK").unwrap();
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn f2_placeholder_set_before_the_library_loads_is_never_trusted() {
    setup();
    let mut su = superuser();
    // An attacker's own key set and a token signed with it.
    let attacker_private: String = su
        .query_one("SELECT jwt_generate_jwk('ES256', 'test-key')::text", &[])
        .unwrap()
        .get(0);
    let attacker_public: String = su
        .query_one(
            &format!("SELECT jwt_public_jwks({})::text", lit(&attacker_private)),
            &[],
        )
        .unwrap()
        .get(0);
    let evil: String = su
        .query_one(
            &format!(
                "SELECT jwt_sign(jsonb_build_object('sub', 'mallory', 'aud', {}, 'exp', extract(epoch FROM now())::bigint + 600), {})",
                lit(AUDIENCE),
                lit(&attacker_private)
            ),
            &[],
        )
        .unwrap()
        .get(0);
    // Preloaded: the setting exists before any statement, so the non-superuser's SET is refused.
    let mut c = app();
    let r = c.batch_execute(&format!("SET pg_jwt.jwks = {}", lit(&attacker_public)));
    assert_eq!(sqlstate(&r), "42501", "{}", message(&r));
    // Not preloaded: the SET creates a placeholder, and the session path refuses to run at all.
    let mut c = try_connect_nopreload("app", "app", "").unwrap();
    c.batch_execute(&format!("SET pg_jwt.jwks = {}", lit(&attacker_public)))
        .unwrap();
    c.batch_execute(&format!("SET pg_jwt.token = {}", lit(&evil))).unwrap();
    let r = c.query_one("SELECT jwt_claim('sub')", &[]);
    assert_eq!(sqlstate(&r), "55000", "{}", message(&r));
}

#[test]
fn f8_shadowing_functions_and_operators_does_not_change_policies() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 5, 3600, "");
    su.batch_execute("DROP SCHEMA IF EXISTS evil CASCADE; CREATE SCHEMA evil AUTHORIZATION app")
        .unwrap();
    let mut c = app();
    c.batch_execute(&format!(
        "CREATE FUNCTION evil.jwt_claim_uuid(text) RETURNS uuid LANGUAGE sql AS $$ SELECT {}::uuid $$;
         CREATE FUNCTION evil.jwt_claim_uuid(varchar) RETURNS uuid LANGUAGE sql AS $$ SELECT {}::uuid $$;
         CREATE FUNCTION evil.always(uuid, uuid) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
         CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.always);
         CREATE FUNCTION pg_temp.jwt_claim_uuid(text) RETURNS uuid LANGUAGE sql AS $$ SELECT {}::uuid $$;",
        lit(&tenant(1)),
        lit(&tenant(1)),
        lit(&tenant(1))
    ))
    .unwrap();
    c.batch_execute("SET search_path = evil, pg_temp, public").unwrap();
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &t);
    assert_eq!(visible_tenants(&mut c), BTreeSet::from([tenant(5)]));
    c.batch_execute("COMMIT").unwrap();
    c.batch_execute("RESET search_path").unwrap();
    su.batch_execute("DROP SCHEMA evil CASCADE").unwrap();
}

#[test]
fn f9_hostile_tokens_end_in_clean_errors_and_the_backend_survives() {
    setup();
    let mut su = superuser();
    let good = token(&mut su, 0, 3600, "");
    let mut c = app();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let long = "A".repeat(20_000);
    let deep = format!(
        "eyJhbGciOiJFUzI1NiJ9.{}.AAAA",
        b64url(format!("{}1{}", "[".repeat(500), "]".repeat(500)).as_bytes())
    );
    let hostile: Vec<String> = vec![
        ".".into(),
        "..".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "a.b.c.d.e".into(),
        format!("Bearer {good}"),
        format!("{good}="),
        // The standard alphabet: a '+' in place of one signature character (always a change).
        format!("{}+{}", &good[..good.len() - 5], &good[good.len() - 4..]),
        format!("{}.{}.", b64url(br#"{"alg":"none"}"#), b64url(b"{}")),
        format!("{}.{}.AAAA", b64url(br#"{"alg":"HS256","crit":["x"]}"#), b64url(b"{}")),
        format!("{}.{}.AAAA", b64url(b"[1]"), b64url(b"{}")),
        long,
        deep,
        "\u{e9}\u{e9}.\u{e9}.\u{e9}".into(),
        "eyJhbGciOiJFUzI1NiIsImtpZCI6MX0.e30.AAAA".into(),
    ];
    for t in &hostile {
        c.batch_execute("BEGIN").unwrap();
        set_local(&mut c, t);
        for call in [
            "SELECT jwt_claim('sub')",
            "SELECT jwt_claims()",
            "SELECT count(*) FROM docs",
        ] {
            c.batch_execute("SAVEPOINT h").unwrap();
            let r = c.query(call, &[]);
            assert_eq!(sqlstate(&r), "28000", "{call} with {:.40}: {}", t, message(&r));
            assert!(message(&r).starts_with("pg_jwt: "), "{}", message(&r));
            c.batch_execute("ROLLBACK TO SAVEPOINT h").unwrap();
        }
        c.batch_execute("ROLLBACK").unwrap();
    }
    let after: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    assert_eq!(pid, after, "same backend");
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

#[test]
fn f10_error_messages_carry_no_token_claim_or_key_bytes() {
    setup();
    let mut su = superuser();
    let expired = token(&mut su, 2, -3600, r#"{"secret_note":"SHOULD-NOT-LEAK"}"#);
    let forged = {
        let p: Vec<&str> = expired.split('.').collect();
        format!(
            "{}.{}.{}",
            p[0],
            b64url(br#"{"secret_note":"SHOULD-NOT-LEAK","exp":9999999999}"#),
            p[2]
        )
    };
    let mut c = app();
    for t in [&expired, &forged] {
        c.batch_execute("BEGIN").unwrap();
        set_local(&mut c, t);
        let r = c.query("SELECT jwt_claim('sub')", &[]);
        let text = message(&r);
        assert_eq!(sqlstate(&r), "28000");
        for secret in ["SHOULD-NOT-LEAK", &t[..20], &t[t.len() - 20..], "user-2", &tenant(2)] {
            assert!(!text.contains(secret), "{text}");
        }
        c.batch_execute("ROLLBACK").unwrap();
    }
    // The expiry detail names the time.
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &expired);
    let r = c.query("SELECT jwt_claim('sub')", &[]);
    assert!(
        message(&r).contains("token expired / the token expired at"),
        "{}",
        message(&r)
    );
    c.batch_execute("ROLLBACK").unwrap();
}

fn backend_rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn f11_100k_distinct_tokens_keep_the_cache_and_rss_bounded() {
    setup();
    let mut su = superuser();
    let pid: i32 = su.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let batch = |su: &mut Client, from: i64, to: i64| {
        su.batch_execute(&format!(
            "DO $$ DECLARE k jsonb := (SELECT key FROM test_keys); BEGIN
               FOR i IN {from}..{to} LOOP
                 PERFORM set_config('pg_jwt.token', jwt_sign(jsonb_build_object('sub', 'u' || i, 'aud', '{AUDIENCE}',
                   'iss', '{ISSUER}', 'exp', extract(epoch FROM now())::bigint + 600), k), false);
                 PERFORM jwt_claim('sub');
               END LOOP; END $$"
        ))
        .unwrap();
    };
    batch(&mut su, 1, 10_000);
    let rss_10k = backend_rss_kb(pid);
    batch(&mut su, 10_001, 100_000);
    let rss_100k = backend_rss_kb(pid);
    let stats: serde_json::Value = serde_json::from_str(
        &su.query_one("SELECT jwt_cache_stats()::text", &[])
            .unwrap()
            .get::<_, String>(0),
    )
    .unwrap();
    assert_eq!(stats["cached_tokens"], stats["capacity"], "{stats}");
    assert!(stats["verifications"].as_u64().unwrap() >= 100_000, "{stats}");
    eprintln!("backend RSS: {rss_10k} kB after 10k tokens, {rss_100k} kB after 100k ({stats})");
    assert!(
        rss_100k < rss_10k + 8 * 1024,
        "RSS grew from {rss_10k} kB to {rss_100k} kB"
    );
}

/// A statement of about 6 s that calls the accessor (constant name: the fastest path) for each
/// row, run under a token that expires during it: it must fail (28000), not finish.
fn outlive_the_token(c: &mut Client) -> Result<postgres::Row, postgres::Error> {
    let r = c.query_one(
        "SELECT count(*) FROM generate_series(1, 600) g
         WHERE (jwt_claim('sub') || pg_sleep(0.01)::text || g) IS NOT NULL",
        &[],
    );
    assert_eq!(
        sqlstate(&r),
        "28000",
        "the statement outlived the token: {}",
        message(&r)
    );
    r
}

/// The per-row path skips the clock while a timer covers the token (src/expiry.rs): a token
/// that expires in the middle of one statement must still stop working at once. The statement
/// runs about 6 s, calling the accessor (constant name: the fastest path) for each row; the
/// token expires after 2 to 3 s: the statement fails, it does not finish.
#[test]
fn f12b_a_token_expiring_during_a_statement_stops_working_at_once() {
    setup();
    let mut su = superuser();
    su.batch_execute("ALTER ROLE app IN DATABASE app SET pg_jwt.leeway = 0")
        .unwrap();
    let t = token(&mut su, 1, 3, "");
    let mut c = app();
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &t);
    let r = outlive_the_token(&mut c);
    assert!(message(&r).starts_with("pg_jwt: token expired"), "{}", message(&r));
    c.batch_execute("ROLLBACK").unwrap();
    su.batch_execute("ALTER ROLE app IN DATABASE app RESET pg_jwt.leeway")
        .unwrap();
}

/// The timer stays armed for the earliest deadline it was given (src/expiry.rs keeps a pending
/// deadline that comes first): a token expiring sooner than the one before it in the same
/// session must move the timer earlier, or the per-row path would skip the clock past its
/// expiry. The first token lives an hour; the second expires after 2 to 3 s in the middle of a
/// 6 s statement, which must fail.
#[test]
fn f12c_a_sooner_expiring_token_after_a_later_one_still_stops_at_once() {
    setup();
    let mut su = superuser();
    su.batch_execute("ALTER ROLE app IN DATABASE app SET pg_jwt.leeway = 0")
        .unwrap();
    let long = token(&mut su, 1, 3600, "");
    let short = token(&mut su, 1, 3, "");
    let mut c = app();
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &long);
    assert_eq!(visible_tenants(&mut c), BTreeSet::from([tenant(1)]));
    c.batch_execute("COMMIT").unwrap();
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &short);
    outlive_the_token(&mut c).ok();
    c.batch_execute("ROLLBACK").unwrap();
    // And the other way round: after the short token's deadline passed, the long one works.
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &long);
    assert_eq!(visible_tenants(&mut c), BTreeSet::from([tenant(1)]));
    c.batch_execute("COMMIT").unwrap();
    su.batch_execute("ALTER ROLE app IN DATABASE app RESET pg_jwt.leeway")
        .unwrap();
}

#[test]
fn f12_long_transaction_past_exp_loses_its_claims() {
    setup();
    let mut su = superuser();
    su.batch_execute("ALTER ROLE app IN DATABASE app SET pg_jwt.leeway = 0")
        .unwrap();
    let t = token(&mut su, 1, 2, "");
    let mut c = app();
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &t);
    assert_eq!(visible_tenants(&mut c), BTreeSet::from([tenant(1)]));
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let r = c.query("SELECT count(*) FROM docs", &[]);
    assert_eq!(sqlstate(&r), "28000");
    assert!(message(&r).starts_with("pg_jwt: token expired"));
    c.batch_execute("ROLLBACK").unwrap();
    su.batch_execute("ALTER ROLE app IN DATABASE app RESET pg_jwt.leeway")
        .unwrap();
}

/// A reload assigns every setting of the configuration files again, changed or not. One that
/// changes no validation setting keeps the backend's verified tokens (no new verification) and
/// the shared cache; one that changes a validation setting voids the backend's (the token is
/// verified again under the new value), and the shared cache's record still vouches for the
/// signature (each hit checks the settings again).
#[test]
fn d19b_a_reload_that_changes_no_validation_setting_keeps_the_caches() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 1, 600, "");
    let mut c = superuser();
    let read = |c: &mut Client| {
        c.batch_execute("BEGIN").unwrap();
        set_local(c, &t);
        let sub: Option<String> = c.query_one("SELECT jwt_claim('sub')", &[]).unwrap().get(0);
        assert!(sub.is_some());
        c.batch_execute("COMMIT").unwrap();
    };
    let stats = |c: &mut Client| -> serde_json::Value {
        serde_json::from_str(
            &c.query_one("SELECT jwt_cache_stats()::text", &[])
                .unwrap()
                .get::<_, String>(0),
        )
        .unwrap()
    };
    let count = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    // Sets `name` server-wide (`None`: resets it) and waits until the session `c` shows `want`.
    let reload = |su: &mut Client, c: &mut Client, name: &str, value: Option<&str>, want: &str| {
        match value {
            Some(v) => su.batch_execute(&format!("ALTER SYSTEM SET {name} = {v}")).unwrap(),
            None => su.batch_execute(&format!("ALTER SYSTEM RESET {name}")).unwrap(),
        }
        su.batch_execute("SELECT pg_reload_conf()").unwrap();
        for _ in 0..200 {
            let now: String = c
                .query_one(&format!("SELECT current_setting('{name}')"), &[])
                .unwrap()
                .get(0);
            if now == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the reload of {name} did not reach the session");
    };
    let setting = |c: &mut Client, name: &str| -> String {
        c.query_one(&format!("SELECT current_setting('{name}')"), &[])
            .unwrap()
            .get(0)
    };
    let (leeway, per_second) = (
        setting(&mut c, "pg_jwt.leeway"),
        setting(&mut c, "pg_jwt.log_refusals_per_second"),
    );
    read(&mut c);
    let before = stats(&mut c);
    // A validation setting written to the file at the value in force: every reload from now on
    // assigns it again (the assign hook runs, the configuration generation moves), unchanged.
    let required = setting(&mut c, "pg_jwt.required_claims");
    reload(
        &mut su,
        &mut c,
        "pg_jwt.required_claims",
        Some(&lit(&required)),
        &required,
    );
    read(&mut c);
    reload(&mut su, &mut c, "pg_jwt.log_refusals_per_second", Some("11"), "11");
    read(&mut c);
    let unrelated = stats(&mut c);
    assert_eq!(
        count(&unrelated, "verifications"),
        count(&before, "verifications"),
        "a reload that changed no validation setting voided the backend's cache: {before} then {unrelated}"
    );
    reload(&mut su, &mut c, "pg_jwt.leeway", Some("29"), "29s");
    read(&mut c);
    let changed = stats(&mut c);
    assert_eq!(
        count(&changed, "verifications"),
        count(&before, "verifications") + 1,
        "a changed validation setting must void the backend's cache: {unrelated} then {changed}"
    );
    assert_eq!(
        count(&changed, "shared_record_hits"),
        count(&unrelated, "shared_record_hits") + 1,
        "the shared cache's record vouches for the signature after a reload: {unrelated} then {changed}"
    );
    reload(&mut su, &mut c, "pg_jwt.leeway", None, &leeway);
    reload(&mut su, &mut c, "pg_jwt.log_refusals_per_second", None, &per_second);
    reload(&mut su, &mut c, "pg_jwt.required_claims", None, &required);
}

#[test]
fn d19_key_rotation_by_reload_invalidates_cached_verifications_at_once() {
    setup();
    let mut su = superuser();
    // Database "rotation" has no database-level key set, so ALTER SYSTEM applies to it.
    let exists: bool = su
        .query_one("SELECT count(*) > 0 FROM pg_database WHERE datname = 'rotation'", &[])
        .unwrap()
        .get(0);
    if !exists {
        su.batch_execute("CREATE DATABASE rotation").unwrap();
    }
    connect_as("postgres", "rotation")
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_jwt")
        .unwrap();
    let key = |su: &mut Client| -> String {
        su.query_one("SELECT jwt_generate_jwk('HS256', 'rot')::text", &[])
            .unwrap()
            .get(0)
    };
    let (old_key, new_key) = (key(&mut su), key(&mut su));
    let sign = |su: &mut Client, k: &str| -> String {
        su.query_one(
            &format!("SELECT jwt_sign(jsonb_build_object('sub', 'rotated', 'exp', extract(epoch FROM now())::bigint + 600), {})", lit(k)),
            &[],
        )
        .unwrap()
        .get(0)
    };
    let old_token = sign(&mut su, &old_key);
    let reload_to = |su: &mut Client, k: &str| {
        // Separate statements: ALTER SYSTEM cannot run inside a multi-statement batch.
        su.batch_execute(&format!("ALTER SYSTEM SET pg_jwt.jwks = {}", lit(k)))
            .unwrap();
        su.batch_execute("SELECT pg_reload_conf()").unwrap();
    };
    // Polls a new transaction of the same session until `want` holds (a reload is asynchronous).
    let poll = |c: &mut Client, token: &str, want: &str| -> String {
        let mut last = String::new();
        for _ in 0..100 {
            c.batch_execute("BEGIN").unwrap();
            set_local(c, token);
            let r = c.query_one("SELECT jwt_claim('sub')", &[]);
            last = match &r {
                Ok(row) => row.get::<_, Option<String>>(0).unwrap_or_default(),
                Err(_) => sqlstate(&r),
            };
            c.batch_execute("ROLLBACK").unwrap();
            if last == want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        last
    };
    reload_to(&mut su, &old_key);
    let mut c = connect_as("app", "rotation");
    assert_eq!(
        poll(&mut c, &old_token, "rotated"),
        "rotated",
        "the old key verifies its token"
    );
    // Rotate: the same session, which has the token's verification cached, must refuse it.
    reload_to(&mut su, &new_key);
    assert_eq!(
        poll(&mut c, &old_token, "28000"),
        "28000",
        "a reload invalidates cached verifications"
    );
    let new_token = sign(&mut su, &new_key);
    assert_eq!(poll(&mut c, &new_token, "rotated"), "rotated");
    su.batch_execute("ALTER SYSTEM RESET pg_jwt.jwks").unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
}

/// `jwt_claim_array`: a JSON null element is a NULL element (as `jwt_claim` gives NULL for a
/// null claim), never the string `'null'`, which a token may hold too; a null claim is NULL;
/// an array or object element is its JSON text.
#[test]
fn f13_claim_array_null_elements_are_sql_nulls() {
    setup();
    let mut su = superuser();
    let t = token(
        &mut su,
        1,
        600,
        r#"{"roles": ["a", null, "null", 1.0, {"x": 1}, ["b"]], "none": null, "lone": null}"#,
    );
    let mut c = app();
    c.batch_execute("BEGIN").unwrap();
    set_local(&mut c, &t);
    let row = c
        .query_one(
            "SELECT a[1], a[2] IS NULL, a[3], a[4], a[5]::jsonb = '{\"x\": 1}', a[6]::jsonb = '[\"b\"]',
                    array_position(a, NULL), array_position(a, 'null'), cardinality(a),
                    jwt_claim_array('none') IS NULL
             FROM (SELECT jwt_claim_array('roles') AS a) s",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "a");
    assert!(row.get::<_, bool>(1), "a JSON null element is a NULL element");
    assert_eq!(row.get::<_, String>(2), "null");
    assert_eq!(row.get::<_, String>(3), "1.0");
    assert!(row.get::<_, bool>(4));
    assert!(row.get::<_, bool>(5));
    assert_eq!(row.get::<_, i32>(6), 2);
    assert_eq!(row.get::<_, i32>(7), 3);
    assert_eq!(row.get::<_, i32>(8), 6);
    assert!(row.get::<_, bool>(9), "a null claim is NULL");
    c.batch_execute("ROLLBACK").unwrap();
}
