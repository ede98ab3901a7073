//! Regression tests for the review of the 0.3.0 surfaces (docs/security.md rows S19-S44, named
//! after them). Each failed before its fix:
//! - S20: an accessor called per element of an array cast returned a freed copy (another
//!   claim's value, or a crash);
//! - S21: a token whose session claim was a number escaped `jwt_revoke_session`;
//! - S22: `ALTER DATABASE/ROLE ... SET pg_jwt.token` gave every session a default token, kept
//!   where every role can read it;
//! - S24: `jwt_set_role()` switched into a role with the privileges of the database's owner;
//! - S39: an open cursor kept a token's claims past its expiry after a caught error;
//! - S44: sizes taken from SQL arguments reached the Rust heap unbounded.
//!
//! Elsewhere: S19 (scripts/signin-test.sh: fast-path calls of a signed-in session), S23
//! (tests/providers.rs pv10: a fetched key set with a secret key), S33 to S36 (providers.rs
//! pv12), S37 and S38 (scripts/replica-test.sh), S40 (revocation.rs r12).

use pg_jwt_client_tests::*;

#[test]
fn s20_an_accessor_called_per_element_of_an_array_cast_keeps_every_value() {
    setup();
    let mut su = superuser();
    // Only a superuser can make this cast (binary coercion to text, then jwt_claim as the cast
    // function); the application role runs the query.
    su.batch_execute(
        "DROP TYPE IF EXISTS s20_text CASCADE;
         CREATE TYPE s20_text;
         CREATE FUNCTION s20_in(cstring) RETURNS s20_text IMMUTABLE STRICT LANGUAGE internal AS 'textin';
         CREATE FUNCTION s20_out(s20_text) RETURNS cstring IMMUTABLE STRICT LANGUAGE internal AS 'textout';
         CREATE TYPE s20_text (INPUT = s20_in, OUTPUT = s20_out, LIKE = text);
         CREATE CAST (s20_text AS text) WITHOUT FUNCTION AS IMPLICIT;
         CREATE CAST (s20_text AS varchar) WITH FUNCTION jwt_claim(text);",
    )
    .unwrap();
    let t = token(&mut su, 7, 600, r#"{"jti": "jti-BBBBBBBBBBBBBBBBB"}"#);
    let mut c = app();
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])
        .unwrap();
    let rows: Vec<String> = tx
        .query(
            "SELECT (a::s20_text[]::varchar[])::text FROM (VALUES (1, ARRAY['sub','sub','jti','tenant_id']),
               (2, ARRAY['jti','jti','sub','aa','bb','aa','aa','sub','jti'])) v(i, a) ORDER BY i",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.commit().unwrap();
    let tenant = tenant(7);
    assert_eq!(
        rows,
        vec![
            format!("{{user-7,user-7,jti-BBBBBBBBBBBBBBBBB,{tenant}}}"),
            "{jti-BBBBBBBBBBBBBBBBB,jti-BBBBBBBBBBBBBBBBB,user-7,NULL,NULL,NULL,NULL,user-7,jti-BBBBBBBBBBBBBBBBB}"
                .to_owned(),
        ]
    );
    su.batch_execute("DROP TYPE s20_text CASCADE").unwrap();
}

