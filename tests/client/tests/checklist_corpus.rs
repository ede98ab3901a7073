//! The checklist rows at SQL level: every token and key set that the core's checklist tests
//! (core/tests/checklist.rs, one test per row A1–E21 of ../shared/security-checklist.md)
//! verify or import, recorded with the row and the core's outcome (core/tests/common, module
//! `corpus`), replayed in one session through `jwt_verify`, `pg_jwt.jwks` with
//! `pg_jwt.token` and `jwt_claims()`, `jwt_decode_unverified`, `jwt_public_jwks` and
//! `jwt_sign`. scripts/client-tests.sh records the corpus just before the suite and passes
//! its path in PGJWT_CHECKLIST_CORPUS.
//!
//! For each entry:
//! - a token the core accepted verifies in SQL, and one it refused is refused with 28000 (an
//!   empty `pg_jwt.token` means no token: no claims); entries whose outcome would change
//!   within two minutes (expiry boundaries) only need a documented SQLSTATE;
//! - a key set the core refused is refused with 22023 by `SET pg_jwt.jwks` and by
//!   `jwt_verify`, and one it accepted is accepted by both;
//! - no error message or detail contains a segment of the token (checklist F10);
//! - every other call ends in success or a documented SQLSTATE, and the backend is the same
//!   process at the end (F9).
//!
//! `jwt_verify` takes the key set as jsonb, and `jsonb_in` keeps only the last of duplicate
//! members: for key-set text with duplicate members (which the core's parser refuses) the jsonb
//! value is another key set, so only a documented SQLSTATE is required there. `pg_jwt.jwks`
//! is text and is parsed by the strict parser, so it must agree with the core exactly.

use pg_jwt_client_tests::*;
use postgres::Client;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

const DOCUMENTED: &[&str] = &["ok", "28000", "22023", "22P02", "22003", "22P05"];

