//! Regression tests for the review of the 0.2.0 surfaces (issue 20; README threat model rows
//! S6-S18, named after them). Each failed on 0.2.0:
//! - S6: a database owner's hostile schema name ran SQL as the superuser installing
//!   pg_jwt_auth;
//! - S7: `jwt_set_role()` switched into a role that inherits a superuser's rights;
//! - S8: a rolled-back unrevoke left the token accepted in that backend;
//! - S9: `jwt_revoke_token(jti, NULL)` silently did nothing;
//! - S10: a planted `jwt_revocations` was read as the extension's;
//! - S13: purge used the purging session's leeway;
//! - S16: a parallel plan under REPEATABLE READ missed a revocation a serial plan saw;
//! - S17: PREPARE TRANSACTION after a revocation raised XX000;
//! - S18: a schema renamed after install let planted objects stand in for the extension's.
//!
//! Elsewhere: S11 (`revocation::filter`'s #[pg_test]), S12 and S14 (tests/key_fetcher.rs k10,
//! k11), S15 (scripts/replica-test.sh), the token hygiene (scripts/hygiene-test.sh).

use pg_jwt_client_tests::*;
use postgres::Client;

/// `jwt_claim('sub')` for `token` in its own transaction of session `c`.
fn sub_in_tx(c: &mut Client, token: &str) -> Result<Option<String>, postgres::Error> {
    c.batch_execute("BEGIN")?;
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&token])?;
    let r = c.query_one("SELECT jwt_claim('sub')", &[]).map(|r| r.get(0));
    c.batch_execute(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    r
}

/// `jwt_claim('sub')` inside the current transaction of `c` (a statement of its own).
fn sub_here(c: &mut Client, token: &str) -> Result<Option<String>, postgres::Error> {
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&token])?;
    c.query_one("SELECT jwt_claim('sub')", &[]).map(|r| r.get(0))
}

/// A fresh database `name` with pg_jwt and the suite's key settings (dropped first if there).
fn fresh_database(su: &mut Client, name: &str) -> Client {
    su.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    su.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let jwks: String = su
        .query_one("SELECT current_setting('pg_jwt.jwks')", &[])
        .unwrap()
        .get(0);
    su.batch_execute(&format!(
        "ALTER DATABASE {name} SET pg_jwt.jwks = {}; ALTER DATABASE {name} SET pg_jwt.audience = {};
         ALTER DATABASE {name} SET pg_jwt.issuer = {};",
        lit(&jwks),
        lit(AUDIENCE),
        lit(ISSUER)
    ))
    .unwrap();
    connect_as("postgres", name)
}

#[test]
fn s6_a_hostile_schema_name_never_runs_as_the_superuser_installing_pg_jwt_auth() {
    setup();
    let mut su = superuser();
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_owner') THEN CREATE ROLE review_owner LOGIN; END IF;
         END $$; ALTER ROLE review_owner NOSUPERUSER",
    )
    .unwrap();
    for (i, name) in [
        "x';ALTER ROLE review_owner SUPERUSER;--",
        "x'');ALTER ROLE review_owner SUPERUSER;--",
        "a$$b';ALTER ROLE review_owner SUPERUSER;--$$",
        "back\\slash'; ALTER ROLE review_owner SUPERUSER; --",
        "q\"uote'||(SELECT 1)||'",
    ]
    .iter()
    .enumerate()
    {
        let db = format!("review_auth_{i}");
        su.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .unwrap();
        su.batch_execute(&format!("CREATE DATABASE {db} OWNER review_owner"))
            .unwrap();
        let mut dsu = connect_as("postgres", &db);
        dsu.batch_execute("CREATE EXTENSION pg_jwt").unwrap();
        // The database owner (not a superuser) owns schema public, where pg_jwt lives.
        let mut owner = connect_as("review_owner", &db);
        owner
            .batch_execute(&format!(
                "ALTER SCHEMA public RENAME TO \"{}\"; CREATE SCHEMA public",
                name.replace('"', "\"\"")
            ))
            .unwrap();
        // Later a superuser installs the companion extension.
        dsu.batch_execute("CREATE EXTENSION pg_jwt_auth").unwrap();
        let superuser_now: bool = su
            .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = 'review_owner'", &[])
            .unwrap()
            .get(0);
        assert!(
            !superuser_now,
            "schema name {name:?} made the database owner a superuser"
        );
        // And the functions work, pointing at pg_jwt's schema whatever its name.
        let n: i64 = dsu
            .query_one(
                "SELECT count(*) FROM (SELECT auth.uid(), auth.jwt(), auth.role(), auth.email()) s",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{name:?}");
        drop(dsu);
        drop(owner);
        su.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).unwrap();
    }
    // The injectable 0.1.0 install script is not installed: only 0.1.1 can be created.
    let r = su.batch_execute("CREATE EXTENSION pg_jwt_auth VERSION '0.1.0'");
    assert!(r.is_err(), "pg_jwt_auth 0.1.0 can still be installed");
}