/// The same class, as the application role alone: a cast function of its own type sets a token
/// per element and reads a claim with a constant name. (PostgreSQL 15 calls the SQL function
/// per element rather than inlining it, and copies its results: this keeps the outcome checked
/// whatever the call site keeps.)
#[test]
fn s20_a_cast_function_changing_the_token_per_element_keeps_every_value() {
    setup();
    let mut su = superuser();
    su.batch_execute("DROP SCHEMA IF EXISTS s20 CASCADE; CREATE SCHEMA s20 AUTHORIZATION app")
        .unwrap();
    let tokens: Vec<String> = (1..=3).map(|i| token(&mut su, i, 600, "")).collect();
    let mut c = app();
    c.batch_execute(
        "CREATE TYPE s20.tk AS (tok text);
         CREATE FUNCTION s20.tk_text(x s20.tk) RETURNS text LANGUAGE sql VOLATILE AS
           $$ SELECT CASE WHEN (x).tok IS NULL OR set_config('pg_jwt.token', (x).tok, true) IS NOT NULL
                          THEN jwt_claim('sub') END $$;
         CREATE CAST (s20.tk AS text) WITH FUNCTION s20.tk_text(s20.tk);",
    )
    .unwrap();
    for _ in 0..20 {
        let mut tx = c.transaction().unwrap();
        let got: String = tx
            .query_one(
                "SELECT (ARRAY[ROW($1)::s20.tk, ROW(NULL)::s20.tk, ROW($2)::s20.tk, ROW($3)::s20.tk,
                               ROW(NULL)::s20.tk, ROW($1)::s20.tk, ROW($2)::s20.tk, ROW($3)::s20.tk]::text[])::text",
                &[&tokens[0], &tokens[1], &tokens[2]],
            )
            .unwrap()
            .get(0);
        tx.commit().unwrap();
        assert_eq!(got, "{user-1,user-1,user-2,user-3,user-3,user-1,user-2,user-3}");
    }
    su.batch_execute("DROP SCHEMA s20 CASCADE").unwrap();
}

#[test]
fn s21_a_session_claim_that_is_not_a_string_is_refused() {
    setup();
    let mut su = superuser();
    let mut c = app();
    let claim = |c: &mut postgres::Client, t: &str| -> Result<Option<String>, postgres::Error> {
        let mut tx = c.transaction()?;
        tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])?;
        let v = tx.query_one("SELECT jwt_claim('sub')", &[])?.get(0);
        tx.commit()?;
        Ok(v)
    };
    for sid in ["7021", "null", "[\"7021\"]", "{\"id\": \"7021\"}"] {
        let t = token(&mut su, 1, 600, &format!(r#"{{"sid": {sid}}}"#));
        let r = claim(&mut c, &t);
        assert_eq!(sqlstate(&r), "28000", "sid {sid}: {}", message(&r));
        assert!(message(&r).contains("sid"), "{}", message(&r));
    }
    // A string session id: accepted, and its revocation refuses it.
    let t = token(&mut su, 1, 600, r#"{"sid": "s21-7021"}"#);
    assert_eq!(claim(&mut c, &t).unwrap().as_deref(), Some("user-1"));
    su.batch_execute("SELECT jwt_revoke_session('s21-7021', now() + interval '1 hour')")
        .unwrap();
    let r = claim(&mut c, &t);
    assert_eq!(sqlstate(&r), "28000", "{}", message(&r));
    assert!(message(&r).contains("revoked"), "{}", message(&r));
    su.batch_execute("SELECT jwt_unrevoke('sid', 's21-7021')").unwrap();
}

/// The application's session in `db` (one of the suite's databases in another encoding), with
/// pg_jwt and the test key set there.
fn encoded_database(su: &mut postgres::Client, db: &str) -> postgres::Client {
    let public = public_jwks(su);
    connect_as("postgres", db)
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS pg_jwt;
             ALTER DATABASE {db} SET pg_jwt.jwks = {p};
             ALTER DATABASE {db} SET pg_jwt.audience = {a};",
            p = lit(&public),
            a = lit(AUDIENCE)
        ))
        .unwrap();
    connect_as("app", db)
}

