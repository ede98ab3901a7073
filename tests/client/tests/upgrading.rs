//! Upgrading a database set up the 0.1.0 way (issue 26, item 5): 0.1.0 ran without
//! `shared_preload_libraries` and took HMAC key sets per database; since 0.2.0 pg_jwt refuses
//! both. `ALTER EXTENSION pg_jwt UPDATE` without preloading must refuse (55000, with the hint)
//! and leave the database at 0.1.0, whole, instead of half working. (The cluster that does not
//! preload pg_jwt; scripts/upgrade-test.sh, run before the suite, installed the 0.1.0 script.)

use pg_jwt_client_tests::*;

const HMAC_JWKS: &str =
    r#"{"keys":[{"kty":"oct","kid":"up","alg":"HS256","k":"dXBncmFkZS1zZWNyZXQtdXBncmFkZS1zZWNyZXQtMTIzNDU2Nzg"}]}"#;

#[test]
fn u1_update_without_preload_is_refused_and_leaves_0_1_0_whole() {
    let mut su = try_connect_nopreload("postgres", "postgres", "").unwrap();
    su.batch_execute("DROP DATABASE IF EXISTS upgrade_010 WITH (FORCE)")
        .unwrap();
    su.batch_execute("CREATE DATABASE upgrade_010").unwrap();
    try_connect_nopreload("postgres", "upgrade_010", "")
        .unwrap()
        .batch_execute("CREATE EXTENSION pg_jwt VERSION '0.1.0'")
        .unwrap();
    // Configured the 0.1.0 way, from a session where the library is not loaded.
    try_connect_nopreload("postgres", "upgrade_010", "")
        .unwrap()
        .batch_execute(&format!(
            "ALTER DATABASE upgrade_010 SET pg_jwt.jwks = {}",
            lit(HMAC_JWKS)
        ))
        .unwrap();
    let mut db = try_connect_nopreload("postgres", "upgrade_010", "").unwrap();
    let r = db.batch_execute("ALTER EXTENSION pg_jwt UPDATE");
    assert_eq!(sqlstate(&r), "55000", "{}", message(&r));
    let Err(e) = r else { unreachable!() };
    let d = e.as_db_error().unwrap();
    assert!(d.message().starts_with("pg_jwt:"), "{}", d.message());
    assert!(
        d.hint().unwrap_or("").contains("shared_preload_libraries"),
        "{:?}",
        d.hint()
    );
    // Nothing of the update happened: still 0.1.0, no table of 0.2.0, its functions as before.
    let mut db = try_connect_nopreload("postgres", "upgrade_010", "").unwrap();
    let version: String = db
        .query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_jwt'", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, "0.1.0");
    let tables: i64 = db
        .query_one("SELECT count(*) FROM pg_class WHERE relname = 'jwt_revocations'", &[])
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
    let verified: String = db
        .query_one(
            &format!(
                "SELECT jwt_verify(jwt_sign('{{\"sub\": \"old\", \"exp\": 9999999999}}'::jsonb, {k}::jsonb), {j}::jsonb)->>'sub'",
                k = lit(r#"{"kty":"oct","kid":"up","alg":"HS256","k":"dXBncmFkZS1zZWNyZXQtdXBncmFkZS1zZWNyZXQtMTIzNDU2Nzg"}"#),
                j = lit(HMAC_JWKS)
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(verified, "old", "a 0.1.0 function keeps working");
    drop(db);
    su.batch_execute("DROP DATABASE upgrade_010 WITH (FORCE)").unwrap();
}