fn eco_roles(su: &mut Client) {
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_editor') THEN CREATE ROLE review_editor; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_bypass_heir') THEN CREATE ROLE review_bypass_heir; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_middle') THEN CREATE ROLE review_middle; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_bypasser') THEN CREATE ROLE review_bypasser BYPASSRLS; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_owner_member') THEN CREATE ROLE review_owner_member; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_table_owner') THEN CREATE ROLE review_table_owner; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_creator') THEN CREATE ROLE review_creator CREATEROLE; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_files_heir') THEN CREATE ROLE review_files_heir; END IF;
         END $$;
         GRANT pg_write_server_files TO review_files_heir;
         GRANT postgres TO review_editor;
         GRANT review_bypasser TO review_middle; GRANT review_middle TO review_bypass_heir;
         GRANT review_table_owner TO review_owner_member;
         -- A login of its own, NOINHERIT: members of review_editor inherit postgres's
         -- privileges (owner of docs: no policy), which app must never have.
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_app') THEN CREATE ROLE review_app LOGIN NOINHERIT; END IF;
         END $$;
         GRANT review_editor, review_bypass_heir, review_owner_member, review_creator, review_files_heir TO review_app;
         GRANT SELECT ON docs TO review_app;",
    )
    .unwrap();
    su.batch_execute(
        "ALTER SYSTEM SET pg_jwt.allowed_roles = 'eco_reader, eco_bypass, eco_stranger, postgres, review_editor, review_bypass_heir, review_owner_member, review_creator, review_files_heir'",
    )
    .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
}

#[test]
fn s7_jwt_set_role_refuses_roles_that_inherit_superuser_or_bypassrls() {
    setup();
    let mut su = superuser();
    eco_roles(&mut su);
    let mut c = connect_as("review_app", "app");
    for (role, why) in [
        ("review_editor", "GRANT postgres TO review_editor"),
        ("review_bypass_heir", "a BYPASSRLS role two grants up"),
        ("review_creator", "CREATEROLE"),
        ("review_files_heir", "a member of pg_write_server_files"),
    ] {
        let t = token(&mut su, 1, 600, &format!(r#"{{"role": "{role}"}}"#));
        c.batch_execute("BEGIN").unwrap();
        c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t]).unwrap();
        let r = c.query_one("SELECT jwt_set_role()", &[]);
        assert_eq!(sqlstate(&r), "42501", "{why}: {}", message(&r));
        assert!(message(&r).contains("never switched to"), "{}", message(&r));
        c.batch_execute("ROLLBACK").unwrap();
        // Nothing leaked: the policy still applies to app.
        c.batch_execute("BEGIN").unwrap();
        c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t]).unwrap();
        let n: i64 = c.query_one("SELECT count(*) FROM docs", &[]).unwrap().get(0);
        assert_eq!(n, 1000, "{why}");
        c.batch_execute("ROLLBACK").unwrap();
    }
}

#[test]
fn s7_a_member_of_the_table_owner_bypasses_its_policies_unless_forced() {
    // PostgreSQL's rule, which the README states next to jwt_set_role: policies do not apply to
    // the table's owner, nor to roles with its privileges, unless FORCE ROW LEVEL SECURITY.
    setup();
    let mut su = superuser();
    eco_roles(&mut su);
    su.batch_execute(
        "DROP TABLE IF EXISTS review_owned;
         CREATE TABLE review_owned (tenant_id uuid);
         INSERT INTO review_owned SELECT ('00000000-0000-4000-8000-' || lpad((g % 6)::text, 12, '0'))::uuid FROM generate_series(1, 60) g;
         ALTER TABLE review_owned OWNER TO review_table_owner;
         ALTER TABLE review_owned ENABLE ROW LEVEL SECURITY;
         CREATE POLICY p ON review_owned USING (tenant_id = jwt_claim_uuid('tenant_id'));",
    )
    .unwrap();
    let t = token(&mut su, 1, 600, r#"{"role": "review_owner_member"}"#);
    let count_as_role = |c: &mut Client| -> i64 {
        c.batch_execute("BEGIN").unwrap();
        c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t]).unwrap();
        let role: String = c.query_one("SELECT jwt_set_role()", &[]).unwrap().get(0);
        assert_eq!(role, "review_owner_member");
        let n: i64 = c.query_one("SELECT count(*) FROM review_owned", &[]).unwrap().get(0);
        c.batch_execute("ROLLBACK").unwrap();
        n
    };
    let mut c = connect_as("review_app", "app");
    assert_eq!(count_as_role(&mut c), 60, "a member of the owner bypasses the policy");
    su.batch_execute("ALTER TABLE review_owned FORCE ROW LEVEL SECURITY")
        .unwrap();
    assert_eq!(
        count_as_role(&mut c),
        10,
        "FORCE ROW LEVEL SECURITY applies the policy to it"
    );
    su.batch_execute("DROP TABLE review_owned").unwrap();
}