/// The same class in a database whose encoding cannot represent a token's `sub`: no revocation
/// could match it there, so the token is refused (22P05), without the value.
#[test]
fn s21_a_subject_the_database_encoding_cannot_represent_is_refused() {
    setup();
    let mut su = superuser();
    let mut c = encoded_database(&mut su, "enc_latin1");
    // (the JSON escape, the character): é is in LATIN1, 寿 is not.
    for (escaped, sub) in [(r"\u00e9", "\u{e9}"), (r"\u5bff", "\u{5bff}")] {
        let t = token(&mut su, 1, 600, &format!(r#"{{"sub": "{escaped}", "jti": "s21-jti"}}"#));
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])
            .unwrap();
        let r = tx
            .query_one("SELECT jwt_claim('jti')", &[])
            .map(|r| r.get::<_, Option<String>>(0));
        if sub == "\u{e9}" {
            assert_eq!(r.unwrap().as_deref(), Some("s21-jti"));
        } else {
            assert_eq!(sqlstate(&r), "22P05", "{}", message(&r));
            assert!(message(&r).starts_with("pg_jwt:"), "{}", message(&r));
            assert!(!message(&r).contains(sub), "{}", message(&r));
        }
        drop(tx);
    }
}

#[test]
fn s22_a_token_is_never_a_stored_default() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 1, 600, "");
    let signature = t.rsplit('.').next().unwrap().to_owned();
    let refused = |r: Result<(), postgres::Error>, what: &str| {
        assert_eq!(sqlstate(&r), "22023", "{what}: {}", message(&r));
        assert!(message(&r).starts_with("pg_jwt:"), "{}", message(&r));
        assert!(!message(&r).contains(&signature), "{what}: the message shows the token");
    };
    refused(
        su.batch_execute(&format!("ALTER DATABASE app SET pg_jwt.token = {}", lit(&t))),
        "ALTER DATABASE as the superuser",
    );
    refused(
        su.batch_execute(&format!("ALTER ROLE app SET pg_jwt.token = {}", lit(&t))),
        "ALTER ROLE as the superuser",
    );
    refused(
        su.batch_execute(&format!(
            "ALTER ROLE app IN DATABASE app SET pg_jwt.token = {}",
            lit(&t)
        )),
        "ALTER ROLE IN DATABASE",
    );
    refused(
        su.batch_execute(&format!(
            "CREATE FUNCTION s22_f() RETURNS text LANGUAGE sql SET pg_jwt.token = {} RETURN jwt_claim('sub')",
            lit(&t)
        )),
        "a function's SET clause",
    );
    // The role itself may set its own defaults: not this one.
    let mut c = app();
    refused(
        c.batch_execute(&format!("ALTER ROLE app SET pg_jwt.token = {}", lit(&t))),
        "ALTER ROLE as the role itself",
    );
    // Nothing was stored; an empty value (no token) may be.
    let stored: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_db_role_setting, unnest(setconfig) s WHERE s LIKE 'pg_jwt.token=%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    su.batch_execute("ALTER ROLE app SET pg_jwt.token = ''; ALTER ROLE app RESET pg_jwt.token")
        .unwrap();
    // Per transaction, as always.
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])
        .unwrap();
    let sub: Option<String> = tx.query_one("SELECT jwt_claim('sub')", &[]).unwrap().get(0);
    assert_eq!(sub.as_deref(), Some("user-1"));
    // A claim name longer than the largest token: NULL, never copied.
    let long: Option<String> = tx
        .query_one("SELECT jwt_claim(repeat('a', 1100000))", &[])
        .unwrap()
        .get(0);
    assert_eq!(long, None);
    tx.commit().unwrap();
    let r = c.query_one("SELECT jwt_generate_jwk('ES256', repeat('k', 70000))", &[]);
    assert_eq!(sqlstate(&r), "22023", "{r:?}");
}

