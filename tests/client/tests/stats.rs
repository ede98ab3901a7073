//! Statistics and the refusal log (src/stats): jwt_stats() counts exactly by reason from several
//! backends, its privileges, one log line per refusal with its fields and no token bytes, the
//! cluster-wide rate limit under a flood, and log_verified = first at each change of token per backend.
//! (The Prometheus recipe: scripts/exporter-test.sh.)

use pg_jwt_client_tests::*;
use postgres::Client;
use std::time::Duration;

/// The server log of the suite's cluster (scripts/lib.sh start_cluster: $PGTMP/server.log).
fn server_log() -> String {
    let dir = std::env::var("PGJWT_TEST_HOST").unwrap();
    std::fs::read_to_string(format!("{dir}/server.log")).unwrap_or_default()
}

/// Server-wide settings (ALTER SYSTEM), reloaded.
fn configure(su: &mut Client, settings: &[(&str, &str)]) {
    for (name, value) in settings {
        su.batch_execute(&format!("ALTER SYSTEM SET {name} = {}", lit(value)))
            .unwrap();
    }
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(400));
}

/// `jwt_claim('sub')` with `token` in a transaction of its own on `c`; the SQLSTATE or "ok".
fn attempt(c: &mut Client, token: &str) -> String {
    c.batch_execute("BEGIN").unwrap();
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&token])
        .unwrap();
    let r = c.query_one("SELECT jwt_claim('sub')", &[]);
    let state = sqlstate(&r);
    c.batch_execute(if r.is_ok() { "COMMIT" } else { "ROLLBACK" }).unwrap();
    state
}

/// (outcome, reason) -> count from jwt_stats(), provider default.
fn stats(su: &mut Client) -> std::collections::HashMap<String, i64> {
    su.query(
        "SELECT outcome, coalesce(reason, ''), count FROM jwt_stats() WHERE provider = 'default'",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| {
        let outcome: String = r.get(0);
        let reason: String = r.get(1);
        (if reason.is_empty() { outcome } else { reason }, r.get::<_, i64>(2))
    })
    .collect()
}

/// A token signed with a key the server does not know (kid "stats-unknown").
fn unknown_kid_token(su: &mut Client) -> String {
    su.query_one(
        &format!(
            "SELECT jwt_sign(jsonb_build_object('sub', 'stats-stranger', 'aud', {a}, 'iss', {i},
                    'exp', extract(epoch FROM now())::bigint + 600), jwt_generate_jwk('ES256', 'stats-unknown'))",
            a = lit(AUDIENCE),
            i = lit(ISSUER)
        ),
        &[],
    )
    .unwrap()
    .get(0)
}