#[test]
fn s8_a_rolled_back_unrevoke_leaves_the_token_revoked_in_that_backend() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 1, 600, r#"{"sub": "review-rb", "jti": "review-rb-1"}"#);
    su.batch_execute("SELECT jwt_revoke_token('review-rb-1', now() + interval '1 hour')")
        .unwrap();
    let mut c = superuser();
    assert_eq!(sqlstate(&sub_in_tx(&mut c, &t)), "28000");

    // 1. Unrevoke, verify inside (this transaction sees its own delete), roll back.
    c.batch_execute("BEGIN; SELECT jwt_unrevoke('jti', 'review-rb-1')")
        .unwrap();
    assert_eq!(
        sub_here(&mut c, &t).unwrap(),
        Some("review-rb".into()),
        "own uncommitted unrevoke"
    );
    c.batch_execute("ROLLBACK").unwrap();
    let r = sub_in_tx(&mut c, &t);
    assert_eq!(sqlstate(&r), "28000", "after ROLLBACK: {}", message(&r));

    // 2. The list made empty inside the rolled-back transaction.
    c.batch_execute("BEGIN; DELETE FROM jwt_revocations").unwrap();
    assert_eq!(
        sub_here(&mut c, &t).unwrap(),
        Some("review-rb".into()),
        "own uncommitted empty list"
    );
    c.batch_execute("ROLLBACK").unwrap();
    let r = sub_in_tx(&mut c, &t);
    assert_eq!(
        sqlstate(&r),
        "28000",
        "after ROLLBACK of an emptied list: {}",
        message(&r)
    );

    // 3. A savepoint rolled back.
    c.batch_execute("BEGIN; SAVEPOINT s; SELECT jwt_unrevoke('jti', 'review-rb-1')")
        .unwrap();
    assert_eq!(sub_here(&mut c, &t).unwrap(), Some("review-rb".into()));
    c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    let r = sub_here(&mut c, &t);
    assert_eq!(sqlstate(&r), "28000", "after ROLLBACK TO SAVEPOINT: {}", message(&r));
    c.batch_execute("ROLLBACK").unwrap();

    // 4. The same inside one PL/pgSQL block (its call sites live across statements).
    let r = c.batch_execute(&format!(
        "DO $$ DECLARE s text; BEGIN
               PERFORM set_config('pg_jwt.token', {}, true);
               BEGIN
                 PERFORM jwt_unrevoke('jti', 'review-rb-1');
                 s := jwt_claim('sub');
                 RAISE EXCEPTION 'undo';
               EXCEPTION WHEN raise_exception THEN NULL;
               END;
               s := jwt_claim('sub');
             END $$",
        lit(&t)
    ));
    assert_eq!(
        sqlstate(&r),
        "28000",
        "PL/pgSQL after an exception block: {}",
        message(&r)
    );
    // Another backend never saw the uncommitted change.
    assert_eq!(sqlstate(&sub_in_tx(&mut app(), &t)), "28000");
    su.batch_execute("SELECT jwt_unrevoke('jti', 'review-rb-1')").unwrap();
    assert_eq!(
        sub_in_tx(&mut c, &t).unwrap(),
        Some("review-rb".into()),
        "a committed unrevoke"
    );
}

