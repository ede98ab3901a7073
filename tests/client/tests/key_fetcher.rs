//! The key fetcher against a real HTTPS server on 127.0.0.1 (tests/client/src/jwks_server.rs:
//! its own CA, minted at test time) and a real cluster that preloads pg_jwt (the key-fetcher
//! cluster of scripts/client-tests.sh). Each test sets every key setting it relies on.

use pg_jwt_client_tests::jwks_server::{JwksServer, Reply};
use pg_jwt_client_tests::*;
use postgres::Client;
use std::time::Duration;

/// Sets server-wide settings (ALTER SYSTEM), reloads, and gives the backends and the worker a
/// moment to read them.
fn configure(su: &mut Client, settings: &[(&str, &str)]) {
    for (name, value) in settings {
        su.batch_execute(&format!("ALTER SYSTEM SET {name} = {}", lit(value)))
            .unwrap();
    }
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(400));
}

/// The defaults every test starts from, pointed at `server`'s `/jwks`.
fn start(server: &JwksServer, extra: &[(&str, &str)]) -> Client {
    let mut su = connect_fetch("postgres");
    let url = server.url("/jwks");
    let ca = server.ca_file();
    let mut settings: Vec<(&str, &str)> = vec![
        ("pg_jwt.jwks", ""),
        ("pg_jwt.issuer", ""),
        ("pg_jwt.jwks_uri", &url),
        ("pg_jwt.jwks_ca_file", &ca),
        ("pg_jwt.jwks_min_refresh", "1"),
        ("pg_jwt.jwks_max_refresh", "3600"),
        ("pg_jwt.jwks_fetch_wait", "3000"),
        ("pg_jwt.jwks_max_stale", "86400"),
    ];
    settings.extend_from_slice(extra);
    configure(&mut su, &settings);
    connect_fetch("postgres")
}

fn refresh(su: &mut Client) -> serde_json::Value {
    let text: String = su.query_one("SELECT jwt_jwks_refresh()::text", &[]).unwrap().get(0);
    serde_json::from_str(&text).unwrap()
}

/// A new ES256 key: (private JWK, public JWK), both as text.
fn key(su: &mut Client, kid: &str) -> (String, String) {
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

fn sign(su: &mut Client, private: &str, sub: &str, extra: &str) -> String {
    su.query_one(
        &format!(
            "SELECT jwt_sign(jsonb_build_object('sub', $1::text, 'exp', extract(epoch FROM now())::bigint + 600) || {}::jsonb, $2::text::jsonb)",
            lit(if extra.is_empty() { "{}" } else { extra })
        ),
        &[&sub, &private],
    )
    .unwrap()
    .get(0)
}

/// `jwt_claim('sub')` for `token` in session `c` (a statement of its own).
fn sub_of(c: &mut Client, token: &str) -> Result<Option<String>, postgres::Error> {
    c.batch_execute(&format!("SET pg_jwt.token = {}", lit(token)))?;
    c.query_one("SELECT jwt_claim('sub')", &[]).map(|r| r.get(0))
}

#[test]
fn k1_initial_fetch_status_and_session_tokens() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private, public) = key(&mut su, "a");
    server.set_body("/jwks", &jwks(&[&public]));
    let mut su = start(&server, &[]);
    let status = refresh(&mut su);
    assert_eq!(status["kids"], serde_json::json!(["a"]), "{status}");
    assert_eq!(status["in_force"], true, "{status}");
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status}");
    let row = su
        .query_one(
            "SELECT uri, source, kids, in_force, fetches FROM jwt_jwks_status()",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), server.url("/jwks"));
    assert_eq!(row.get::<_, Vec<String>>(2), vec!["a".to_owned()]);
    assert!(row.get::<_, bool>(3));
    assert!(row.get::<_, i64>(4) >= 1);
    let t = sign(&mut su, &private, "alice", "");
    let mut app = connect_fetch("app");
    assert_eq!(sub_of(&mut app, &t).unwrap(), Some("alice".into()));
    // Refreshing is for superusers; the status is for everyone (public kids; the URL only for
    // roles that may read the setting: k14).
    let r = app.query_one("SELECT jwt_jwks_refresh()", &[]);
    assert_eq!(sqlstate(&r), "42501", "{}", message(&r));
    assert_eq!(app.query("SELECT * FROM jwt_jwks_status()", &[]).unwrap().len(), 1);
    // jwt_verify is unchanged: its key set is its argument.
    let jwks_arg = jwks(&[&public]);
    let verified: String = app
        .query_one("SELECT jwt_verify($1, $2::text::jsonb)->>'sub'", &[&t, &jwks_arg])
        .unwrap()
        .get(0);
    assert_eq!(verified, "alice");
}