#[test]
fn s24_jwt_set_role_refuses_a_role_with_the_database_owner_s_privileges() {
    setup();
    let mut su = superuser();
    let public = public_jwks(&mut su);
    su.batch_execute("DROP DATABASE IF EXISTS s24 WITH (FORCE)").unwrap();
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 's24_dbo') THEN CREATE ROLE s24_dbo; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 's24_heir') THEN CREATE ROLE s24_heir; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 's24_reader') THEN CREATE ROLE s24_reader; END IF;
         END $$;
         GRANT s24_dbo TO s24_heir;
         GRANT s24_dbo, s24_heir, s24_reader TO app;",
    )
    .unwrap();
    su.batch_execute("CREATE DATABASE s24 OWNER s24_dbo").unwrap();
    su.batch_execute(&format!(
        "ALTER DATABASE s24 SET pg_jwt.jwks = {};
         ALTER DATABASE s24 SET pg_jwt.audience = {};
         ALTER DATABASE s24 SET pg_jwt.issuer = {};
         ALTER DATABASE s24 SET pg_jwt.allowed_roles = 's24_dbo, s24_heir, s24_reader';",
        lit(&public),
        lit(AUDIENCE),
        lit(ISSUER)
    ))
    .unwrap();
    connect_as("postgres", "s24")
        .batch_execute("CREATE EXTENSION pg_jwt")
        .unwrap();
    let mut c = connect_as("app", "s24");
    let set_role = |c: &mut postgres::Client, t: &str| -> Result<String, postgres::Error> {
        let mut tx = c.transaction()?;
        tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])?;
        let role: String = tx.query_one("SELECT jwt_set_role()", &[])?.get(0);
        tx.rollback()?;
        Ok(role)
    };
    for role in ["s24_dbo", "s24_heir"] {
        let t = token(&mut su, 1, 600, &format!(r#"{{"role": "{role}"}}"#));
        let r = set_role(&mut c, &t);
        assert_eq!(sqlstate(&r), "42501", "{role}: {}", message(&r));
        assert!(message(&r).contains("database's owner"), "{}", message(&r));
    }
    let t = token(&mut su, 1, 600, r#"{"role": "s24_reader"}"#);
    assert_eq!(set_role(&mut c, &t).unwrap(), "s24_reader");
    drop(c);
    su.batch_execute("DROP DATABASE s24 WITH (FORCE)").unwrap();
    su.batch_execute(
        "REVOKE s24_dbo, s24_heir, s24_reader FROM app;
         DROP ROLE s24_heir; DROP ROLE s24_reader; DROP ROLE s24_dbo;",
    )
    .unwrap();
}

/// S4, completed: EUC_JP writes U+00A6 (broken bar) and U+FFE4 (fullwidth broken bar) as the
/// same bytes, so two subjects read as one identity and two member names of `jwt_claims()` as
/// one member. A value whose conversion does not convert back to it is refused (22P05): at most
/// one of the two subjects reads, as itself.
#[test]
fn s4_a_conversion_that_merges_two_characters_is_refused() {
    setup();
    let mut su = superuser();
    let mut c = encoded_database(&mut su, "enc_euc_jp");
    let mut read = Vec::new();
    for (escaped, sub) in [(r"user\u00a6x", "user\u{a6}x"), (r"user\uffe4x", "user\u{ffe4}x")] {
        let t = token(&mut su, 1, 600, &format!(r#"{{"sub": "{escaped}"}}"#));
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])
            .unwrap();
        let r = tx
            .query_one("SELECT jwt_claim('sub')", &[])
            .map(|r| r.get::<_, Option<String>>(0));
        match r {
            Ok(v) => {
                assert_eq!(v.as_deref(), Some(sub), "a subject reads as itself");
                read.push(sub);
            }
            Err(_) => {
                assert_eq!(sqlstate(&r), "22P05", "{}", message(&r));
                assert!(message(&r).starts_with("pg_jwt:"), "{}", message(&r));
            }
        }
        drop(tx);
    }
    assert!(read.len() <= 1, "both subjects read: {read:?}");
    // Two member names that would become one.
    let t = token(
        &mut su,
        1,
        600,
        r#"{"sub": "a", "n": {"k\u00a6": "A", "k\uffe4": "B"}}"#,
    );
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])
        .unwrap();
    let r = tx.query_one("SELECT jwt_claims()::text", &[]);
    assert_eq!(sqlstate(&r), "22P05", "{}", message(&r));
}