#[test]
fn s9_null_expiry_means_until_removed_and_null_identities_are_refused() {
    setup();
    let mut su = superuser();
    let t = token(
        &mut su,
        1,
        600,
        r#"{"sub": "review-null", "jti": "review-null-1", "sid": "review-null-sid"}"#,
    );
    let mut c = app();
    su.batch_execute("SELECT jwt_revoke_token('review-null-1', NULL)")
        .unwrap();
    assert_eq!(sqlstate(&sub_in_tx(&mut c, &t)), "28000", "NULL expires revokes");
    let expires: Option<std::time::SystemTime> = su
        .query_one(
            "SELECT expires FROM jwt_revocations WHERE kind = 'jti' AND value = 'review-null-1'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(expires, None, "kept until removed");
    // A repeat with a date keeps "until removed"; a purge leaves it.
    su.batch_execute(
        "SELECT jwt_revoke_token('review-null-1', now() - interval '2 days'); SELECT jwt_purge_revocations()",
    )
    .unwrap();
    assert_eq!(sqlstate(&sub_in_tx(&mut c, &t)), "28000", "still revoked");
    su.batch_execute("SELECT jwt_unrevoke('jti', 'review-null-1')").unwrap();
    // The default is the same as NULL.
    su.batch_execute("SELECT jwt_revoke_session('review-null-sid')")
        .unwrap();
    assert_eq!(
        sqlstate(&sub_in_tx(&mut c, &t)),
        "28000",
        "session revoked without expiry"
    );
    su.batch_execute("SELECT jwt_unrevoke('sid', 'review-null-sid')")
        .unwrap();
    assert_eq!(sub_in_tx(&mut c, &t).unwrap(), Some("review-null".into()));
    for q in [
        "SELECT jwt_revoke_token(NULL, now())",
        "SELECT jwt_revoke_token(NULL)",
        "SELECT jwt_revoke_session(NULL, now())",
        "SELECT jwt_revoke_subject(NULL)",
        "SELECT jwt_revoke_subject('review-null', NULL)",
    ] {
        let r = su.batch_execute(q);
        assert_eq!(sqlstate(&r), "22004", "{q}: {}", message(&r));
        assert!(message(&r).starts_with("pg_jwt:"), "{q}: {}", message(&r));
    }
}

#[test]
fn s10_a_planted_jwt_revocations_is_never_read() {
    setup();
    let mut su = superuser();
    let mut db = fresh_database(&mut su, "review_planted");
    // A catalog still at 0.1.0 (which this library serves): no table of the extension's.
    // (scripts/upgrade-test.sh, run before the suite, installed the 0.1.0 script.)
    db.batch_execute(
        "CREATE EXTENSION pg_jwt VERSION '0.1.0';
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_planter') THEN CREATE ROLE review_planter LOGIN; END IF;
         END $$;
         GRANT CREATE ON SCHEMA public TO review_planter;",
    )
    .unwrap();
    let t = token(
        &mut su,
        1,
        600,
        r#"{"sub": "review-planted", "jti": "review-planted-1"}"#,
    );
    let mut planter = connect_as("review_planter", "review_planted");
    // Integer columns: read as text pointers, they crashed the backend.
    planter
        .batch_execute(
            "CREATE TABLE public.jwt_revocations (kind int, value int, PRIMARY KEY (kind, value));
             INSERT INTO public.jwt_revocations VALUES (1, 1), (2, 2);",
        )
        .unwrap();
    let mut c = connect_as("app", "review_planted");
    assert_eq!(
        sub_in_tx(&mut c, &t).unwrap(),
        Some("review-planted".into()),
        "int columns"
    );
    // Text columns: they revoked whomever the planter chose.
    planter
        .batch_execute(
            "DROP TABLE public.jwt_revocations;
             CREATE TABLE public.jwt_revocations (kind text, value text, issued_before timestamptz, PRIMARY KEY (kind, value));
             INSERT INTO public.jwt_revocations VALUES ('jti', 'review-planted-1', NULL), ('sub', 'review-planted', now() + interval '1 day');",
        )
        .unwrap();
    let mut c = connect_as("app", "review_planted");
    assert_eq!(
        sub_in_tx(&mut c, &t).unwrap(),
        Some("review-planted".into()),
        "text columns"
    );
    drop(c);
    drop(planter);
    // The extension's own table, altered out of shape (a superuser's doing): fail closed, 55000,
    // never "no table, so not revoked".
    for alter in [
        "ALTER TABLE jwt_revocations DROP CONSTRAINT jwt_revocations_pkey",
        "ALTER TABLE jwt_revocations ADD COLUMN extra int, DROP CONSTRAINT jwt_revocations_pkey, ADD PRIMARY KEY (kind, extra)",
    ] {
        let mut db = fresh_database(&mut su, "review_planted");
        db.batch_execute(&format!("CREATE EXTENSION pg_jwt; {alter}")).unwrap();
        let mut c = connect_as("app", "review_planted");
        let r = sub_in_tx(&mut c, &t);
        assert_eq!(sqlstate(&r), "55000", "{alter}: {}", message(&r));
        assert!(message(&r).starts_with("pg_jwt: jwt_revocations is not as"), "{}", message(&r));
        drop(c);
        drop(db);
    }
    let db = connect_as("postgres", "review_planted");
    drop(db);
    su.batch_execute("DROP DATABASE review_planted WITH (FORCE)").unwrap();
}

#[test]
fn s13_purge_keeps_rows_for_the_largest_leeway_any_session_may_use() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 1, 600, r#"{"sub": "review-purge", "jti": "review-purge-1"}"#);
    su.batch_execute(
        "SET pg_jwt.leeway = 0;
         SELECT jwt_revoke_token('review-purge-1', now() - interval '100 seconds');
         SELECT jwt_revoke_token('review-purge-old', now() - interval '3700 seconds');
         SELECT jwt_purge_revocations();
         RESET pg_jwt.leeway;",
    )
    .unwrap();
    let left: Vec<String> = su
        .query(
            "SELECT value FROM jwt_revocations WHERE value IN ('review-purge-1', 'review-purge-old') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left,
        vec!["review-purge-1".to_owned()],
        "purged with the session's leeway"
    );
    // A session allowed a large leeway still refuses the token.
    let mut c = superuser();
    c.batch_execute("SET pg_jwt.leeway = 3600").unwrap();
    assert_eq!(sqlstate(&sub_in_tx(&mut c, &t)), "28000");
    su.batch_execute("SELECT jwt_unrevoke('jti', 'review-purge-1')")
        .unwrap();
}