#[test]
fn k2_discovery_from_the_issuer() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private, public) = key(&mut su, "d");
    let issuer = server.base();
    server.set_body("/keys", &jwks(&[&public]));
    let doc = |issuer: &str, jwks_uri: &str| format!(r#"{{"issuer":"{issuer}","jwks_uri":"{jwks_uri}"}}"#);
    server.set_body("/.well-known/openid-configuration", &doc(&issuer, &server.url("/keys")));
    let mut su = start(&server, &[("pg_jwt.issuer", &issuer), ("pg_jwt.jwks_uri", "discover")]);
    let status = refresh(&mut su);
    assert_eq!(status["kids"], serde_json::json!(["d"]), "{status}");
    assert_eq!(status["source"], server.url("/keys"), "{status}");
    let t = sign(&mut su, &private, "dora", &format!(r#"{{"iss":"{issuer}"}}"#));
    let mut app = connect_fetch("app");
    assert_eq!(sub_of(&mut app, &t).unwrap(), Some("dora".into()));
    // A discovery document naming another issuer is refused; the last good set stays.
    server.set_body(
        "/.well-known/openid-configuration",
        &doc("https://evil.test", &server.url("/keys")),
    );
    let status = refresh(&mut su);
    assert!(
        status["last_error"].as_str().unwrap_or("").contains("another issuer"),
        "{status}"
    );
    assert_eq!(status["in_force"], true, "{status}");
    // And a jwks_uri that is not https.
    server.set_body(
        "/.well-known/openid-configuration",
        &doc(&issuer, "http://127.0.0.1/keys"),
    );
    let status = refresh(&mut su);
    assert!(
        status["last_error"].as_str().unwrap_or("").contains("https"),
        "{status}"
    );
    configure(&mut su, &[("pg_jwt.issuer", "")]);
}

/// Seconds between the last success and the next refresh.
fn refresh_interval(su: &mut Client) -> f64 {
    su.query_one(
        "SELECT extract(epoch FROM next_refresh - last_success)::float8 FROM jwt_jwks_status()",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn k3_cache_control_is_honoured_within_the_clamps() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (_, public) = key(&mut su, "c");
    let body = jwks(&[&public]);
    let reply = |cc: &str| Reply::Body {
        body: body.clone(),
        cache_control: Some(cc.to_owned()),
    };
    server.set("/jwks", reply("public, max-age=2"));
    let mut su = start(&server, &[("pg_jwt.jwks_max_refresh", "5")]);
    refresh(&mut su);
    assert_eq!(refresh_interval(&mut su), 2.0);
    // The worker refetches by itself when max-age runs out.
    let before = server.hits("/jwks");
    std::thread::sleep(Duration::from_millis(3500));
    assert!(server.hits("/jwks") > before, "no refetch after max-age");
    server.set("/jwks", reply("max-age=100000"));
    refresh(&mut su);
    assert_eq!(refresh_interval(&mut su), 5.0, "clamped to jwks_max_refresh");
    server.set("/jwks", reply("no-store"));
    refresh(&mut su);
    assert_eq!(refresh_interval(&mut su), 1.0, "clamped to jwks_min_refresh");
}

#[test]
fn k4_rotation_is_accepted_without_the_dba() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private_a, public_a) = key(&mut su, "a");
    let (private_b, public_b) = key(&mut su, "b");
    server.set_body("/jwks", &jwks(&[&public_a]));
    let mut su = start(&server, &[]);
    refresh(&mut su);
    let mut app = connect_fetch("app");
    let ta = sign(&mut su, &private_a, "alice", "");
    assert_eq!(sub_of(&mut app, &ta).unwrap(), Some("alice".into()));
    // The provider publishes b and signs with it: the first token is accepted, no SQL by a DBA.
    server.set_body("/jwks", &jwks(&[&public_a, &public_b]));
    std::thread::sleep(Duration::from_millis(1100));
    let hits = server.hits("/jwks");
    let tb = sign(&mut su, &private_b, "bob", "");
    let started = std::time::Instant::now();
    assert_eq!(sub_of(&mut app, &tb).unwrap(), Some("bob".into()));
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "within jwks_fetch_wait"
    );
    assert_eq!(server.hits("/jwks"), hits + 1, "one refetch");
    // Both keys now verify in another session too.
    let mut other = connect_fetch("app");
    assert_eq!(sub_of(&mut other, &ta).unwrap(), Some("alice".into()));
    assert_eq!(sub_of(&mut other, &tb).unwrap(), Some("bob".into()));
}

