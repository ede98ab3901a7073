//! Regression tests for the five findings of the adversarial review (README threat model rows
//! S1-S5), each as the application role where the finding was one:
//! - S1: a key set readable by the application role before the library loads;
//! - S2: an HMAC key set stored in a catalog every role can read;
//! - S3: connection options that relax validation;
//! - S4: claims in databases that are not UTF-8;
//! - S5: per-call-site memory that grows with rows, token changes and name lengths.

use pg_jwt_client_tests::*;
use postgres::Client;

/// The HMAC key set in the non-preloaded cluster's configuration (scripts/client-tests.sh).
const NOPRELOAD_SECRET_JWK: &str =
    r#"{"kty":"oct","kid":"hs","alg":"HS256","k":"bm9wcmVsb2FkLXNlY3JldC1ub3ByZWxvYWQtc2VjcmV0LTEyMzQ1Njc4"}"#;

/// A token signed with the non-preloaded cluster's secret: what an attacker who read the
/// placeholder would forge.
fn forged_with_leaked_secret(su: &mut Client) -> String {
    su.query_one(
        &format!(
            "SELECT jwt_sign(jsonb_build_object('sub', 'mallory', 'iss', 'https://issuer.test',
                    'exp', extract(epoch FROM now())::bigint + 600), {})",
            lit(NOPRELOAD_SECRET_JWK)
        ),
        &[],
    )
    .unwrap()
    .get(0)
}

fn assert_refused_not_preloaded<T>(r: Result<T, postgres::Error>, what: &str) {
    assert_eq!(sqlstate(&r), "55000", "{what}: {}", message(&r));
    let Err(e) = r else { unreachable!() };
    let db = e.as_db_error().unwrap();
    assert!(db.message().starts_with("pg_jwt:"), "{}", db.message());
    assert!(
        db.hint().unwrap_or("").contains("shared_preload_libraries"),
        "{:?}",
        db.hint()
    );
}