/// S39: an error recovered from at the top level (`SAVEPOINT s; SELECT 1/0; ROLLBACK TO s`)
/// disables every timeout, the expiry timer included; an open cursor's call site, armed before,
/// kept returning the token's claims after its expiry for the rest of the transaction.
#[test]
fn s39_a_cursor_kept_across_a_caught_error_stops_at_the_token_s_expiry() {
    setup();
    let mut su = superuser();
    let leeway: i64 = su
        .query_one(
            "SELECT setting::bigint FROM pg_settings WHERE name = 'pg_jwt.leeway'",
            &[],
        )
        .unwrap()
        .get(0);
    // Valid (leeway included) for 4 more seconds.
    let t = token(&mut su, 1, 4 - leeway, "{}");
    let mut c = app();
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])
        .unwrap();
    tx.batch_execute("DECLARE s39 CURSOR FOR SELECT jwt_claim('sub'), g FROM generate_series(1, 100) g")
        .unwrap();
    let first = tx.query("FETCH 1 FROM s39", &[]).unwrap();
    assert_eq!(first[0].get::<_, Option<String>>(0).as_deref(), Some("user-1"));
    tx.batch_execute("SAVEPOINT s").unwrap();
    assert!(tx.batch_execute("SELECT 1/0").is_err());
    tx.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(5));
    let r = tx.query("FETCH 2 FROM s39", &[]);
    assert_eq!(sqlstate(&r), "28000", "{r:?}");
    assert!(message(&r).contains("expired"), "{}", message(&r));
}

/// S44: sizes taken from SQL arguments are bounded before the Rust heap holds them (a Rust
/// allocation that fails aborts the backend, which restarts the cluster): `jwt_sign`'s claims
/// (nested empty objects cost the parser far more than their text), a VARIADIC path of any
/// length, a key set whose jsonb text outgrows its binary form.
#[test]
fn s44_sizes_taken_from_sql_arguments_are_bounded() {
    setup();
    let mut c = app();
    let r = c.query_one(
        "SELECT jwt_sign((SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 800000)), jwt_generate_jwk('HS256'))",
        &[],
    );
    assert_eq!(sqlstate(&r), "22023", "{r:?}");
    assert!(message(&r).contains("the claim set is larger than"), "{}", message(&r));
    // Nested objects below the cap: signed.
    let ok: String = c
        .query_one(
            "SELECT jwt_sign(jsonb_build_object('a', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 1000))), jwt_generate_jwk('HS256'))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ok.split('.').count(), 3);
    // A path deeper than any claim set: NULL, with a token or without.
    let deep = "SELECT jwt_claim(VARIADIC array_fill('a'::text, ARRAY[1000000]))";
    let none: Option<String> = c.query_one(deep, &[]).unwrap().get(0);
    assert_eq!(none, None);
    let mut su = superuser();
    let t = token(&mut su, 1, 600, "{}");
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])
        .unwrap();
    let none: Option<String> = tx.query_one(deep, &[]).unwrap().get(0);
    assert_eq!(none, None);
    let sub: Option<String> = tx
        .query_one("SELECT jwt_claim(VARIADIC ARRAY['sub'])", &[])
        .unwrap()
        .get(0);
    assert_eq!(sub.as_deref(), Some("user-1"));
    tx.commit().unwrap();
    // A key set whose numbers print far longer than they are stored.
    let r = c.query_one(
        "SELECT jwt_public_jwks(jsonb_build_object('keys', jsonb_build_array(jsonb_build_object('n', 1e100000::numeric, 'm', 1e100000::numeric, 'o', 1e100000::numeric))))",
        &[],
    );
    assert_eq!(sqlstate(&r), "22023", "{r:?}");
    assert!(message(&r).contains("larger than"), "{}", message(&r));
}