#[test]
fn k5_a_removed_key_stops_working_in_a_live_session() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private_a, public_a) = key(&mut su, "a");
    let (_, public_b) = key(&mut su, "b");
    server.set_body("/jwks", &jwks(&[&public_a, &public_b]));
    let mut su = start(&server, &[("pg_jwt.jwks_fetch_wait", "0")]);
    refresh(&mut su);
    let ta = sign(&mut su, &private_a, "alice", "");
    let mut app = connect_fetch("app");
    app.batch_execute(&format!("SET pg_jwt.token = {}", lit(&ta))).unwrap();
    for _ in 0..3 {
        let sub: Option<String> = app.query_one("SELECT jwt_claim('sub')", &[]).unwrap().get(0);
        assert_eq!(sub, Some("alice".into()));
    }
    server.set_body("/jwks", &jwks(&[&public_b]));
    let status = refresh(&mut su);
    assert_eq!(status["kids"], serde_json::json!(["b"]), "{status}");
    let r = app.query_one("SELECT jwt_claim('sub')", &[]);
    assert_eq!(sqlstate(&r), "28000", "{}", message(&r));
    assert!(message(&r).contains("no matching key"), "{}", message(&r));
}

#[test]
fn k6_a_flood_of_unknown_kids_costs_at_most_one_fetch_per_interval() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (_, public_a) = key(&mut su, "a");
    server.set_body("/jwks", &jwks(&[&public_a]));
    let mut su = start(
        &server,
        &[("pg_jwt.jwks_min_refresh", "30"), ("pg_jwt.jwks_fetch_wait", "500")],
    );
    refresh(&mut su);
    let hits = server.hits("/jwks");
    let mut tokens = Vec::new();
    for i in 0..40 {
        let (private, _) = key(&mut su, &format!("random-{i}"));
        tokens.push(sign(&mut su, &private, "mallory", ""));
    }
    let mut sessions: Vec<Client> = (0..4).map(|_| connect_fetch("app")).collect();
    for (i, t) in tokens.iter().enumerate() {
        let r = sub_of(&mut sessions[i % 4], t);
        assert_eq!(sqlstate(&r), "28000", "{}", message(&r));
    }
    assert!(
        server.hits("/jwks") <= hits + 1,
        "{} fetches for 40 unknown kids",
        server.hits("/jwks") - hits
    );
}

#[test]
fn k7_outages_keep_the_last_good_set() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private_a, public_a) = key(&mut su, "a");
    let good = jwks(&[&public_a]);
    server.set_body("/jwks", &good);
    let mut su = start(&server, &[]);
    refresh(&mut su);
    let ta = sign(&mut su, &private_a, "alice", "");
    // A 1024-bit RSA key: refused by the strict import.
    let weak = format!(
        r#"{{"keys":[{{"kty":"RSA","kid":"weak","n":"{}","e":"AQAB"}}]}}"#,
        "u".repeat(171) + "w"
    );
    let cases: Vec<(&str, Reply)> = vec![
        ("HTTP 500", Reply::Status(500)),
        (
            "does not import",
            Reply::Body {
                body: "<html>garbage</html>".into(),
                cache_control: None,
            },
        ),
        (
            "does not import",
            Reply::Body {
                body: weak,
                cache_control: None,
            },
        ),
        ("larger than", Reply::Huge),
        // The size line of a chunk is collected before the body's cap applies: the fetch's
        // budget of bytes read ends it (it grew the worker's memory to gigabytes in 10 s).
        ("larger than the fetch allows", Reply::EndlessChunkSize),
        (
            "https",
            Reply::Redirect(format!("http://127.0.0.1:{}/jwks", server.port)),
        ),
        ("", Reply::Close),
        ("", Reply::Slow),
    ];
    let mut app = connect_fetch("app");
    for (expected, reply) in cases {
        let what = format!("{reply:?}");
        server.set("/jwks", reply);
        let status = refresh(&mut su);
        let error = status["last_error"].as_str().unwrap_or("").to_owned();
        assert!(!error.is_empty() && error.contains(expected), "{what}: {status}");
        assert_eq!(status["in_force"], true, "{what}: {status}");
        assert_eq!(status["kids"], serde_json::json!(["a"]), "{what}: {status}");
        assert_eq!(sub_of(&mut app, &ta).unwrap(), Some("alice".into()), "{what}");
    }
    // A CA that did not sign the server's certificate.
    server.set_body("/jwks", &good);
    let wrong = server.wrong_ca_file();
    configure(&mut su, &[("pg_jwt.jwks_ca_file", &wrong)]);
    let status = refresh(&mut su);
    assert!(!status["last_error"].is_null(), "wrong CA: {status}");
    assert_eq!(status["in_force"], true, "{status}");
    assert_eq!(sub_of(&mut app, &ta).unwrap(), Some("alice".into()));
}