#[test]
fn s16_parallel_and_serial_plans_refuse_the_same_revocations_under_repeatable_read() {
    setup();
    let mut su = superuser();
    let t = token(&mut su, 2, 600, r#"{"sub": "review-rr", "jti": "review-rr-1"}"#);
    let q = "SELECT count(*) FROM docs WHERE body LIKE 'doc%'";
    for plan in ["parallel", "serial"] {
        let mut c = app();
        // The transaction's snapshot is taken before the revocation commits.
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
            .unwrap();
        su.batch_execute("SELECT jwt_revoke_token('review-rr-1', now() + interval '1 hour')")
            .unwrap();
        let settings = if plan == "parallel" {
            format!(
                "{}; SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
                 SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
                 SET LOCAL parallel_leader_participation = off",
                force_parallel(&mut c)
            )
        } else {
            "SET LOCAL max_parallel_workers_per_gather = 0".to_owned()
        };
        c.batch_execute(&settings).unwrap();
        c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t]).unwrap();
        let r = c.query_one(q, &[]);
        assert_eq!(sqlstate(&r), "28000", "{plan}: {}", message(&r));
        c.batch_execute("ROLLBACK").unwrap();
        su.batch_execute("SELECT jwt_unrevoke('jti', 'review-rr-1')").unwrap();
        // And the same plan accepts it once unrevoked (the check is not a blanket refusal).
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
        c.batch_execute(&settings).unwrap();
        c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t]).unwrap();
        let n: i64 = c.query_one(q, &[]).unwrap().get(0);
        assert_eq!(n, 1000, "{plan}");
        c.batch_execute("ROLLBACK").unwrap();
    }
}

