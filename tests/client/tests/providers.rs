//! Several identity providers (`pg_jwt.providers`) against real HTTPS servers on 127.0.0.1, each
//! with its own CA (tests/client/src/jwks_server.rs), on the key-fetcher cluster of
//! scripts/client-tests.sh. Each test sets every setting it relies on and removes its list at
//! the end (the key-fetcher tests share the cluster).

use pg_jwt_client_tests::jwks_server::{JwksServer, Reply};
use pg_jwt_client_tests::*;
use postgres::Client;
use std::time::Duration;

fn configure(su: &mut Client, settings: &[(&str, &str)]) {
    for (name, value) in settings {
        // A setting is one line of postgresql.auto.conf.
        let value = value.replace('\n', " ");
        su.batch_execute(&format!("ALTER SYSTEM SET {name} = {}", lit(&value)))
            .unwrap();
    }
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(400));
}

/// One CA file trusting every server given (the key fetcher has one `pg_jwt.jwks_ca_file`).
fn ca_bundle(servers: &[&JwksServer]) -> String {
    let mut pem = String::new();
    for s in servers {
        pem.push_str(&std::fs::read_to_string(s.ca_file()).unwrap());
    }
    let path = std::path::Path::new(&servers[0].ca_file()).with_file_name("bundle.pem");
    std::fs::write(&path, pem).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&path, perms).unwrap();
    path.display().to_string()
}

/// No implicit provider, fast refetches, and `providers` as the list.
fn start(ca_file: &str, providers: &str) -> Client {
    let mut su = connect_fetch("postgres");
    configure(
        &mut su,
        &[
            ("pg_jwt.jwks", ""),
            ("pg_jwt.jwks_uri", ""),
            ("pg_jwt.issuer", ""),
            ("pg_jwt.audience", ""),
            ("pg_jwt.jwks_ca_file", ca_file),
            ("pg_jwt.jwks_min_refresh", "1"),
            ("pg_jwt.jwks_max_refresh", "3600"),
            ("pg_jwt.jwks_fetch_wait", "3000"),
            ("pg_jwt.providers", providers),
        ],
    );
    connect_fetch("postgres")
}

/// Removes the list (and waits for the reload).
fn finish(su: &mut Client) {
    su.batch_execute("ALTER SYSTEM RESET pg_jwt.providers").unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

/// A new ES256 key: (private JWK, public JWK).
fn key(su: &mut Client, kid: Option<&str>) -> (String, String) {
    let private: String = su
        .query_one("SELECT jwt_generate_jwk('ES256', $1)::text", &[&kid])
        .unwrap()
        .get(0);
    let public: String = su
        .query_one(
            "SELECT (jwt_public_jwks($1::text::jsonb)->'keys'->0)::text",
            &[&private],
        )
        .unwrap()
        .get(0);
    (private, public)
}

fn jwks(public: &[&str]) -> String {
    format!("{{\"keys\":[{}]}}", public.join(","))
}

/// A token signed by `private`: `sub`, `exp` in 10 minutes, `iat` now, and `claims`.
fn sign(su: &mut Client, private: &str, sub: &str, claims: &str) -> String {
    su.query_one(
        "SELECT jwt_sign(jsonb_build_object('sub', $1::text, 'iat', extract(epoch FROM now())::bigint,
                 'exp', extract(epoch FROM now())::bigint + 600) || $2::text::jsonb, $3::text::jsonb)",
        &[&sub, &claims, &private],
    )
    .unwrap()
    .get(0)
}

/// (sub, provider) for `token` in session `c`, inside a transaction (the pooled way).
fn who(c: &mut Client, token: &str) -> Result<(Option<String>, Option<String>), postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&token])?;
    let row = tx.query_one("SELECT jwt_claim('sub'), jwt_provider()", &[])?;
    let out = (row.get(0), row.get(1));
    tx.commit()?;
    Ok(out)
}

fn refused(r: &Result<(Option<String>, Option<String>), postgres::Error>, words: &str) {
    assert_eq!(sqlstate(r), "28000", "{r:?}");
    assert!(message(r).contains(words), "{} (wanted {words})", message(r));
}

/// `who` in a new session, whose token the shared cache's record vouches for (another backend
/// verified it): the provider's rules are checked on the record's members, not on a tree.
fn who_from_record(token: &str) -> (Option<String>, Option<String>) {
    let mut next = connect_fetch("app");
    let out = who(&mut next, token).unwrap();
    let hits: i64 = next
        .query_one("SELECT (jwt_cache_stats()->>'shared_record_hits')::bigint", &[])
        .unwrap()
        .get(0);
    assert_eq!(hits, 1, "verified from the record");
    out
}

fn refresh(su: &mut Client, provider: Option<&str>) -> serde_json::Value {
    let text: String = su
        .query_one("SELECT jwt_jwks_refresh($1)::text", &[&provider])
        .unwrap()
        .get(0);
    serde_json::from_str(&text).unwrap()
}