#[test]
fn s1_the_key_set_is_never_readable_by_the_application_role() {
    setup();
    // Preloaded (the main cluster), in a fresh session: every way of reading is refused.
    let mut c = app();
    for q in [
        "SHOW pg_jwt.jwks",
        "SELECT current_setting('pg_jwt.jwks')",
        "SELECT current_setting('pg_jwt.jwks', true)",
    ] {
        let r = c.query_one(q, &[]);
        assert_eq!(sqlstate(&r), "42501", "{q}: {}", message(&r));
    }
    let n: i64 = c
        .query_one("SELECT count(*) FROM pg_settings WHERE name = 'pg_jwt.jwks'", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // Not preloaded: nothing of ours runs before the library loads, so the placeholder is
    // readable (the README says so next to the setting). What must hold is that the session
    // path refuses to work there, so a token forged with a leaked secret is never accepted.
    let mut su = superuser();
    let forged = forged_with_leaked_secret(&mut su);
    let mut c = try_connect_nopreload("app", "app", "").unwrap();
    c.batch_execute(&format!("SET pg_jwt.token = {}", lit(&forged)))
        .unwrap();
    for q in [
        "SELECT jwt_claim('sub')",
        "SELECT jwt_claims()::text",
        "SELECT jwt_claim_uuid('sub')::text",
        "SELECT jwt_claim('a', 'b')",
    ] {
        assert_refused_not_preloaded(c.query_one(q, &[]), q);
    }
    // jwt_verify takes its key set as an argument and works without preloading.
    let claims: String = c
        .query_one(
            "SELECT jwt_verify($1, $2::text::jsonb)->>'sub'",
            &[&forged, &NOPRELOAD_SECRET_JWK],
        )
        .unwrap()
        .get(0);
    assert_eq!(claims, "mallory");
    // And the extension cannot be installed anew without preloading.
    let mut nsu = try_connect_nopreload("postgres", "app", "").unwrap();
    nsu.batch_execute("DROP DATABASE IF EXISTS fresh").unwrap();
    nsu.batch_execute("CREATE DATABASE fresh").unwrap();
    let mut f = try_connect_nopreload("postgres", "fresh", "").unwrap();
    assert_refused_not_preloaded(f.batch_execute("CREATE EXTENSION pg_jwt"), "CREATE EXTENSION");
}

#[test]
fn s2_hmac_key_sets_are_refused_where_every_role_can_read_them() {
    setup();
    let mut su = superuser();
    let hmac: String = su
        .query_one(
            "SELECT jsonb_build_object('keys', jsonb_build_array(jwt_generate_jwk('HS256', 'h')))::text",
            &[],
        )
        .unwrap()
        .get(0);
    let secret = hmac
        .split("\"k\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let public: String = su
        .query_one("SELECT jwt_public_jwks(jwt_generate_jwk('ES256', 'p'))::text", &[])
        .unwrap()
        .get(0);
    for stmt in [
        format!("ALTER DATABASE app SET pg_jwt.jwks = {}", lit(&hmac)),
        format!("ALTER ROLE app SET pg_jwt.jwks = {}", lit(&hmac)),
        format!("ALTER ROLE app IN DATABASE app SET pg_jwt.jwks = {}", lit(&hmac)),
        format!("ALTER ROLE ALL SET pg_jwt.jwks = {}", lit(&hmac)),
        format!(
            "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET pg_jwt.jwks = {} AS 'SELECT 1'",
            lit(&hmac)
        ),
        format!(
            "BEGIN; SET LOCAL pg_jwt.jwks = {};
             CREATE FUNCTION pg_temp.g() RETURNS int LANGUAGE sql SET pg_jwt.jwks FROM CURRENT AS 'SELECT 1'",
            lit(&hmac)
        ),
    ] {
        let r = su.batch_execute(&stmt);
        assert_eq!(sqlstate(&r), "22023", "{stmt}: {}", message(&r));
        let e = r.unwrap_err();
        let db = e.as_db_error().unwrap();
        let all = format!("{} {:?} {:?}", db.message(), db.detail(), db.hint());
        assert!(db.message().starts_with("pg_jwt:"), "{all}");
        assert!(db.hint().unwrap_or("").contains("ALTER SYSTEM"), "{all}");
        assert!(!all.contains(&secret), "the secret must never be echoed: {all}");
        su.batch_execute("ROLLBACK").unwrap();
    }
    let stored: i64 = su
        .query_one(
            // The member, not the bare letters: other tests store public key sets whose
            // random base64url coordinates may contain "oct" (CI met one).
            r#"SELECT count(*) FROM pg_db_role_setting, unnest(setconfig) s
                WHERE s LIKE 'pg_jwt.jwks=%' AND s ~ '"kty"\s*:\s*"oct"'"#,
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    // Public key sets may still be set per role, and HMAC sets by ALTER SYSTEM or SET.
    su.batch_execute(&format!(
        "ALTER ROLE app IN DATABASE enc_latin1 SET pg_jwt.jwks = {p};
         ALTER ROLE app IN DATABASE enc_latin1 RESET pg_jwt.jwks;
         CREATE FUNCTION pg_temp.h() RETURNS int LANGUAGE sql SET pg_jwt.jwks = {p} AS 'SELECT 1';
         BEGIN; SET LOCAL pg_jwt.jwks = {h}; COMMIT;",
        p = lit(&public),
        h = lit(&hmac)
    ))
    .unwrap();
    su.batch_execute(&format!("ALTER SYSTEM SET pg_jwt.jwks = {}", lit(&hmac)))
        .unwrap();
    su.batch_execute("ALTER SYSTEM RESET pg_jwt.jwks").unwrap();
}

#[test]
fn s3_connection_options_cannot_relax_validation() {
    setup();
    // Preloaded: a non-superuser's startup option for a superuser setting refuses the connection.
    for opt in [
        "-c pg_jwt.issuer=x",
        "-c pg_jwt.audience=x",
        "-c pg_jwt.required_claims=exp",
        "-c pg_jwt.leeway=3600",
        "-c pg_jwt.max_token_bytes=1048576",
    ] {
        let r = try_connect("app", "app", opt).map(|_| ());
        assert_eq!(sqlstate(&r), "42501", "{opt}: {}", message(&r));
    }
    // Not preloaded: the connection is accepted with placeholders, but the session path
    // refuses, so no token is ever checked against reverted settings.
    let mut su = superuser();
    let wrong_issuer: String = su
        .query_one(
            &format!(
                "SELECT jwt_sign(jsonb_build_object('sub', 'mallory', 'iss', 'https://evil.test',
                        'exp', extract(epoch FROM now())::bigint + 600), {})",
                lit(NOPRELOAD_SECRET_JWK)
            ),
            &[],
        )
        .unwrap()
        .get(0);
    let mut c = try_connect_nopreload(
        "app",
        "app",
        "-c pg_jwt.issuer=x -c pg_jwt.audience=x -c pg_jwt.required_claims=exp -c pg_jwt.leeway=3600",
    )
    .unwrap();
    c.batch_execute(&format!("SET pg_jwt.token = {}", lit(&wrong_issuer)))
        .unwrap();
    assert_refused_not_preloaded(c.query_one("SELECT jwt_claim('sub')", &[]), "jwt_claim");
}

/// Per database: its name, and how the UTF-8 bytes of "é" read when taken as that encoding
/// (the confusable identity of the finding), if any.
const ENCODED_DATABASES: [(&str, Option<&str>); 3] = [
    ("enc_euc_jp", Some("辿")),
    ("enc_latin1", Some("Ã©")),
    ("enc_sql_ascii", None),
];

fn connect_db(user: &str, db: &str) -> Client {
    connect_as(user, db)
}

#[test]
fn s4_claims_keep_their_meaning_in_non_utf8_databases() {
    setup();
    let mut su = superuser();
    let public = public_jwks(&mut su);
    let plain = token(
        &mut su,
        1,
        600,
        r#"{"sub": "é", "é": "ü", "nested": {"ñ": "ö"}, "list": ["é", "a"], "n": 7}"#,
    );
    let emoji = token(&mut su, 1, 600, r#"{"sub": "é", "emoji": "😀"}"#);
    for (db, confusable) in ENCODED_DATABASES {
        let mut dsu = connect_db("postgres", db);
        dsu.batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS pg_jwt;
             ALTER DATABASE {db} SET pg_jwt.jwks = {p};
             ALTER DATABASE {db} SET pg_jwt.audience = {a};
             DROP TABLE IF EXISTS owned_docs;
             CREATE TABLE owned_docs (owner text, body text);
             INSERT INTO owned_docs VALUES ('é', 'mine'), ('someone', 'theirs');
             ALTER TABLE owned_docs ENABLE ROW LEVEL SECURITY;
             CREATE POLICY by_owner ON owned_docs USING (owner = jwt_claim('sub'));
             GRANT SELECT ON owned_docs TO app;",
            p = lit(&public),
            a = lit(AUDIENCE)
        ))
        .unwrap();
        if let Some(other) = confusable {
            dsu.execute("INSERT INTO owned_docs VALUES ($1, 'another identity')", &[&other])
                .unwrap();
        }
        let mut c = connect_db("app", db);
        c.batch_execute(&format!("BEGIN; SET LOCAL pg_jwt.token = {}", lit(&plain)))
            .unwrap();
        let bodies: Vec<String> = c
            .query("SELECT body FROM owned_docs ORDER BY body", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            bodies,
            vec!["mine".to_owned()],
            "{db}: only the rows of the token's identity"
        );
        let one = |c: &mut Client, q: &str| -> Option<String> {
            c.query_one(q, &[]).unwrap_or_else(|e| panic!("{db}: {q}: {e}")).get(0)
        };
        assert_eq!(one(&mut c, "SELECT jwt_claim('sub')"), Some("é".into()), "{db}");
        assert_eq!(one(&mut c, "SELECT jwt_claims()->>'sub'"), Some("é".into()), "{db}");
        assert_eq!(
            one(&mut c, "SELECT jwt_claim('é')"),
            Some("ü".into()),
            "{db}: a non-ASCII name"
        );
        assert_eq!(
            one(&mut c, "SELECT jwt_claim('nested', 'ñ')"),
            Some("ö".into()),
            "{db}: path"
        );
        assert_eq!(
            one(&mut c, "SELECT jwt_claim_array('list')::text"),
            Some("{é,a}".into()),
            "{db}: array"
        );
        assert_eq!(
            one(&mut c, "SELECT jwt_claim('nested')"),
            Some(r#"{"ñ":"ö"}"#.into()),
            "{db}"
        );
        let verified: Option<String> = c
            .query_one(
                "SELECT jwt_verify(current_setting('pg_jwt.token'), $1::text::jsonb, $2)->>'é'",
                &[&public, &AUDIENCE],
            )
            .unwrap()
            .get(0);
        assert_eq!(verified, Some("ü".into()), "{db}: jwt_verify");
        c.batch_execute("COMMIT").unwrap();
        // Revoking the non-ASCII subject in this database refuses its token.
        dsu.batch_execute("SELECT jwt_revoke_subject('é', now() + interval '1 minute')")
            .unwrap();
        let revoked = c
            .batch_execute(&format!("BEGIN; SET LOCAL pg_jwt.token = {}", lit(&plain)))
            .and_then(|_| c.query_one("SELECT count(*) FROM owned_docs", &[]));
        assert_eq!(sqlstate(&revoked), "28000", "{db}: {}", message(&revoked));
        c.batch_execute("ROLLBACK").unwrap();
        dsu.batch_execute("SELECT jwt_unrevoke('sub', 'é')").unwrap();
        // A value the database encoding cannot represent: 22P05, without the value.
        c.batch_execute(&format!("BEGIN; SET LOCAL pg_jwt.token = {}", lit(&emoji)))
            .unwrap();
        let r = c.query_one("SELECT jwt_claim('emoji')", &[]);
        if confusable.is_some() {
            assert_eq!(sqlstate(&r), "22P05", "{db}: {}", message(&r));
            assert!(message(&r).starts_with("pg_jwt:"), "{}", message(&r));
            assert!(
                !message(&r).contains("😀") && !message(&r).contains("0xf0"),
                "{}",
                message(&r)
            );
            c.batch_execute("ROLLBACK").unwrap();
        } else {
            // SQL_ASCII stores bytes as given: the UTF-8 bytes come back unchanged.
            assert_eq!(r.unwrap().get::<_, Option<String>>(0), Some("😀".into()), "{db}");
            c.batch_execute("COMMIT").unwrap();
        }
    }
}

/// The backend's peak resident memory (VmHWM), in KiB.
fn peak_rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Runs `sql` in a fresh superuser session and returns how much its peak RSS grew, in MiB.
fn peak_growth_mib(setup_sql: &str, sql: &str) -> u64 {
    let mut su = superuser();
    su.batch_execute(setup_sql).unwrap();
    let pid: i32 = su.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let before = peak_rss_kb(pid);
    su.batch_execute(sql).unwrap();
    (peak_rss_kb(pid).saturating_sub(before)) / 1024
}

#[test]
fn s5_memory_per_call_site_stays_bounded() {
    setup();
    let mut su = superuser();
    let name77 = format!("claim_{}", "x".repeat(71));
    let name300 = format!("claim_{}", "y".repeat(294));
    let extra = format!(r#"{{"{name77}": "value-77", "{name300}": "value-300"}}"#);
    let t = token(&mut su, 1, 3600, &extra);
    let set = format!("SET pg_jwt.token = {}", lit(&t));
    // 1M rows with a long claim name (the finding: +151 MB), for each kind of accessor.
    for q in [
        format!(
            "SELECT count(jwt_claim({})) FROM generate_series(1, 1000000)",
            lit(&name77)
        ),
        format!(
            "SELECT count(jwt_claim({})) FROM generate_series(1, 1000000)",
            lit(&name300)
        ),
        format!(
            "SELECT count(jwt_claim_array({})) FROM generate_series(1, 1000000)",
            lit(&name77)
        ),
        "SELECT count(jwt_claims()) FROM generate_series(1, 300000)".to_owned(),
        // A name that changes every row: the slow path every time.
        "SELECT count(jwt_claim(CASE WHEN i % 2 = 0 THEN 'sub' ELSE 'iss' END)) FROM generate_series(1, 1000000) i"
            .to_owned(),
    ] {
        let grew = peak_growth_mib(&set, &q);
        assert!(grew < 24, "{q}: peak RSS grew by {grew} MiB");
    }
    // 8,000 token changes inside one PL/pgSQL call (the finding: +184 MB).
    let plpgsql = format!(
        "DO $$ DECLARE k jsonb := (SELECT key FROM test_keys); n bigint := 0; BEGIN
           FOR i IN 1..8000 LOOP
             PERFORM set_config('pg_jwt.token', jwt_sign(jsonb_build_object('sub', 'user-' || i,
                 'aud', {a}, 'iss', {is}, 'exp', extract(epoch FROM now())::bigint + 600,
                 'pad', repeat('p', 2000)), k), false);
             n := n + length(jwt_claims()::text) + length(jwt_claim('sub')) + length(jwt_claim('pad'));
           END LOOP;
         END $$",
        a = lit(AUDIENCE),
        is = lit(ISSUER)
    );
    let grew = peak_growth_mib("SELECT 1", &plpgsql);
    assert!(grew < 40, "8000 token changes: peak RSS grew by {grew} MiB");
}