fn outcome(c: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> (String, String) {
    let r = c.query(sql, params);
    (sqlstate(&r), message(&r))
}

/// Whether `text` is JSON without duplicate members at any depth (the strict parser's view).
fn no_duplicate_members(text: &str) -> bool {
    // serde_json keeps the last duplicate: count members in the text against the value's.
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    fn members(v: &Value) -> usize {
        match v {
            Value::Object(m) => m.len() + m.values().map(members).sum::<usize>(),
            Value::Array(a) => a.iter().map(members).sum(),
            _ => 0,
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let mut count = 0usize;
    let counted = count_members(&mut de, &mut count).is_ok();
    counted && count == members(&v)
}

/// Counts object members as written in the text (duplicates included).
fn count_members<'de, D: serde::Deserializer<'de>>(de: D, count: &mut usize) -> Result<(), D::Error> {
    struct Counter<'a>(&'a mut usize);
    impl<'de> serde::de::DeserializeSeed<'de> for Counter<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> serde::de::Visitor<'de> for Counter<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
            while a.next_element_seed(Counter(&mut *self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
            while m.next_key::<String>()?.is_some() {
                *self.0 += 1;
                m.next_value_seed(Counter(&mut *self.0))?;
            }
            Ok(())
        }
    }
    serde::de::DeserializeSeed::deserialize(Counter(count), de)
}

#[test]
fn k1_every_checklist_row_replayed_at_sql_level() {
    setup();
    let path = std::env::var("PGJWT_CHECKLIST_CORPUS")
        .expect("PGJWT_CHECKLIST_CORPUS is not set: run the suite through scripts/client-tests.sh");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut entries: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    // The same key set text is recorded by many tests: once is enough.
    let mut seen = HashSet::new();
    entries.retain(|e| seen.insert(e.to_string()));

    let mut c = superuser();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut calls = 0usize;
    let mut fail = |row: &str, what: String| failures.push(format!("{row}: {what}"));

    for e in &entries {
        let row = e["row"].as_str().unwrap_or("?").to_owned();
        *rows.entry(row.clone()).or_default() += 1;
        let jwks = e["jwks"].as_str().unwrap_or_default().to_owned();
        let strict_json = no_duplicate_members(&jwks);
        match e["what"].as_str() {
            Some("key_set") => {
                let refused = e["expect"] == "config";
                // The setting: parsed by the strict parser, like the core.
                let r = c.batch_execute(&format!("SET pg_jwt.jwks = {}", lit(&jwks)));
                calls += 1;
                let got = sqlstate(&r);
                let want = if refused { "22023" } else { "ok" };
                if got != want {
                    fail(
                        &row,
                        format!("SET pg_jwt.jwks: {got}, expected {want}: {}", message(&r)),
                    );
                }
                let _ = c.batch_execute("RESET pg_jwt.jwks");
                // jwt_verify: the key set is parsed before the token ('a.b.c' is malformed).
                let (got, msg) = outcome(&mut c, "SELECT jwt_verify('a.b.c', $1::text::jsonb)", &[&jwks]);
                calls += 1;
                let want = if refused { "22023" } else { "28000" };
                if strict_json && got != want && !(refused && (got == "22P02" || got == "22P05")) {
                    fail(
                        &row,
                        format!("jwt_verify with the key set: {got}, expected {want}: {msg}"),
                    );
                }
                if !DOCUMENTED.contains(&got.as_str()) {
                    fail(&row, format!("jwt_verify with the key set: undocumented {got}"));
                }
                for sql in [
                    "SELECT jwt_public_jwks($1::text::jsonb)",
                    "SELECT jwt_sign('{\"sub\":\"x\"}'::jsonb, $1::text::jsonb)",
                ] {
                    let (got, _) = outcome(&mut c, sql, &[&jwks]);
                    calls += 1;
                    if !DOCUMENTED.contains(&got.as_str()) {
                        fail(&row, format!("{sql}: undocumented {got}"));
                    }
                }
            }
            Some("token") => {
                let token = e["token"].as_str().unwrap_or_default().to_owned();
                if token.contains('\0') {
                    continue; // not a text value
                }
                let rejected = e["rejected"].as_bool().unwrap_or(true);
                let sensitive = e["clock_sensitive"].as_bool().unwrap_or(false);
                let audience = e["audience"].as_str().map(str::to_owned);
                let issuer = e["issuer"].as_str().map(str::to_owned);
                let leeway = e["leeway"].as_i64().unwrap_or(30) as i32;
                let required: Vec<String> = e["required"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                let segments: Vec<&str> = token.split('.').filter(|s| s.len() >= 16).collect();
                let check = |what: &str, got: &str, msg: &str, fail: &mut dyn FnMut(&str, String)| {
                    if !DOCUMENTED.contains(&got) {
                        fail(&row, format!("{what}: undocumented {got}: {msg}"));
                    }
                    if let Some(s) = segments.iter().find(|s| msg.contains(*s)) {
                        fail(&row, format!("{what}: the error shows token bytes ({} chars)", s.len()));
                    }
                    if !sensitive {
                        let want = if rejected { "28000" } else { "ok" };
                        if got != want {
                            fail(&row, format!("{what}: {got}, expected {want} ({}): {msg}", e["expect"]));
                        }
                    }
                };
                // jwt_verify: exp required, as in the core's default.
                if required == ["exp"] {
                    let (got, msg) = outcome(
                        &mut c,
                        "SELECT jwt_verify($1, $2::text::jsonb, $3, $4, $5)",
                        &[&token, &jwks, &audience, &issuer, &leeway],
                    );
                    calls += 1;
                    if strict_json {
                        check("jwt_verify", &got, &msg, &mut fail);
                    } else if !DOCUMENTED.contains(&got.as_str()) {
                        fail(&row, format!("jwt_verify: undocumented {got}"));
                    }
                }
                // The session path, with the same settings.
                let settings = format!(
                    "SET pg_jwt.jwks = {}; SET pg_jwt.audience = {}; SET pg_jwt.issuer = {};
                     SET pg_jwt.leeway = {leeway}; SET pg_jwt.required_claims = {}",
                    lit(&jwks),
                    lit(audience.as_deref().unwrap_or("")),
                    lit(issuer.as_deref().unwrap_or("")),
                    lit(&required.join(","))
                );
                match c.batch_execute(&settings) {
                    Ok(()) => {
                        let r = c.query_one(
                            "SELECT set_config('pg_jwt.token', $1, false), jwt_claims() IS NOT NULL",
                            &[&token],
                        );
                        calls += 1;
                        let got = match &r {
                            // An empty pg_jwt.token is "no token": no claims, not verified.
                            Ok(row) if !row.get::<_, bool>(1) => "28000".to_owned(),
                            other => sqlstate(other),
                        };
                        check("pg_jwt.token and jwt_claims()", &got, &message(&r), &mut fail);
                    }
                    Err(err) => fail(&row, format!("settings refused: {err}")),
                }
                let _ = c.batch_execute(
                    "RESET pg_jwt.token; RESET pg_jwt.jwks; RESET pg_jwt.audience; RESET pg_jwt.issuer;
                     RESET pg_jwt.leeway; RESET pg_jwt.required_claims",
                );
                let (got, _) = outcome(&mut c, "SELECT jwt_decode_unverified($1)", &[&token]);
                calls += 1;
                if !DOCUMENTED.contains(&got.as_str()) {
                    fail(&row, format!("jwt_decode_unverified: undocumented {got}"));
                }
            }
            _ => fail(&row, format!("unknown corpus entry {e}")),
        }
    }
    let after: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    assert_eq!(pid, after, "the backend changed: it crashed");
    let all: Vec<String> = "ABCDE"
        .chars()
        .zip([14, 17, 12, 20, 21])
        .flat_map(|(l, n)| (1..=n).map(move |i| format!("{l}{i}")))
        .collect();
    let missing: Vec<&String> = all.iter().filter(|r| !rows.contains_key(*r)).collect();
    assert!(
        missing.is_empty(),
        "checklist rows with no entry in the corpus: {missing:?}"
    );
    assert!(
        failures.is_empty(),
        "{} failed checks:\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "checklist corpus: {} entries over {} rows, {calls} SQL calls, backend {pid} alive",
        entries.len(),
        rows.len()
    );
}
