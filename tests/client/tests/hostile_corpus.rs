//! The hostile corpus at SQL level: every token and key of the shared vector files
//! (`../shared/vectors`: Wycheproof JWS and JWK, RFC 7520), read in place, fed in one session
//! through `jwt_verify`, `pg_jwt.token` with the accessors, `jwt_decode_unverified`,
//! `jwt_public_jwks` and `jwt_sign`. Every call must succeed or end in a documented SQLSTATE;
//! a vector marked invalid must never verify; and the backend must be the same, alive process
//! at the end (no crash took it down). Skipped (with a message) if the vectors are absent.

use pg_jwt_client_tests::*;
use postgres::Client;
use serde_json::Value;
use std::path::PathBuf;

/// The SQLSTATEs the README documents for these functions.
const DOCUMENTED: &[&str] = &["ok", "28000", "22023", "22P02", "22003", "22P05"];

fn vectors() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    dir.is_dir().then_some(dir)
}

/// Runs `sql` with text parameters; the outcome as "ok" or the SQLSTATE. A failed statement
/// leaves no transaction open (autocommit).
fn outcome(c: &mut Client, sql: &str, params: &[&str]) -> String {
    let p: Vec<&(dyn postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|s| s as &(dyn postgres::types::ToSql + Sync))
        .collect();
    let r = c.query(sql, &p);
    sqlstate(&r)
}

#[test]
fn h1_every_vector_through_every_function_ends_in_a_documented_sqlstate() {
    setup();
    let Some(dir) = vectors() else {
        eprintln!("../shared/vectors not found: skipped");
        return;
    };
    let mut c = superuser();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    c.batch_execute("SET pg_jwt.audience = ''; SET pg_jwt.issuer = ''; SET pg_jwt.required_claims = ''")
        .unwrap();
    let mut calls = 0usize;
    let mut check = |what: &str, got: String| {
        calls += 1;
        assert!(
            DOCUMENTED.contains(&got.as_str()),
            "{what}: undocumented SQLSTATE {got}"
        );
    };
    // Wycheproof JWS: each group's key, each test's token.
    let jws: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("wycheproof/json_web_signature_test.json")).unwrap())
            .unwrap();
    let mut invalid_accepted = Vec::new();
    for group in jws["testGroups"].as_array().unwrap() {
        let private = group["private"].to_string();
        let public = format!(r#"{{"keys":[{private}]}}"#);
        check(
            "jwt_public_jwks",
            outcome(&mut c, "SELECT jwt_public_jwks($1::text::jsonb)", &[&public]),
        );
        check(
            "jwt_sign",
            outcome(
                &mut c,
                "SELECT jwt_sign('{\"sub\":\"x\"}'::jsonb, $1::text::jsonb)",
                &[&private],
            ),
        );
        // The session path with this group's key set (the private JWK's public half, or the
        // secret for oct keys).
        let verify_set: String = c
            .query_one(
                "SELECT CASE WHEN $1::text::jsonb ->> 'kty' = 'oct' THEN jsonb_build_object('keys', jsonb_build_array($1::text::jsonb))::text
                             ELSE jwt_public_jwks($1::text::jsonb)::text END",
                &[&private],
            )
            .map(|r| r.get(0))
            .unwrap_or_default();
        let set_ok = !verify_set.is_empty()
            && c.batch_execute(&format!("SET pg_jwt.jwks = {}", lit(&verify_set)))
                .is_ok();
        for test in group["tests"].as_array().unwrap() {
            let token = match &test["jws"] {
                Value::String(s) => s.clone(),
                other => other.to_string(), // JSON serialization: must be refused
            };
            let valid = test["result"] == "valid";
            let v = outcome(
                &mut c,
                "SELECT jwt_verify($1, $2::text::jsonb, NULL, NULL, 30)",
                &[&token, &verify_set],
            );
            check("jwt_verify", v.clone());
            if !valid && v == "ok" {
                invalid_accepted.push(test["tcId"].clone());
            }
            check(
                "jwt_decode_unverified",
                outcome(&mut c, "SELECT jwt_decode_unverified($1)", &[&token]),
            );
            if set_ok {
                let got = outcome(
                    &mut c,
                    "SELECT set_config('pg_jwt.token', $1, false), jwt_claims(), jwt_claim('sub'), jwt_claim_array('sub')",
                    &[&token],
                );
                check("pg_jwt.token and the accessors", got.clone());
                // An empty pg_jwt.token means "no token" (no claims), not a verified one.
                if !valid && got == "ok" && !token.is_empty() {
                    invalid_accepted.push(test["tcId"].clone());
                }
            }
        }
        c.batch_execute("RESET pg_jwt.token; RESET pg_jwt.jwks").unwrap();
    }
    assert!(
        invalid_accepted.is_empty(),
        "invalid vectors verified: {invalid_accepted:?}"
    );
    // Wycheproof JWK and RFC 7520 keys: imported (or refused) by every key function.
    let mut keys: Vec<String> = Vec::new();
    let jwk: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("wycheproof/json_web_key_test.json")).unwrap()).unwrap();
    for group in jwk["testGroups"].as_array().unwrap() {
        keys.push(group["private"].to_string());
        for test in group["tests"].as_array().unwrap() {
            if let Some(s) = test["jws"].as_str() {
                check(
                    "jwt_decode_unverified",
                    outcome(&mut c, "SELECT jwt_decode_unverified($1)", &[&s]),
                );
            }
        }
    }
    for entry in std::fs::read_dir(dir.join("rfc7520")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            if v.get("kty").is_some() || v.get("keys").is_some() {
                keys.push(v.to_string());
            }
        }
    }
    for k in &keys {
        check(
            "jwt_public_jwks",
            outcome(&mut c, "SELECT jwt_public_jwks($1::text::jsonb)", &[k]),
        );
        check(
            "jwt_sign",
            outcome(
                &mut c,
                "SELECT jwt_sign('{\"sub\":\"x\"}'::jsonb, $1::text::jsonb)",
                &[k],
            ),
        );
        check(
            "jwt_verify with this key set",
            outcome(&mut c, "SELECT jwt_verify('a.b.c', $1::text::jsonb)", &[k]),
        );
    }
    // Still the same backend, alive.
    let after: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    assert_eq!(pid, after, "the backend changed: it crashed");
    assert!(calls > 1000, "too few calls ({calls}): the corpus was not read");
    eprintln!("hostile corpus: {calls} calls, every one ok or a documented SQLSTATE, backend {pid} alive");
}