#[test]
fn pv1_two_fetched_providers_and_one_pinned_chosen_by_iss() {
    let (a_server, b_server) = (JwksServer::start(), JwksServer::start());
    let mut su = connect_fetch("postgres");
    let (a_private, a_public) = key(&mut su, Some("a1"));
    let (b_private, b_public) = key(&mut su, Some("b1"));
    let (c_private, c_public) = key(&mut su, Some("c1"));
    let (nokid_private, _) = key(&mut su, None);
    a_server.set_body("/jwks", &jwks(&[&a_public]));
    // B by OpenID Connect discovery from its issuer.
    let b_issuer = b_server.base();
    b_server.set_body("/keys", &jwks(&[&b_public]));
    b_server.set_body(
        "/.well-known/openid-configuration",
        &format!(r#"{{"issuer":"{b_issuer}","jwks_uri":"{}"}}"#, b_server.url("/keys")),
    );
    let list = format!(
        r#"[{{"name":"acme","issuer":"https://acme.test","jwks_uri":"{}","audience":["api://orders","other"]}},
            {{"name":"beta","issuer":"{b_issuer}","jwks_uri":"discover"}},
            {{"name":"workers","issuer":"https://internal.test","jwks":{c}}}]"#,
        a_server.url("/jwks"),
        c = jwks(&[&c_public])
    );
    let mut su = start(&ca_bundle(&[&a_server, &b_server]), &list);
    let all = refresh(&mut su, None);
    assert_eq!(all["providers"]["acme"]["kids"], serde_json::json!(["a1"]), "{all}");
    assert_eq!(all["providers"]["beta"]["kids"], serde_json::json!(["b1"]), "{all}");
    assert_eq!(all["providers"]["beta"]["source"], b_server.url("/keys"), "{all}");
    let one = refresh(&mut su, Some("acme"));
    assert_eq!(one["in_force"], true, "{one}");
    let rows: Vec<(String, Vec<String>, bool)> = su
        .query(
            "SELECT provider, kids, in_force FROM jwt_jwks_status() ORDER BY provider",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("acme".to_owned(), vec!["a1".to_owned()], true),
            ("beta".to_owned(), vec!["b1".to_owned()], true)
        ]
    );
    let bad = su.query_one("SELECT jwt_jwks_refresh('nobody')", &[]);
    assert_eq!(sqlstate(&bad), "22023", "{}", message(&bad));
    // The list is hidden: the application role sees no listed provider's row.
    let mut app = connect_fetch("app");
    assert_eq!(app.query("SELECT * FROM jwt_jwks_status()", &[]).unwrap().len(), 0);

    let a = sign(
        &mut su,
        &a_private,
        "alice",
        r#"{"iss":"https://acme.test","aud":"api://orders"}"#,
    );
    assert_eq!(who(&mut app, &a).unwrap(), (Some("alice".into()), Some("acme".into())));
    let b = sign(&mut su, &b_private, "bob", &format!(r#"{{"iss":"{b_issuer}"}}"#));
    assert_eq!(who(&mut app, &b).unwrap(), (Some("bob".into()), Some("beta".into())));
    let c = sign(&mut su, &c_private, "worker-1", r#"{"iss":"https://internal.test"}"#);
    assert_eq!(
        who(&mut app, &c).unwrap(),
        (Some("worker-1".into()), Some("workers".into()))
    );
    // The same subject from two providers stays apart: each token says who verified it.
    let b_alice = sign(&mut su, &b_private, "alice", &format!(r#"{{"iss":"{b_issuer}"}}"#));
    assert_eq!(
        who(&mut app, &b_alice).unwrap(),
        (Some("alice".into()), Some("beta".into()))
    );

    // A's iss with a kid only B has: looked up in A's keys only.
    let crossed = sign(
        &mut su,
        &b_private,
        "mallory",
        r#"{"iss":"https://acme.test","aud":"api://orders"}"#,
    );
    refused(&who(&mut app, &crossed), "no matching key");
    // A's iss signed by another key without a kid: A's one key is used, and does not match.
    let nokid = sign(
        &mut su,
        &nokid_private,
        "mallory",
        r#"{"iss":"https://acme.test","aud":"api://orders"}"#,
    );
    refused(&who(&mut app, &nokid), "invalid signature");
    // The pinned provider's iss with A's key.
    let crossed = sign(&mut su, &a_private, "mallory", r#"{"iss":"https://internal.test"}"#);
    refused(&who(&mut app, &crossed), "no matching key");
    // An iss no provider has: refused, the DETAIL names the issuer.
    let stranger = sign(&mut su, &a_private, "mallory", r#"{"iss":"https://evil.test"}"#);
    let r = who(&mut app, &stranger);
    refused(&r, "issuer mismatch");
    assert!(message(&r).contains("https://evil.test"), "{}", message(&r));
    // No iss at all, and no implicit provider to take it.
    let anonymous = sign(&mut su, &a_private, "mallory", "{}");
    refused(&who(&mut app, &anonymous), "issuer mismatch");
    // Audiences: one of the list; none; absent.
    let other_aud = sign(
        &mut su,
        &a_private,
        "alice",
        r#"{"iss":"https://acme.test","aud":["x","other"]}"#,
    );
    assert_eq!(who(&mut app, &other_aud).unwrap().1, Some("acme".into()));
    let wrong_aud = sign(&mut su, &a_private, "alice", r#"{"iss":"https://acme.test","aud":"x"}"#);
    refused(&who(&mut app, &wrong_aud), "audience mismatch");
    let no_aud = sign(&mut su, &a_private, "alice", r#"{"iss":"https://acme.test"}"#);
    refused(&who(&mut app, &no_aud), "missing required claim");
    // A provider without audience refuses a token that carries one.
    let b_aud = sign(
        &mut su,
        &b_private,
        "bob",
        &format!(r#"{{"iss":"{b_issuer}","aud":"x"}}"#),
    );
    refused(&who(&mut app, &b_aud), "audience mismatch");
    // Refusals are counted as the listed providers'.
    let refused_count: i64 = su
        .query_one(
            "SELECT coalesce(sum(count), 0)::bigint FROM jwt_stats() WHERE provider = 'listed' AND outcome = 'refused'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(refused_count >= 5, "{refused_count}");
    finish(&mut su);
}

#[test]
fn pv2_issuer_template_with_tenant_constraint() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private, public) = key(&mut su, Some("e1"));
    server.set_body("/common/keys", &jwks(&[&public]));
    let list = format!(
        r#"[{{"name":"entra","issuer":"https://login.test/{{tid}}/v2.0","jwks_uri":"{}",
              "audience":"api://orders","claims":{{"tid":["72f988bf","0b6c2a7e"]}}}}]"#,
        server.url("/common/keys")
    );
    let mut su = start(&ca_bundle(&[&server]), &list);
    refresh(&mut su, Some("entra"));
    let mut app = connect_fetch("app");
    let t = |su: &mut Client, iss: &str, tid: &str| {
        sign(
            su,
            &private,
            "erin",
            &format!(r#"{{"iss":"{iss}","tid":"{tid}","aud":"api://orders"}}"#),
        )
    };
    let good = t(&mut su, "https://login.test/72f988bf/v2.0", "72f988bf");
    assert_eq!(
        who(&mut app, &good).unwrap(),
        (Some("erin".into()), Some("entra".into()))
    );
    assert_eq!(who_from_record(&good), (Some("erin".into()), Some("entra".into())));
    // A tenant the constraint does not list.
    let other = t(&mut su, "https://login.test/99999999/v2.0", "99999999");
    refused(&who(&mut app, &other), "claim constraint not met");
    // The iss names one tenant and the tid claim another.
    let mixed = t(&mut su, "https://login.test/72f988bf/v2.0", "0b6c2a7e");
    refused(&who(&mut app, &mixed), "issuer mismatch");
    // The placeholder is one whole segment.
    let deeper = t(&mut su, "https://login.test/72f988bf/x/v2.0", "72f988bf");
    refused(&who(&mut app, &deeper), "issuer mismatch");
    finish(&mut su);
}

#[test]
fn pv3_max_lifetime_algorithms_claims_and_required_claims() {
    let mut su = connect_fetch("postgres");
    let (es_private, es_public) = key(&mut su, Some("es"));
    let es384_private: String = su
        .query_one("SELECT jwt_generate_jwk('ES384', 'es384')::text", &[])
        .unwrap()
        .get(0);
    let es384_public: String = su
        .query_one(
            "SELECT (jwt_public_jwks($1::text::jsonb)->'keys'->0)::text",
            &[&es384_private],
        )
        .unwrap()
        .get(0);
    let list = format!(
        r#"[{{"name":"workers","issuer":"https://internal.test","jwks":{{"keys":[{es_public},{es384_public}]}},
              "audience":"orders-db","algorithms":["ES256"],"max_lifetime":900,"leeway":5,
              "required_claims":["exp","iat","sub"],"claims":{{"kind":"machine"}}}}]"#
    );
    let mut su = start("", &list);
    let mut app = connect_fetch("app");
    let base = r#""iss":"https://internal.test","aud":"orders-db","kind":"machine""#;
    let good = sign(&mut su, &es_private, "w1", &format!("{{{base}}}"));
    assert_eq!(
        who(&mut app, &good).unwrap(),
        (Some("w1".into()), Some("workers".into()))
    );
    assert_eq!(who_from_record(&good), (Some("w1".into()), Some("workers".into())));
    // exp - iat = 600 (sign's default) is within 900; 1000 is not.
    let long: String = su
        .query_one(
            &format!(
                "SELECT jwt_sign(jsonb_build_object('sub','w1','iat',extract(epoch FROM now())::bigint,
                   'exp', extract(epoch FROM now())::bigint + 1000) || {}::jsonb, $1::text::jsonb)",
                lit(&format!("{{{base}}}"))
            ),
            &[&es_private],
        )
        .unwrap()
        .get(0);
    refused(&who(&mut app, &long), "claim constraint not met");
    // ES384 is not in the provider's algorithms, though its key set holds an ES384 key.
    let es384 = sign(&mut su, &es384_private, "w1", &format!("{{{base}}}"));
    refused(&who(&mut app, &es384), "algorithm not allowed");
    // The claims constraint.
    let human = sign(
        &mut su,
        &es_private,
        "w1",
        r#"{"iss":"https://internal.test","aud":"orders-db","kind":"human"}"#,
    );
    refused(&who(&mut app, &human), "claim constraint not met");
    // required_claims replaces pg_jwt.required_claims for this provider.
    let no_iat: String = su
        .query_one(
            &format!(
                "SELECT jwt_sign(jsonb_build_object('sub','w1','exp', extract(epoch FROM now())::bigint + 60) || {}::jsonb, $1::text::jsonb)",
                lit(&format!("{{{base}}}"))
            ),
            &[&es_private],
        )
        .unwrap()
        .get(0);
    refused(&who(&mut app, &no_iat), "missing required claim");
    finish(&mut su);
}

#[test]
fn pv4_reload_removes_a_provider_in_every_pooled_session() {
    let mut su = connect_fetch("postgres");
    let (a_private, a_public) = key(&mut su, Some("a"));
    let (b_private, b_public) = key(&mut su, Some("b"));
    let both = format!(
        r#"[{{"name":"a","issuer":"https://a.test","jwks":{{"keys":[{a_public}]}}}},
            {{"name":"b","issuer":"https://b.test","jwks":{{"keys":[{b_public}]}}}}]"#
    );
    let mut su = start("", &both);
    let a = sign(&mut su, &a_private, "ann", r#"{"iss":"https://a.test"}"#);
    let b = sign(&mut su, &b_private, "ben", r#"{"iss":"https://b.test"}"#);
    // Two pooled sessions that verified A's token (cached in each).
    let mut pool: Vec<Client> = (0..2).map(|_| connect_fetch("app")).collect();
    for c in &mut pool {
        assert_eq!(who(c, &a).unwrap().1, Some("a".into()));
        assert_eq!(who(c, &b).unwrap().1, Some("b".into()));
    }
    let only_b = format!(r#"[{{"name":"b","issuer":"https://b.test","jwks":{{"keys":[{b_public}]}}}}]"#);
    configure(&mut su, &[("pg_jwt.providers", &only_b)]);
    for c in &mut pool {
        refused(&who(c, &a), "issuer mismatch");
        assert_eq!(who(c, &b).unwrap().1, Some("b".into()));
    }
    finish(&mut su);
}

#[test]
fn pv5_invalid_or_ambiguous_lists_are_refused_and_the_old_one_stays() {
    let mut su = connect_fetch("postgres");
    let (private, public) = key(&mut su, Some("k"));
    let good = format!(r#"[{{"name":"a","issuer":"https://a.test","jwks":{{"keys":[{public}]}}}}]"#);
    let mut su = start("", &good);
    let token = sign(&mut su, &private, "ann", r#"{"iss":"https://a.test"}"#);
    for bad in [
        "not json".to_owned(),
        r#"{"name":"a"}"#.to_owned(),
        format!(r#"[{{"name":"a","issuer":"https://a.test","jwks":{{"keys":[{public}]}}}},{{"name":"b","issuer":"https://a.test","jwks":{{"keys":[{public}]}}}}]"#),
        r#"[{"name":"a","issuer":"https://h/{tid}/v2","jwks_uri":"https://k.test"},{"name":"b","issuer":"https://h/common/{x}","jwks_uri":"https://k.test"}]"#.to_owned(),
        r#"[{"name":"a","issuer":"https://a.test","jwks_uri":"http://plain.test"}]"#.to_owned(),
        r#"[{"name":"default","issuer":"https://a.test","jwks_uri":"https://k.test"}]"#.to_owned(),
        r#"[{"name":"a","issuer":"https://a.test","jwks_uri":"https://k.test","audiense":"x"}]"#.to_owned(),
    ] {
        let r = su.batch_execute(&format!("ALTER SYSTEM SET pg_jwt.providers = {}", lit(&bad.replace('\n', " "))));
        assert_eq!(sqlstate(&r), "22023", "{bad}: {}", message(&r));
        // Never echoes the value (pinned keys may be secrets).
        assert!(!message(&r).contains("\"kty\""), "{}", message(&r));
    }
    // The setting is hidden from other roles.
    let mut app = connect_fetch("app");
    let shown = app.query_one("SHOW pg_jwt.providers", &[]);
    assert_eq!(sqlstate(&shown), "42501", "{}", message(&shown));
    let r = app.batch_execute("SET pg_jwt.providers = '[]'");
    assert_ne!(sqlstate(&r), "ok");
    // An ambiguous list written to the configuration file directly: the reload refuses it, the
    // log says why, and the list in force stays.
    let auto = format!("{}/postgresql.auto.conf", std::env::var("PGJWT_FETCH_DATA").unwrap());
    let saved = std::fs::read_to_string(&auto).unwrap();
    let ambiguous = format!(
        r#"[{{"name":"a","issuer":"https://a.test","jwks":{{"keys":[{public}]}}}},{{"name":"b","issuer":"https://a.test","jwks":{{"keys":[{public}]}}}}]"#
    );
    let kept: String = saved
        .lines()
        .filter(|l| !l.starts_with("pg_jwt.providers"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&auto, format!("{kept}pg_jwt.providers = {}\n", lit(&ambiguous))).unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let mut fresh = connect_fetch("app");
    assert_eq!(who(&mut fresh, &token).unwrap().1, Some("a".into()));
    std::fs::write(&auto, saved).unwrap();
    finish(&mut su);
}

#[test]
fn pv6_one_provider_down_the_others_keep_working() {
    let (a_server, b_server) = (JwksServer::start(), JwksServer::start());
    let mut su = connect_fetch("postgres");
    let (a_private, a_public) = key(&mut su, Some("a1"));
    let (b_private, b_public) = key(&mut su, Some("b1"));
    a_server.set_body("/jwks", &jwks(&[&a_public]));
    b_server.set_body("/jwks", &jwks(&[&b_public]));
    let list = format!(
        r#"[{{"name":"a","issuer":"https://a.test","jwks_uri":"{}"}},{{"name":"b","issuer":"https://b.test","jwks_uri":"{}"}}]"#,
        a_server.url("/jwks"),
        b_server.url("/jwks")
    );
    let mut su = start(&ca_bundle(&[&a_server, &b_server]), &list);
    refresh(&mut su, None);
    let mut app = connect_fetch("app");
    let b = sign(&mut su, &b_private, "ben", r#"{"iss":"https://b.test"}"#);
    assert_eq!(who(&mut app, &b).unwrap().1, Some("b".into()));
    // B goes down (errors) and then hangs; B's last good set stays in force.
    b_server.set("/jwks", Reply::Status(500));
    let status = refresh(&mut su, Some("b"));
    assert_eq!(status["in_force"], true, "{status}");
    assert!(
        status["last_error"].as_str().is_some_and(|e| e.contains("500")),
        "{status}"
    );
    b_server.set("/jwks", Reply::Slow);
    // A token of B with an unknown kid asks for B's refetch, which hangs: A is unaffected.
    let (stranger, _) = key(&mut su, Some("b2"));
    let b_new = sign(&mut su, &stranger, "ben", r#"{"iss":"https://b.test"}"#);
    refused(&who(&mut app, &b_new), "no matching key");
    let a = sign(&mut su, &a_private, "ann", r#"{"iss":"https://a.test"}"#);
    let mut other = connect_fetch("app");
    assert_eq!(who(&mut other, &a).unwrap().1, Some("a".into()));
    // A rotates while B hangs: A's new key is fetched and used (once pg_jwt.jwks_min_refresh
    // has passed since A's last fetch: an unknown kid asks for at most one fetch per interval).
    let (a2_private, a2_public) = key(&mut su, Some("a2"));
    a_server.set_body("/jwks", &jwks(&[&a_public, &a2_public]));
    std::thread::sleep(Duration::from_millis(1100));
    let a2 = sign(&mut su, &a2_private, "ann", r#"{"iss":"https://a.test"}"#);
    assert_eq!(who(&mut other, &a2).unwrap().1, Some("a".into()));
    assert_eq!(who(&mut other, &b).unwrap().1, Some("b".into()));
    b_server.set_body("/jwks", &jwks(&[&b_public]));
    finish(&mut su);
}

#[test]
fn pv7_jwt_provider_in_a_policy_and_the_implicit_provider_beside_the_list() {
    let mut su = connect_fetch("postgres");
    let (d_private, d_public) = key(&mut su, Some("d"));
    let (w_private, w_public) = key(&mut su, Some("w"));
    let list = format!(r#"[{{"name":"workers","issuer":"https://internal.test","jwks":{{"keys":[{w_public}]}}}}]"#);
    let mut su = start("", &list);
    // The single-provider settings keep working as the provider "default".
    configure(
        &mut su,
        &[
            ("pg_jwt.jwks", &jwks(&[&d_public])),
            ("pg_jwt.issuer", "https://users.test"),
        ],
    );
    su.batch_execute(
        "DROP TABLE IF EXISTS pv7_orders;
         CREATE TABLE pv7_orders (id int, owner text);
         INSERT INTO pv7_orders VALUES (1, 'ann'), (2, 'w1');
         ALTER TABLE pv7_orders ENABLE ROW LEVEL SECURITY;
         CREATE POLICY p ON pv7_orders USING (owner = jwt_claim('sub') AND jwt_provider() <> 'workers');
         GRANT SELECT ON pv7_orders TO app;",
    )
    .unwrap();
    let mut app = connect_fetch("app");
    let user = sign(&mut su, &d_private, "ann", r#"{"iss":"https://users.test"}"#);
    assert_eq!(
        who(&mut app, &user).unwrap(),
        (Some("ann".into()), Some("default".into()))
    );
    let worker = sign(&mut su, &w_private, "w1", r#"{"iss":"https://internal.test"}"#);
    let count = |c: &mut Client, t: &str| -> i64 {
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])
            .unwrap();
        let n = tx.query_one("SELECT count(*) FROM pv7_orders", &[]).unwrap().get(0);
        tx.commit().unwrap();
        n
    };
    assert_eq!(count(&mut app, &user), 1);
    assert_eq!(count(&mut app, &worker), 0, "the policy keeps workers out");
    // No token: NULL, so the policy fails closed.
    let none: Option<String> = app.query_one("SELECT jwt_provider()", &[]).unwrap().get(0);
    assert_eq!(none, None);
    // An iss neither the list nor pg_jwt.issuer names.
    let stranger = sign(&mut su, &d_private, "ann", r#"{"iss":"https://evil.test"}"#);
    refused(&who(&mut app, &stranger), "issuer mismatch");
    su.batch_execute("DROP TABLE pv7_orders").unwrap();
    configure(&mut su, &[("pg_jwt.jwks", ""), ("pg_jwt.issuer", "")]);
    finish(&mut su);
}

#[test]
fn pv8_revocation_scoped_to_a_provider() {
    let mut su = connect_fetch("postgres");
    let (a_private, a_public) = key(&mut su, Some("a"));
    let (b_private, b_public) = key(&mut su, Some("b"));
    let list = format!(
        r#"[{{"name":"a","issuer":"https://a.test","jwks":{{"keys":[{a_public}]}}}},
            {{"name":"b","issuer":"https://b.test","jwks":{{"keys":[{b_public}]}}}}]"#
    );
    let mut su = start("", &list);
    su.batch_execute("TRUNCATE jwt_revocations").unwrap();
    let a = sign(&mut su, &a_private, "alice", r#"{"iss":"https://a.test","sid":"s-1"}"#);
    let b = sign(&mut su, &b_private, "alice", r#"{"iss":"https://b.test","sid":"s-1"}"#);
    let mut app = connect_fetch("app");
    assert_eq!(who(&mut app, &a).unwrap().1, Some("a".into()));
    assert_eq!(who(&mut app, &b).unwrap().1, Some("b".into()));
    // alice of provider a is not alice of provider b.
    su.batch_execute("SELECT jwt_revoke_subject('alice', now() + interval '1 second', provider => 'a')")
        .unwrap();
    refused(&who(&mut app, &a), "token revoked");
    assert_eq!(who(&mut app, &b).unwrap().1, Some("b".into()));
    // Both scopes at once are two rows; unrevoking removes every scope of the subject.
    su.batch_execute("SELECT jwt_revoke_subject('alice', now() + interval '1 second', provider => 'b')")
        .unwrap();
    refused(&who(&mut app, &b), "token revoked");
    let n: i64 = su
        .query_one(
            "SELECT count(*) FROM jwt_revocations WHERE kind = 'sub' AND value = 'alice'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let undone: bool = su.query_one("SELECT jwt_unrevoke('sub', 'alice')", &[]).unwrap().get(0);
    assert!(undone);
    assert_eq!(who(&mut app, &a).unwrap().1, Some("a".into()));
    // A session id without a provider: every provider's tokens of that session.
    su.batch_execute("SELECT jwt_revoke_session('s-1')").unwrap();
    refused(&who(&mut app, &a), "token revoked");
    refused(&who(&mut app, &b), "token revoked");
    su.batch_execute("SELECT jwt_unrevoke('sid', 's-1')").unwrap();
    su.batch_execute("SELECT jwt_revoke_session('s-1', provider => 'b')")
        .unwrap();
    assert_eq!(who(&mut app, &a).unwrap().1, Some("a".into()));
    refused(&who(&mut app, &b), "token revoked");
    su.batch_execute("TRUNCATE jwt_revocations").unwrap();
    finish(&mut su);
}

/// With a list, the claims are read first to choose the provider by `iss` (and kept for a
/// verification on record), but a token refused for its form is refused for that reason, as
/// before: whether its `iss` names a provider, names none, or is missing. A token another
/// backend verified is verified from the record with the claims read to choose its provider.
#[test]
fn pv9_with_a_list_a_malformed_header_is_the_reason_whatever_the_issuer() {
    let mut su = connect_fetch("postgres");
    let (w_private, w_public) = key(&mut su, Some("w"));
    let list = format!(r#"[{{"name":"workers","issuer":"https://internal.test","jwks":{{"keys":[{w_public}]}}}}]"#);
    let mut su = start("", &list);
    let mut app = connect_fetch("app");
    let b64 = |su: &mut Client, s: &str| -> String {
        su.query_one(
            "SELECT rtrim(translate(encode(convert_to($1, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')",
            &[&s],
        )
        .unwrap()
        .get(0)
    };
    let with_header = |su: &mut Client, token: &str, header: &str| -> String {
        let (_, rest) = token.split_once('.').unwrap();
        format!("{}.{rest}", b64(su, header))
    };
    for iss in [
        r#"{"iss":"https://internal.test"}"#,
        r#"{"iss":"https://evil.test"}"#,
        "{}",
    ] {
        let good = sign(&mut su, &w_private, "w1", iss);
        let crit = with_header(&mut su, &good, r#"{"alg":"ES256","kid":"w","crit":["exp"]}"#);
        refused(&who(&mut app, &crit), "crit");
        let none = with_header(&mut su, &good, r#"{"alg":"none"}"#);
        refused(&who(&mut app, &none), "alg none");
        let twice = with_header(&mut su, &good, r#"{"alg":"ES256","alg":"ES256"}"#);
        refused(&who(&mut app, &twice), "duplicate member in the header");
    }
    // A payload that is not strict base64url, under a bad header: the header's reason.
    let good = sign(&mut su, &w_private, "w1", r#"{"iss":"https://internal.test"}"#);
    let parts: Vec<&str> = good.split('.').collect();
    let bad_payload = format!("{}.{}=.{}", parts[0], parts[1], parts[2]);
    refused(&who(&mut app, &bad_payload), "payload is not strict base64url");
    let both = with_header(&mut su, &bad_payload, r#"{"alg":"ES256","crit":["exp"]}"#);
    refused(&who(&mut app, &both), "crit");
    // A good token: verified here, then from the record in another backend.
    assert_eq!(
        who(&mut app, &good).unwrap(),
        (Some("w1".into()), Some("workers".into()))
    );
    assert_eq!(who_from_record(&good), (Some("w1".into()), Some("workers".into())));
    finish(&mut su);
}

/// A key set fetched from a URL holds public keys only: an `oct` (HMAC) key served there would
/// let whoever reads the URL sign tokens. The key fetcher refuses such a set (its status says
/// why) and the provider's tokens are refused (S23).
#[test]
fn pv10_a_fetched_key_set_with_a_secret_key_is_refused() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let secret = r#"{"kty":"oct","kid":"s","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#;
    server.set_body("/jwks", &format!(r#"{{"keys":[{secret}]}}"#));
    let list = format!(
        r#"[{{"name":"corp","issuer":"https://corp.test","jwks_uri":"{}"}}]"#,
        server.url("/jwks")
    );
    let mut su2 = start(&ca_bundle(&[&server]), &list);
    let status = refresh(&mut su2, Some("corp"));
    assert_eq!(status["in_force"], false, "{status}");
    assert!(status.to_string().contains("secret (oct) key"), "{status}");
    let forged: String = su
        .query_one(
            "SELECT jwt_sign(jsonb_build_object('sub', 'forged-admin', 'iss', 'https://corp.test',
                 'exp', extract(epoch FROM now())::bigint + 600), $1::text::jsonb)",
            &[&secret],
        )
        .unwrap()
        .get(0);
    let mut app = connect_fetch("app");
    let r = who(&mut app, &forged);
    assert!(r.is_err(), "{r:?}");
    // The message never shows the key.
    assert!(!message(&r).contains("c2VjcmV0"), "{}", message(&r));
    finish(&mut su2);
}

/// base64url without padding.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An HS256 token with `header` and `claims` (JSON text), signed with `secret`.
fn hs256(header: &str, claims: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64url(header.as_bytes()), b64url(claims.as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url(tag.as_ref()))
}

/// A provider's `typ` rule (RFC 9068 access tokens: `at+jwt`): a token whose header `typ` is
/// another (an ID token's `JWT`) or missing is refused, in every backend (a record in the shared
/// cache does not hold the header: with the rule, the header is always read). Another
/// provider without the rule accepts any `typ`.
#[test]
fn pv11_a_provider_s_typ_rule_refuses_other_token_types() {
    let secret = b"pv11-secret-pv11-secret-pv11-secret!";
    let jwk = format!(r#"{{"kty":"oct","kid":"h","alg":"HS256","k":"{}"}}"#, b64url(secret));
    let list = format!(
        r#"[{{"name":"api","issuer":"https://api.test","jwks":{{"keys":[{jwk}]}},"typ":"at+jwt"}},
            {{"name":"any","issuer":"https://any.test","jwks":{{"keys":[{jwk}]}}}}]"#
    );
    let mut su = start("", &list);
    let mut app = connect_fetch("app");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = |iss: &str| format!(r#"{{"iss":"{iss}","sub":"s-1","exp":{exp}}}"#);
    let header = |typ: Option<&str>| match typ {
        Some(t) => format!(r#"{{"alg":"HS256","kid":"h","typ":"{t}"}}"#),
        None => r#"{"alg":"HS256","kid":"h"}"#.to_owned(),
    };
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let t = hs256(&header(Some(typ)), &claims("https://api.test"), secret);
        assert_eq!(
            who(&mut app, &t).unwrap(),
            (Some("s-1".into()), Some("api".into())),
            "{typ}"
        );
    }
    for typ in [Some("JWT"), Some("at+jwt+x"), None] {
        let t = hs256(&header(typ), &claims("https://api.test"), secret);
        refused(&who(&mut app, &t), "typ");
        let other = hs256(&header(typ), &claims("https://any.test"), secret);
        assert_eq!(who(&mut app, &other).unwrap().1, Some("any".into()));
    }
    let id_token = hs256(&header(Some("JWT")), &claims("https://api.test"), secret);
    let mut next = connect_fetch("app");
    refused(&who(&mut next, &id_token), "typ");
    let access = hs256(&header(Some("at+jwt")), &claims("https://api.test"), secret);
    assert_eq!(who(&mut next, &access).unwrap().1, Some("api".into()));
    finish(&mut su);
}

/// Review of 0.3.0's providers (S33 to S36): a listed provider's tokens switch only to the
/// roles of its own `allowed_roles` (found at its own `role_claim`), never to those
/// `pg_jwt.allowed_roles` lists for the provider `default`'s users (S33); a token of a provider
/// whose fetch failed is refused without the provider's hidden `jwks_uri` or the fetch's error
/// (S34); a revocation for a provider name no provider can have is refused (S35); a
/// provider's `required_claims` adds to `pg_jwt.required_claims`, so `exp` stays required (S36).
#[test]
fn pv12_roles_fetch_errors_revocation_scopes_and_required_claims_per_provider() {
    let mut su = connect_fetch("postgres");
    let (a_private, a_public) = key(&mut su, Some("a"));
    let (b_private, b_public) = key(&mut su, Some("b"));
    let list = format!(
        r#"[{{"name":"a","issuer":"https://a.test","jwks":{{"keys":[{a_public}]}},"allowed_roles":["pv12_a"],"role_claim":"/app/role"}},
            {{"name":"b","issuer":"https://b.test","jwks":{{"keys":[{b_public}]}},"required_claims":["sub"]}},
            {{"name":"c","issuer":"https://c.test","jwks_uri":"https://127.0.0.1:1/tenant-secret-path/jwks.json?api_key=SECRET123"}}]"#
    );
    let mut su = start("", &list);
    configure(
        &mut su,
        &[("pg_jwt.allowed_roles", "pv12_b"), ("pg_jwt.required_claims", "exp")],
    );
    su.batch_execute(
        "DO $$ BEGIN CREATE ROLE pv12_a; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         DO $$ BEGIN CREATE ROLE pv12_b; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         GRANT pv12_a, pv12_b TO app;",
    )
    .unwrap();
    let mut app = connect_fetch("app");
    let set_role = |c: &mut Client, t: &str| -> Result<String, postgres::Error> {
        let mut tx = c.transaction()?;
        tx.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&t])?;
        let set: String = tx.query_one("SELECT jwt_set_role()", &[])?.get(0);
        let user: String = tx.query_one("SELECT current_user::text", &[])?.get(0);
        assert_eq!(set, user);
        tx.rollback()?;
        Ok(set)
    };
    let forbidden = |r: Result<String, postgres::Error>, words: &str| {
        assert_eq!(sqlstate(&r), "42501", "{r:?}");
        assert!(message(&r).contains(words), "{} (wanted {words})", message(&r));
    };
    // S33: provider a, at its own role_claim, among its own roles only.
    let a = sign(
        &mut su,
        &a_private,
        "ann",
        r#"{"iss":"https://a.test","app":{"role":"pv12_a"}}"#,
    );
    assert_eq!(set_role(&mut app, &a).unwrap(), "pv12_a");
    let a_top = sign(
        &mut su,
        &a_private,
        "ann",
        r#"{"iss":"https://a.test","role":"pv12_a"}"#,
    );
    forbidden(set_role(&mut app, &a_top), "role claim");
    let a_other = sign(
        &mut su,
        &a_private,
        "ann",
        r#"{"iss":"https://a.test","app":{"role":"pv12_b"}}"#,
    );
    forbidden(
        set_role(&mut app, &a_other),
        "the allowed_roles of the token's provider",
    );
    // Provider b has no allowed_roles: no role at all, not pg_jwt.allowed_roles's.
    for role in ["pv12_b", "pv12_a"] {
        let b = sign(
            &mut su,
            &b_private,
            "ben",
            &format!(r#"{{"iss":"https://b.test","role":"{role}"}}"#),
        );
        forbidden(set_role(&mut app, &b), "the allowed_roles of the token's provider");
    }
    // S36: b requires sub in addition to exp, not instead of it.
    let no_exp: String = su
        .query_one(
            r#"SELECT jwt_sign('{"iss":"https://b.test","sub":"ben"}'::jsonb, $1::text::jsonb)"#,
            &[&b_private],
        )
        .unwrap()
        .get(0);
    refused(&who(&mut app, &no_exp), "missing required claim");
    let no_sub: String = su
        .query_one(
            r#"SELECT jwt_sign(jsonb_build_object('iss', 'https://b.test', 'exp', extract(epoch FROM now())::bigint + 600), $1::text::jsonb)"#,
            &[&b_private],
        )
        .unwrap()
        .get(0);
    refused(&who(&mut app, &no_sub), "missing required claim");
    let b = sign(&mut su, &b_private, "ben", r#"{"iss":"https://b.test"}"#);
    assert_eq!(who(&mut app, &b).unwrap(), (Some("ben".into()), Some("b".into())));
    // S34: c's fetch failed; its token is refused without c's URL or the fetch's error, which
    // the superuser's jwt_jwks_status() shows.
    let status = refresh(&mut su, Some("c"));
    assert_eq!(status["in_force"], false, "{status}");
    let c = sign(&mut su, &a_private, "cy", r#"{"iss":"https://c.test"}"#);
    let r = who(&mut app, &c);
    assert_eq!(sqlstate(&r), "22023", "{r:?}");
    let shown = format!("{r:?}");
    assert!(message(&r).contains("its last fetch failed"), "{shown}");
    for secret in ["SECRET123", "tenant-secret-path", "127.0.0.1"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let uri: String = su
        .query_one("SELECT uri FROM jwt_jwks_status() WHERE provider = 'c'", &[])
        .unwrap()
        .get(0);
    assert!(uri.contains("SECRET123"));
    // S35: a revocation's provider is default, a listed one, or NULL (every provider).
    su.batch_execute("TRUNCATE jwt_revocations").unwrap();
    for bad in ["ACME", "", "has space", "ünï"] {
        for call in [
            "SELECT jwt_revoke_subject('ben', provider => $1)",
            "SELECT jwt_revoke_session('s-1', provider => $1)",
        ] {
            let r = su.execute(call, &[&bad]);
            assert_eq!(sqlstate(&r), "22023", "{bad}: {r:?}");
            assert!(
                message(&r).starts_with("pg_jwt: no provider can have that name"),
                "{r:?}"
            );
        }
    }
    // A well-formed name this server does not list: kept, with a warning (a central database
    // may revoke for its subscribers' providers).
    for good in [Some("b"), Some("default"), None, Some("elsewhere")] {
        // Issued before a minute from now: the token's iat is rounded to a second.
        su.execute(
            "SELECT jwt_revoke_subject('ben', now() + interval '1 minute', provider => $1)",
            &[&good],
        )
        .unwrap();
    }
    let scopes: Vec<String> = su
        .query("SELECT provider FROM jwt_revocations ORDER BY provider", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(scopes, ["", "b", "default", "elsewhere"]);
    // The WARNING for a name not listed, only to a role that may read pg_jwt.providers: to
    // others (the function is PUBLIC's) it would tell the hidden list name by name.
    for (user, warned) in [("postgres", true), ("app", false)] {
        let (mut c, notices) = connect_fetch_with_notices(user);
        for name in ["b", "elsewhere"] {
            c.execute("SELECT pg_jwt_provider_scope($1)", &[&name]).unwrap();
        }
        let notices = notices.lock().unwrap();
        let listed_not = notices
            .iter()
            .filter(|m| m.contains("no provider of that name is listed"))
            .count();
        assert_eq!(listed_not, usize::from(warned), "{user}: {notices:?}");
    }
    refused(&who(&mut app, &b), "token revoked");
    su.batch_execute("TRUNCATE jwt_revocations; REVOKE pv12_a, pv12_b FROM app")
        .unwrap();
    configure(&mut su, &[("pg_jwt.allowed_roles", "")]);
    finish(&mut su);
}

/// S50: a refusal is counted (and logged) for the provider of the token refused, never for the
/// provider of the token the backend verified before it. `jwt_stats()` counts the implicit
/// provider (`default`) apart from the listed ones (`listed`): a listed provider's token found
/// revoked in the backend's cache after a `default` token counts as `listed`; an oversized
/// token (refused before any provider is chosen) after a listed provider's as `default`.
#[test]
fn pv13_refusals_are_counted_for_the_refused_token_s_provider() {
    let mut su = connect_fetch("postgres");
    let (a_private, a_public) = key(&mut su, Some("a"));
    let (d_private, d_public) = key(&mut su, Some("d"));
    let list = format!(r#"[{{"name":"a","issuer":"https://a.test","jwks":{{"keys":[{a_public}]}}}}]"#);
    let mut su = start("", &list);
    configure(
        &mut su,
        &[
            ("pg_jwt.jwks", &jwks(&[&d_public])),
            ("pg_jwt.issuer", "https://d.test"),
        ],
    );
    let a = sign(&mut su, &a_private, "ann", r#"{"iss":"https://a.test","jti":"pv13-a"}"#);
    let d = sign(&mut su, &d_private, "dan", r#"{"iss":"https://d.test"}"#);
    let refusals = |su: &mut Client, provider: &str| -> i64 {
        su.query_one(
            "SELECT coalesce(sum(count), 0)::bigint FROM jwt_stats() WHERE provider = $1 AND outcome = 'refused'",
            &[&provider],
        )
        .unwrap()
        .get(0)
    };
    let before: Vec<i64> = ["listed", "default"].iter().map(|p| refusals(&mut su, p)).collect();
    let mut app = connect_fetch("app");
    assert_eq!(who(&mut app, &a).unwrap().1, Some("a".into()));
    assert_eq!(who(&mut app, &d).unwrap().1, Some("default".into()));
    su.batch_execute("SELECT jwt_revoke_token('pv13-a')").unwrap();
    refused(&who(&mut app, &a), "token revoked");
    let middle: Vec<i64> = ["listed", "default"].iter().map(|p| refusals(&mut su, p)).collect();
    assert_eq!(
        [middle[0] - before[0], middle[1] - before[1]],
        [1, 0],
        "the revoked listed token's refusal, by listed and default"
    );
    su.batch_execute("SELECT jwt_unrevoke('jti', 'pv13-a')").unwrap();
    assert_eq!(who(&mut app, &a).unwrap().1, Some("a".into()));
    let oversized = format!("{}.{}.x", "a".repeat(9000), "b".repeat(9000));
    refused(&who(&mut app, &oversized), "");
    let after: Vec<i64> = ["listed", "default"].iter().map(|p| refusals(&mut su, p)).collect();
    assert_eq!(
        [after[0] - middle[0], after[1] - middle[1]],
        [0, 1],
        "the oversized token's refusal, by listed and default"
    );
    configure(&mut su, &[("pg_jwt.jwks", ""), ("pg_jwt.issuer", "")]);
    finish(&mut su);
}