#[test]
fn s17_prepare_transaction_after_a_revocation_is_feature_not_supported() {
    setup();
    let mut su = superuser();
    su.batch_execute("BEGIN; SELECT jwt_revoke_token('review-2pc', now() + interval '1 hour')")
        .unwrap();
    let r = su.batch_execute("PREPARE TRANSACTION 'review_2pc'");
    assert_eq!(sqlstate(&r), "0A000", "{}", message(&r));
    assert!(message(&r).starts_with("pg_jwt:"), "{}", message(&r));
    let _ = su.batch_execute("ROLLBACK");
    let n: i64 = su
        .query_one("SELECT count(*) FROM jwt_revocations WHERE value = 'review-2pc'", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[test]
fn s18_a_renamed_schema_with_planted_objects_reaches_nothing() {
    // A database owner (not a superuser) renames the schema holding pg_jwt (public, which it
    // owns) after install, creates a new public, and plants a jwt_revocations whose trigger
    // makes it a superuser, plus functions of pg_jwt's names returning forged claims. Bodies
    // that looked names up when they ran would write into the planted table as the calling
    // superuser, and auth.uid() would call the forged function.
    setup();
    let mut su = superuser();
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'review_owner2') THEN CREATE ROLE review_owner2 LOGIN; END IF;
         END $$; ALTER ROLE review_owner2 NOSUPERUSER",
    )
    .unwrap();
    let mut db = fresh_database(&mut su, "review_renamed");
    su.batch_execute("ALTER DATABASE review_renamed OWNER TO review_owner2")
        .unwrap();
    db.batch_execute("CREATE EXTENSION pg_jwt; CREATE EXTENSION pg_jwt_auth; GRANT USAGE ON SCHEMA public TO PUBLIC")
        .unwrap();
    let mut owner = connect_as("review_owner2", "review_renamed");
    owner
        .batch_execute(
            "ALTER SCHEMA public RENAME TO moved;
             CREATE SCHEMA public;
             GRANT USAGE ON SCHEMA public TO PUBLIC;
             CREATE TABLE public.jwt_revocations (kind text, value text, issued_before timestamptz,
                 expires timestamptz, revoked_at timestamptz DEFAULT now(), revoked_by name DEFAULT CURRENT_USER,
                 PRIMARY KEY (kind, value));
             CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS
               $f$ BEGIN ALTER ROLE review_owner2 SUPERUSER; RETURN NULL; END $f$;
             CREATE TRIGGER t BEFORE INSERT OR UPDATE OR DELETE ON public.jwt_revocations
               FOR EACH STATEMENT EXECUTE FUNCTION public.escalate();
             CREATE FUNCTION public.jwt_claim_uuid(text) RETURNS uuid LANGUAGE sql
               AS $f$ SELECT '00000000-0000-0000-0000-00000000beef'::uuid $f$;
             CREATE FUNCTION public.jwt_claim(text) RETURNS text LANGUAGE sql AS $f$ SELECT 'forged' $f$;
             CREATE FUNCTION public.jwt_claims() RETURNS jsonb LANGUAGE sql AS $f$ SELECT '{\"sub\": \"forged\"}'::jsonb $f$;
             CREATE FUNCTION public.pg_jwt_not_null(text, text) RETURNS text LANGUAGE sql AS $f$ SELECT $1 $f$;",
        )
        .unwrap();
    // A superuser revokes, unrevokes and purges, with the default search_path ("$user", public).
    db.batch_execute(
        "SELECT moved.jwt_revoke_token('review-renamed-1', now() + interval '1 hour');
         SELECT moved.jwt_revoke_session('review-renamed-sid');
         SELECT moved.jwt_revoke_subject('review-renamed-sub');
         SELECT moved.jwt_unrevoke('sid', 'review-renamed-sid');
         SELECT moved.jwt_purge_revocations();",
    )
    .unwrap();
    let superuser_now: bool = su
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = 'review_owner2'", &[])
        .unwrap()
        .get(0);
    assert!(
        !superuser_now,
        "a planted trigger ran as the superuser calling pg_jwt's functions"
    );
    let real: i64 = db
        .query_one(
            "SELECT count(*) FROM moved.jwt_revocations WHERE value LIKE 'review-renamed-%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(real, 2, "the revocations went elsewhere than the extension's table");
    let planted: i64 = db
        .query_one("SELECT count(*) FROM public.jwt_revocations", &[])
        .unwrap()
        .get(0);
    assert_eq!(planted, 0);
    // A NULL still raises 22004 (the planted pg_jwt_not_null(text, text) is not the one called).
    let r = db.batch_execute("SELECT moved.jwt_revoke_token(NULL)");
    assert_eq!(sqlstate(&r), "22004", "{}", message(&r));
    // auth.*() still call pg_jwt's accessors.
    let sub = "6f1c3a52-2b7e-4c39-9d0e-58c1f3a4b2d7";
    let t = token(
        &mut su,
        1,
        600,
        &format!(r#"{{"sub": "{sub}", "role": "authenticated"}}"#),
    );
    let mut c = connect_as("app", "review_renamed");
    c.batch_execute("BEGIN").unwrap();
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t]).unwrap();
    let row = c
        .query_one("SELECT auth.uid()::text, auth.role(), auth.jwt()->>'sub'", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), sub);
    assert_eq!(row.get::<_, String>(1), "authenticated");
    assert_eq!(row.get::<_, String>(2), sub);
    c.batch_execute("ROLLBACK").unwrap();
    drop(c);
    drop(owner);
    drop(db);
    su.batch_execute("DROP DATABASE review_renamed WITH (FORCE)").unwrap();
}