#[test]
fn k8_restart_with_the_provider_down_then_stale() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private_a, public_a) = key(&mut su, "a");
    server.set_body("/jwks", &jwks(&[&public_a]));
    let mut su = start(&server, &[]);
    refresh(&mut su);
    let ta = sign(&mut su, &private_a, "alice", "");
    server.set("/jwks", Reply::Close);
    drop(su);
    restart_fetch_cluster();
    let mut app = connect_fetch("app");
    assert_eq!(
        sub_of(&mut app, &ta).unwrap(),
        Some("alice".into()),
        "persisted set after restart"
    );
    let mut su = connect_fetch("postgres");
    let status = refresh(&mut su);
    assert_eq!(status["in_force"], true, "{status}");
    assert!(!status["last_error"].is_null(), "{status}");
    // Past jwks_max_stale without a successful fetch, the set is dropped: fail closed.
    configure(&mut su, &[("pg_jwt.jwks_max_stale", "2")]);
    std::thread::sleep(Duration::from_millis(2500));
    let mut app = connect_fetch("app");
    let r = sub_of(&mut app, &ta);
    assert_eq!(sqlstate(&r), "22023", "{}", message(&r));
    assert!(message(&r).contains("stale"), "{}", message(&r));
    configure(&mut su, &[("pg_jwt.jwks_max_stale", "86400")]);
}

#[test]
fn k9_a_pinned_key_set_merges_with_the_fetched_one() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private_a, public_a) = key(&mut su, "a");
    let (private_p, public_p) = key(&mut su, "pinned");
    server.set_body("/jwks", &jwks(&[&public_a]));
    let pinned = jwks(&[&public_p]);
    let mut su = start(&server, &[("pg_jwt.jwks", &pinned)]);
    refresh(&mut su);
    let mut app = connect_fetch("app");
    let ta = sign(&mut su, &private_a, "alice", "");
    let tp = sign(&mut su, &private_p, "pat", "");
    assert_eq!(sub_of(&mut app, &ta).unwrap(), Some("alice".into()));
    assert_eq!(sub_of(&mut app, &tp).unwrap(), Some("pat".into()));
    // The same kid in both: refused, reported.
    let clash = jwks(&[&public_a.replace("\"a\"", "\"pinned\"")]);
    server.set_body("/jwks", &clash);
    refresh(&mut su);
    let mut app = connect_fetch("app");
    let r = sub_of(&mut app, &tp);
    assert_eq!(sqlstate(&r), "22023", "{}", message(&r));
    assert!(message(&r).contains("same kid"), "{}", message(&r));
    configure(&mut su, &[("pg_jwt.jwks", "")]);
}