/// The token with one character of its signature changed.
fn tampered(t: &str) -> String {
    let mut b = t.as_bytes().to_vec();
    let i = b.len() - 5;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[test]
fn st1_jwt_stats_counts_exactly_by_reason_from_several_backends() {
    setup();
    let mut su = superuser();
    let good: Vec<String> = (0..3)
        .map(|i| token(&mut su, 1, 600, &format!(r#"{{"jti": "stats-good-{i}"}}"#)))
        .collect();
    let expired = token(&mut su, 1, -3600, r#"{"jti": "stats-expired"}"#);
    let revoked = token(&mut su, 2, 600, r#"{"jti": "stats-revoked"}"#);
    let stranger = unknown_kid_token(&mut su);
    su.batch_execute("SELECT jwt_revoke_token('stats-revoked', now() + interval '1 hour')")
        .unwrap();
    su.batch_execute("SELECT jwt_stats_reset()").unwrap();
    // Each good token in a session of its own (a fresh verification each), and again in the
    // same session (the backend's cache: not verified, not counted again).
    for t in &good {
        let mut c = app();
        assert_eq!(attempt(&mut c, t), "ok");
        assert_eq!(attempt(&mut c, t), "ok");
    }
    let mut c = app();
    let mut d = connect_pgbouncer();
    assert_eq!(attempt(&mut c, &expired), "28000");
    assert_eq!(attempt(&mut d, &expired), "28000");
    assert_eq!(attempt(&mut c, &tampered(&good[0])), "28000");
    assert_eq!(attempt(&mut d, &tampered(&good[1])), "28000");
    assert_eq!(attempt(&mut c, &revoked), "28000");
    assert_eq!(attempt(&mut d, &stranger), "28000");
    assert_eq!(attempt(&mut c, "not-a-token"), "28000");
    let s = stats(&mut su);
    let want = [
        ("accepted", 3),
        ("token expired", 2),
        ("invalid signature", 2),
        ("token revoked", 1),
        ("no matching key", 1),
        ("malformed token", 1),
        ("audience mismatch", 0),
    ];
    for (k, n) in want {
        assert_eq!(s.get(k).copied(), Some(n), "{k}: {s:?}");
    }
    assert_eq!(s.len(), 15, "one row per outcome: {s:?}");
    // The cluster-wide revocation figures count every backend's lookups.
    let lookups: i64 = su
        .query_one(
            "SELECT (jwt_cache_stats()->'cluster'->>'revocation_lookups')::bigint",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(lookups >= 4, "{lookups}");
    su.batch_execute("SELECT jwt_stats_reset()").unwrap();
    assert!(stats(&mut su).values().all(|n| *n == 0));
    su.batch_execute("SELECT jwt_unrevoke('jti', 'stats-revoked')").unwrap();
}

#[test]
fn st2_jwt_stats_is_for_pg_monitor_and_superusers_only() {
    setup();
    let mut su = superuser();
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stats_monitor') THEN CREATE ROLE stats_monitor LOGIN; END IF;
         END $$; GRANT pg_monitor TO stats_monitor;",
    )
    .unwrap();
    let mut c = app();
    for q in [
        "SELECT * FROM jwt_stats()",
        "SELECT jwt_stats_reset()",
        "SELECT pg_jwt_stats_counts()",
    ] {
        let r = c.query(q, &[]);
        assert_eq!(sqlstate(&r), "42501", "{q}: {}", message(&r));
    }
    let mut m = connect_as("stats_monitor", "app");
    assert_eq!(
        m.query("SELECT * FROM jwt_stats()", &[]).unwrap().len(),
        30,
        "15 outcomes of default and of the listed providers"
    );
    let r = m.query("SELECT jwt_stats_reset()", &[]);
    assert_eq!(sqlstate(&r), "42501", "{}", message(&r));
}

#[test]
fn st3_one_log_line_per_refusal_with_its_fields_and_no_token_bytes() {
    setup();
    let mut su = superuser();
    configure(
        &mut su,
        &[
            ("pg_jwt.log_refusals", "on"),
            ("pg_jwt.log_refusals_per_second", "1000"),
        ],
    );
    std::thread::sleep(Duration::from_millis(1100)); // a fresh second for the rate limiter
    let before = server_log().len();
    let expired = token(
        &mut su,
        1,
        -3600,
        r#"{"sub": "stats-log-expired", "jti": "stats-log-jti"}"#,
    );
    let good = token(&mut su, 1, 600, r#"{"sub": "stats-log-good"}"#);
    let forged = tampered(&token(
        &mut su,
        1,
        600,
        r#"{"sub": "stats-log-forged", "jti": "stats-log-forged-jti"}"#,
    ));
    let mut c = app();
    assert_eq!(attempt(&mut c, &expired), "28000");
    assert_eq!(attempt(&mut c, &forged), "28000");
    assert_eq!(attempt(&mut c, &good), "ok");
    // An earlier statement of the transaction set the token as a literal: the refusal's line
    // never carries a statement. (The failing statement itself is PostgreSQL's to log, at
    // log_min_error_statement: here it holds no token.)
    c.batch_execute(&format!("BEGIN; SET LOCAL pg_jwt.token = {}", lit(&expired)))
        .unwrap();
    let r = c.batch_execute("SELECT jwt_claim('sub')");
    assert_eq!(sqlstate(&r), "28000");
    c.batch_execute("ROLLBACK").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let log = server_log()[before..].to_owned();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("pg_jwt: refused token:")).collect();
    assert_eq!(lines.len(), 3, "{log}");
    let expired_line = lines[0];
    for part in [
        "reason=\"token expired\"",
        "provider=default",
        "kid=\"test-key\"",
        &format!("iss=\"{ISSUER}\""),
        "sub=\"stats-log-expired\"",
        "jti=\"stats-log-jti\"",
    ] {
        assert!(expired_line.contains(part), "{part} in {expired_line}");
    }
    let forged_line = lines[1];
    assert!(forged_line.contains("reason=\"invalid signature\""), "{forged_line}");
    assert!(forged_line.contains("claims=unverified"), "{forged_line}");
    assert!(
        !forged_line.contains("sub="),
        "an unverified sub was logged: {forged_line}"
    );
    // No token, no segment of one, anywhere in what was logged meanwhile.
    for t in [&expired, &good, &forged] {
        for segment in t.split('.') {
            assert!(!log.contains(segment), "a token segment is in the log");
        }
    }
}

#[test]
fn st4_the_rate_limit_holds_under_a_flood_of_bad_tokens() {
    setup();
    let mut su = superuser();
    configure(
        &mut su,
        &[("pg_jwt.log_refusals", "on"), ("pg_jwt.log_refusals_per_second", "10")],
    );
    let before = server_log().len();
    let started = std::time::Instant::now();
    let mut c = app();
    c.batch_execute(
        "DO $$ BEGIN
           FOR i IN 1..10000 LOOP
             BEGIN
               PERFORM set_config('pg_jwt.token', 'flood-' || i, true);
               PERFORM jwt_claim('sub');
             EXCEPTION WHEN invalid_authorization_specification THEN NULL;
             END;
           END LOOP;
         END $$",
    )
    .unwrap();
    let seconds = started.elapsed().as_secs() + 2;
    std::thread::sleep(Duration::from_millis(1500)); // the key fetcher reports the last second
    let log = server_log()[before..].to_owned();
    let refused = log.lines().filter(|l| l.contains("pg_jwt: refused token:")).count() as u64;
    let summaries: Vec<u64> = log
        .lines()
        .filter_map(|l| {
            l.split("pg_jwt: ")
                .nth(1)?
                .strip_suffix(" refused-token lines suppressed")?
                .parse()
                .ok()
        })
        .collect();
    assert!(refused <= 10 * seconds, "{refused} lines in about {seconds} s");
    assert!(!summaries.is_empty(), "no suppressed-lines summary");
    assert_eq!(
        refused + summaries.iter().sum::<u64>(),
        10_000,
        "every refusal logged or counted as suppressed"
    );
    configure(&mut su, &[("pg_jwt.log_refusals_per_second", "10")]);
}

/// `log_verified = first`: one line when a backend starts serving another token's claims, not
/// at every statement; also when the token comes back from the backend's cache after another
/// (a pooled backend's later lines belong to whoever the last line names).
#[test]
fn st5_log_verified_first_logs_each_change_of_token_per_backend() {
    setup();
    let mut su = superuser();
    configure(&mut su, &[("pg_jwt.log_verified", "first")]);
    let before = server_log().len();
    let t = token(
        &mut su,
        3,
        600,
        r#"{"sub": "stats-verified", "jti": "stats-verified-jti", "sid": "stats-sid"}"#,
    );
    let other = token(&mut su, 3, 600, r#"{"sub": "stats-other", "jti": "stats-other-jti"}"#);
    let mut c = app();
    for _ in 0..5 {
        assert_eq!(attempt(&mut c, &t), "ok");
    }
    let mut d = app();
    assert_eq!(attempt(&mut d, &t), "ok");
    std::thread::sleep(Duration::from_millis(300));
    let log = server_log()[before..].to_owned();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("pg_jwt: verified token:")).collect();
    assert_eq!(lines.len(), 2, "once per backend: {log}");
    // c serves another user, then the first again (found in its cache): a line each time.
    let before_switch = server_log().len();
    assert_eq!(attempt(&mut c, &other), "ok");
    assert_eq!(attempt(&mut c, &t), "ok");
    assert_eq!(attempt(&mut c, &t), "ok");
    std::thread::sleep(Duration::from_millis(300));
    let switched = server_log()[before_switch..].to_owned();
    let subs: Vec<&str> = switched
        .lines()
        .filter(|l| l.contains("pg_jwt: verified token:"))
        .map(|l| {
            if l.contains("sub=\"stats-other\"") {
                "other"
            } else {
                "t"
            }
        })
        .collect();
    assert_eq!(subs, ["other", "t"], "{switched}");
    for part in [
        "provider=default",
        "sub=\"stats-verified\"",
        "jti=\"stats-verified-jti\"",
        "sid=\"stats-sid\"",
        "exp=",
    ] {
        assert!(lines[0].contains(part), "{part} in {}", lines[0]);
    }
    for segment in t.split('.') {
        assert!(!log.contains(segment), "a token segment is in the log");
    }
    configure(&mut su, &[("pg_jwt.log_verified", "off")]);
}

#[test]
fn st6_the_log_settings_refuse_bad_values_and_the_application_role() {
    setup();
    let mut su = superuser();
    for (name, value) in [
        ("pg_jwt.log_verified", "sometimes"),
        ("pg_jwt.log_refusals_per_second", "-1"),
        ("pg_jwt.log_refusals_per_second", "many"),
        ("pg_jwt.log_refusals", "perhaps"),
    ] {
        let r = su.batch_execute(&format!("ALTER SYSTEM SET {name} = {}", lit(value)));
        assert_eq!(sqlstate(&r), "22023", "{name} = {value}: {}", message(&r));
    }
    // Server-wide only: a session cannot turn the refusal log off, least of all the application's.
    let mut c = app();
    for stmt in [
        "SET pg_jwt.log_refusals = off",
        "SET pg_jwt.log_refusals_per_second = 0",
        "SET pg_jwt.log_verified = off",
    ] {
        let r = c.batch_execute(stmt);
        assert_eq!(sqlstate(&r), "55P02", "{stmt}: {}", message(&r));
    }
    let r = c.batch_execute("ALTER SYSTEM SET pg_jwt.log_refusals = off");
    assert_eq!(sqlstate(&r), "42501", "{}", message(&r));
    // Nor a connection option.
    assert!(try_connect("app", "app", "-c pg_jwt.log_refusals=off").is_err());
    let refusals: String = su.query_one("SHOW pg_jwt.log_refusals", &[]).unwrap().get(0);
    assert_eq!(refusals, "on");
}

/// S28: a cancel (or `statement_timeout`) pending while a line is written. `errfinish` checks
/// for interrupts; the cancel's ERROR jumped over the Rust frames of the verification that
/// logged, which held the session cache: every later accessor of that backend failed
/// ("already mutably borrowed"). Now the line is written with interrupts held: the statement
/// is still cancelled (after pg_jwt returns), and the backend goes on.
#[test]
fn st7_a_cancel_while_a_line_is_written_leaves_the_backend_whole() {
    setup();
    let mut su = superuser();
    configure(&mut su, &[("pg_jwt.log_verified", "first")]);
    // No sub, jti or session id: no revocation lookup runs before the line (it would take the
    // cancel first).
    let sign = |su: &mut Client, n: i64| -> String {
        su.query_one(
            &format!(
                "SELECT jwt_sign(jsonb_build_object('tenant', 'st7-{n}', 'aud', {a}, 'iss', {i},
                   'exp', extract(epoch FROM now())::bigint + 600), key) FROM test_keys",
                a = lit(AUDIENCE),
                i = lit(ISSUER)
            ),
            &[],
        )
        .unwrap()
        .get(0)
    };
    let (first, second) = (sign(&mut su, 1), sign(&mut su, 2));
    let mut c = app();
    let r = c.query_one(
        "SELECT set_config('pg_jwt.token', $1, false), pg_cancel_backend(pg_backend_pid()), jwt_claim('tenant')",
        &[&first],
    );
    assert_eq!(sqlstate(&r), "57014", "{}", message(&r));
    c.execute("SELECT set_config('pg_jwt.token', $1, false)", &[&second])
        .unwrap();
    let tenant: Option<String> = c.query_one("SELECT jwt_claim('tenant')", &[]).unwrap().get(0);
    assert_eq!(tenant.as_deref(), Some("st7-2"));
    c.query_one("SELECT jwt_cache_stats()", &[]).unwrap();
    configure(&mut su, &[("pg_jwt.log_verified", "off")]);
}

/// S29: with `pg_jwt.providers`, a token whose `iss` no provider has is refused before any
/// signature (its `sub` and `jti` are anyone's): its line says `claims=unverified`, although
/// its reason ("issuer mismatch") is one that follows the signature for a chosen provider.
/// S30: the lines never reach the client, whatever its `client_min_messages`, and a claim
/// cannot forge or disguise a line (line separators, bidirectional overrides are escaped).
#[test]
fn st8_refusal_lines_show_only_signed_claims_and_stay_in_the_server_log() {
    setup();
    let mut su = superuser();
    let public = public_jwks(&mut su);
    let providers = format!(
        r#"[{{"name": "st8", "issuer": "https://st8.example.com", "jwks": {public}, "audience": "{AUDIENCE}"}}]"#
    );
    configure(
        &mut su,
        &[
            ("pg_jwt.log_refusals", "on"),
            ("pg_jwt.log_refusals_per_second", "1000"),
            ("pg_jwt.providers", &providers),
        ],
    );
    std::thread::sleep(Duration::from_millis(1100)); // a fresh second for the rate limiter
    let before = server_log().len();
    let forged = tampered(&token(
        &mut su,
        1,
        600,
        r#"{"iss": "https://evil.example.com", "sub": "alice@victim", "jti": "st8-forged"}"#,
    ));
    let expired = token(
        &mut su,
        1,
        -3600,
        r#"{"iss": "https://st8.example.com", "sub": "st8\u2028LOG:  x\u202e", "jti": "st8-jti"}"#,
    );
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = notices.clone();
    let mut cfg = postgres::Config::new();
    cfg.host_path(std::env::var("PGJWT_TEST_HOST").unwrap())
        .port(std::env::var("PGJWT_TEST_PORT").unwrap().parse().unwrap())
        .user("app")
        .dbname("app")
        .notice_callback(move |n| seen.lock().unwrap().push(n.message().to_owned()));
    let mut c = cfg.connect(postgres::NoTls).unwrap();
    c.batch_execute("SET client_min_messages = log").unwrap();
    assert_eq!(attempt(&mut c, &forged), "28000");
    assert_eq!(attempt(&mut c, &expired), "28000");
    configure(&mut su, &[("pg_jwt.providers", "")]);
    std::thread::sleep(Duration::from_millis(300));
    let log = server_log()[before..].to_owned();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("pg_jwt: refused token:")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("reason=\"issuer mismatch\""), "{}", lines[0]);
    assert!(lines[0].contains("claims=unverified"), "{}", lines[0]);
    assert!(
        !lines[0].contains("alice@victim"),
        "an unsigned sub was logged: {}",
        lines[0]
    );
    assert!(lines[1].contains("reason=\"token expired\""), "{}", lines[1]);
    assert!(lines[1].contains(r#"sub="st8\u{2028}LOG:  x\u{202e}""#), "{}", lines[1]);
    assert!(!log.contains('\u{2028}') && !log.contains('\u{202e}'), "{log}");
    let notices = notices.lock().unwrap();
    assert!(
        notices.iter().all(|m| !m.contains("pg_jwt: refused token")),
        "a log line reached the client: {notices:?}"
    );
}

/// A token read in a parallel plan is verified again by each worker (it has no cache of its
/// own): counted once, by the backend that serves the session.
#[test]
fn st9_parallel_workers_do_not_count_acceptances_again() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 2, 600, r#"{"jti": "stats-parallel"}"#);
    let accepted = |su: &mut Client| stats(su).get("accepted").copied().unwrap_or(0);
    let mut c = app();
    c.batch_execute("BEGIN").unwrap();
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t]).unwrap();
    let force = force_parallel(&mut c);
    c.batch_execute(&format!(
        "{force}; SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
         SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2"
    ))
    .unwrap();
    let before = accepted(&mut su);
    for _ in 0..3 {
        let n: i64 = c.query_one("SELECT count(*) FROM docs", &[]).unwrap().get(0);
        assert!(n > 0);
    }
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(
        accepted(&mut su) - before,
        1,
        "one acceptance for one token in one session"
    );
}