/// Issue 20, item 7: keys discovered for one issuer are never in force for another. After
/// `pg_jwt.issuer` changes, the old provider's keys stop at once (not at the next fetch), and
/// a restart does not restore them from the file either.
#[test]
fn k10_discovered_keys_do_not_outlive_a_change_of_issuer() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private, public) = key(&mut su, "old-issuer-key");
    let issuer = server.base();
    server.set_body("/keys", &jwks(&[&public]));
    server.set_body(
        "/.well-known/openid-configuration",
        &format!(r#"{{"issuer":"{issuer}","jwks_uri":"{}"}}"#, server.url("/keys")),
    );
    let mut su = start(&server, &[("pg_jwt.issuer", &issuer), ("pg_jwt.jwks_uri", "discover")]);
    let status = refresh(&mut su);
    assert_eq!(status["in_force"], true, "{status}");
    // The new issuer's discovery document does not exist (404): no key set for it.
    let other = format!("{issuer}/other");
    let forged = sign(&mut su, &private, "mallory", &format!(r#"{{"iss":"{other}"}}"#));
    configure(&mut su, &[("pg_jwt.issuer", &other)]);
    let mut app = connect_fetch("app");
    let r = sub_of(&mut app, &forged);
    assert_ne!(
        sqlstate(&r),
        "ok",
        "the old issuer's keys verified a token of the new issuer"
    );
    // Nor after a restart (the persisted file is for the old issuer).
    drop(app);
    drop(su);
    restart_fetch_cluster();
    let mut app = connect_fetch("app");
    let r = sub_of(&mut app, &forged);
    assert_ne!(sqlstate(&r), "ok", "restored from the file for another issuer");
    let mut su = connect_fetch("postgres");
    configure(&mut su, &[("pg_jwt.issuer", "")]);
}

fn persisted_fetched_at() -> i64 {
    let data = std::env::var("PGJWT_FETCH_DATA").unwrap();
    let text = std::fs::read_to_string(format!("{data}/pg_jwt_jwks.json")).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    header["fetched_at"].as_i64().unwrap()
}

/// Issue 20, item 9: every successful fetch refreshes the file's `fetched_at` (a stable key set
/// is not "stale" at the next restart).
#[test]
fn k11_unchanged_fetches_refresh_the_persisted_fetched_at() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private, public) = key(&mut su, "steady");
    server.set_body("/jwks", &jwks(&[&public]));
    let mut su = start(&server, &[]);
    refresh(&mut su);
    let first = persisted_fetched_at();
    std::thread::sleep(Duration::from_millis(2100));
    let status = refresh(&mut su);
    assert_eq!(status["kids"], serde_json::json!(["steady"]), "{status}");
    let second = persisted_fetched_at();
    assert!(
        second >= first + 2,
        "fetched_at not refreshed by an unchanged fetch: {first} then {second}"
    );

    // (Keeping the live set across a restart of the key fetcher is implemented in
    // worker::source_changed but not tested here: PostgreSQL restarts a background worker only
    // after an error exit, which a test cannot cause from outside; SIGTERM ends it for good.)
    let t = sign(&mut su, &private, "steady-user", "");
    let mut app = connect_fetch("app");
    assert_eq!(sub_of(&mut app, &t).unwrap(), Some("steady-user".into()));
    server.set_body("/jwks", &jwks(&[&public]));
}

/// A provider chooses its kids: one with control characters (a newline, an escape) is shown
/// escaped by `jwt_jwks_status()` and in the server log's line about the new set, and still
/// matches its tokens' `kid` byte for byte.
#[test]
fn k12_kids_with_control_characters_are_shown_escaped() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private, public) = key(&mut su, "x\nLOG:  y\u{1b}[2J");
    server.set_body("/jwks", &jwks(&[&public]));
    let mut su = start(&server, &[]);
    let status = refresh(&mut su);
    assert_eq!(
        status["kids"],
        serde_json::json!(["x\\u{a}LOG:  y\\u{1b}[2J"]),
        "{status}"
    );
    let kids: Vec<String> = su.query_one("SELECT kids FROM jwt_jwks_status()", &[]).unwrap().get(0);
    assert_eq!(kids, vec!["x\\u{a}LOG:  y\\u{1b}[2J".to_owned()]);
    let t = sign(&mut su, &private, "alice", "");
    let mut app = connect_fetch("app");
    assert_eq!(sub_of(&mut app, &t).unwrap(), Some("alice".into()));
}

/// S25, the time half: a server that trickles one TLS record a byte a second (a record header
/// announcing 16 KiB, then its bytes). Each read returned a byte before its timeout, so the
/// fetch thread was held for hours; now no read waits past the fetch's 30 s
/// (`http::FETCH_DEADLINE`), the fetch fails, and the key fetcher fetches again later.
#[test]
fn k13_a_trickling_server_cannot_hold_a_fetch() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let trickle = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let mut open = Vec::new();
        let started = std::time::Instant::now();
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < Duration::from_secs(90) {
            if let Ok((mut s, _)) = listener.accept() {
                use std::io::Write;
                let _ = s.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]);
                open.push(s);
            }
            for s in &mut open {
                use std::io::Write;
                let _ = s.write_all(&[0x00]);
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
    });
    let server = JwksServer::start();
    let mut su = start(&server, &[]);
    let url = format!("https://127.0.0.1:{port}/jwks");
    configure(&mut su, &[("pg_jwt.jwks_uri", &url)]);
    let started = std::time::Instant::now();
    let _ = su.query_one("SELECT jwt_jwks_refresh()::text", &[]);
    let mut error = String::new();
    while started.elapsed() < Duration::from_secs(50) {
        let status: Option<String> = su
            .query_one("SELECT last_error FROM jwt_jwks_status() WHERE uri = $1", &[&url])
            .map(|r| r.get(0))
            .unwrap_or(None);
        if let Some(e) = status.filter(|e| !e.is_empty()) {
            error = e;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    trickle.join().unwrap();
    assert!(
        !error.is_empty(),
        "the fetch was still held after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}: {error}",
        started.elapsed()
    );
}

/// The default provider's URL (whose query string may hold a credential) and its fetch errors
/// (which name the URL) are hidden from roles that may not read the setting, as S34 hid a
/// listed provider's: `SHOW`, `jwt_jwks_status()` and a token's error. The superuser sees them.
#[test]
fn k14_the_default_providers_url_and_fetch_error_are_hidden_from_other_roles() {
    let server = JwksServer::start();
    let mut su = connect_fetch("postgres");
    let (private, _) = key(&mut su, "a");
    let secret_url = server.url("/missing?api_key=SECRET123");
    let mut su = start(&server, &[("pg_jwt.jwks_uri", &secret_url)]);
    let status = refresh(&mut su);
    assert_eq!(status["in_force"], false, "{status}");
    assert!(
        status["last_error"].as_str().unwrap_or("").contains("SECRET123"),
        "the superuser sees the fetch's error: {status}"
    );
    let t = sign(&mut su, &private, "alice", "");
    let mut app = connect_fetch("app");
    let r = sub_of(&mut app, &t);
    assert_eq!(sqlstate(&r), "22023", "{r:?}");
    let shown = format!("{r:?}");
    assert!(message(&r).contains("its last fetch failed"), "{shown}");
    for secret in ["SECRET123", "127.0.0.1", "missing"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let show = app.query_one("SHOW pg_jwt.jwks_uri", &[]);
    assert_eq!(sqlstate(&show), "42501", "{show:?}");
    let row = app
        .query_one("SELECT uri, source, last_error FROM jwt_jwks_status()", &[])
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    let error: Option<String> = row.get(2);
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("the last fetch failed") && !e.contains("SECRET123")),
        "{error:?}"
    );
    let uri: Option<String> = su.query_one("SELECT uri FROM jwt_jwks_status()", &[]).unwrap().get(0);
    assert_eq!(uri.as_deref(), Some(secret_url.as_str()));
    // Nor is a URL ever stored where every role reads it (pg_db_role_setting, pg_proc).
    let clean = "ALTER DATABASE app RESET pg_jwt.jwks_uri; ALTER ROLE app RESET pg_jwt.jwks_uri; DROP FUNCTION IF EXISTS k14_f()";
    su.batch_execute(clean).unwrap();
    for stmt in [
        format!("ALTER DATABASE app SET pg_jwt.jwks_uri = {}", lit(&secret_url)),
        format!("ALTER ROLE app SET pg_jwt.jwks_uri = {}", lit(&secret_url)),
        format!(
            "CREATE FUNCTION k14_f() RETURNS int LANGUAGE sql SET pg_jwt.jwks_uri = {} AS 'SELECT 1'",
            lit(&secret_url)
        ),
    ] {
        let r = su.batch_execute(&stmt);
        su.batch_execute(clean).unwrap();
        assert_eq!(sqlstate(&r), "22023", "{stmt}: {r:?}");
        assert!(message(&r).contains("cannot be stored"), "{r:?}");
        assert!(!format!("{r:?}").contains("SECRET123"), "{r:?}");
    }
}
