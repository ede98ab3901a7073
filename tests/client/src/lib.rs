//! Shared set-up for the client suite. scripts/client-tests.sh starts a throwaway cluster (and
//! pgbouncer) and exports where they listen:
//! - PGJWT_TEST_HOST, PGJWT_TEST_PORT: the cluster (unix socket directory, port);
//! - PGJWT_PGBOUNCER_PORT: pgbouncer in transaction pooling mode on 127.0.0.1.
//!
//! - PGJWT_NOPRELOAD_HOST, PGJWT_NOPRELOAD_PORT: a second cluster where pg_jwt is installed but
//!   not in shared_preload_libraries, with an HMAC key set and an issuer in its configuration.
//!
//! The main cluster preloads pg_jwt. Databases: `app`, and `enc_euc_jp`, `enc_latin1`,
//! `enc_sql_ascii` in those encodings. Roles: `postgres` (superuser) and `app` (no superuser,
//! RLS applies).

pub mod jwks_server;

use postgres::{Client, NoTls};
use std::sync::Once;

pub const TENANTS: usize = 6;
pub const AUDIENCE: &str = "pg_jwt_client_tests";
pub const ISSUER: &str = "https://issuer.test";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the suite through scripts/client-tests.sh"))
}

pub fn connect_as(user: &str, db: &str) -> Client {
    connect_with(user, db, "")
}

pub fn connect_with(user: &str, db: &str, options: &str) -> Client {
    try_connect(user, db, options).unwrap_or_else(|e| panic!("connect as {user} to {db}: {e}"))
}

pub fn try_connect(user: &str, db: &str, options: &str) -> Result<Client, postgres::Error> {
    let mut cfg = postgres::Config::new();
    cfg.host_path(env("PGJWT_TEST_HOST"))
        .port(env("PGJWT_TEST_PORT").parse().unwrap())
        .user(user)
        .dbname(db);
    if !options.is_empty() {
        cfg.options(options);
    }
    cfg.connect(NoTls)
}

/// A connection to the key-fetcher cluster (preloaded; its key settings belong to the tests in
/// tests/key_fetcher.rs).
pub fn connect_fetch(user: &str) -> Client {
    let mut cfg = postgres::Config::new();
    cfg.host_path(env("PGJWT_FETCH_HOST"))
        .port(env("PGJWT_FETCH_PORT").parse().unwrap())
        .user(user)
        .dbname("app");
    cfg.connect(NoTls)
        .unwrap_or_else(|e| panic!("connect as {user} to the key-fetcher cluster: {e}"))
}

/// Messages of the notices (WARNING, NOTICE, ...) a client received.
pub type Notices = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// As `connect_fetch`, with the notices the server sends the session collected.
pub fn connect_fetch_with_notices(user: &str) -> (Client, Notices) {
    let notices = Notices::default();
    let seen = notices.clone();
    let mut cfg = postgres::Config::new();
    cfg.host_path(env("PGJWT_FETCH_HOST"))
        .port(env("PGJWT_FETCH_PORT").parse().unwrap())
        .user(user)
        .dbname("app")
        .notice_callback(move |n| seen.lock().unwrap().push(n.message().to_owned()));
    let c = cfg
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("connect as {user} to the key-fetcher cluster: {e}"));
    (c, notices)
}

/// Restarts the key-fetcher cluster (fast shutdown), as its OS user.
pub fn restart_fetch_cluster() {
    let data = env("PGJWT_FETCH_DATA");
    let status = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{}/pg_ctl", env("PGJWT_PG_BIN")))
        .args(["-D", &data, "-w", "-m", "fast", "-l"])
        .arg(format!("{data}/../server.log"))
        .arg("restart")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl restart failed");
}

/// A connection to the cluster that does not preload pg_jwt.
pub fn try_connect_nopreload(user: &str, db: &str, options: &str) -> Result<Client, postgres::Error> {
    let mut cfg = postgres::Config::new();
    cfg.host_path(env("PGJWT_NOPRELOAD_HOST"))
        .port(env("PGJWT_NOPRELOAD_PORT").parse().unwrap())
        .user(user)
        .dbname(db);
    if !options.is_empty() {
        cfg.options(options);
    }
    cfg.connect(NoTls)
}

pub fn connect_pgbouncer() -> Client {
    let mut cfg = postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(env("PGJWT_PGBOUNCER_PORT").parse().unwrap())
        .user("app")
        .dbname("app");
    cfg.connect(NoTls).expect("connect through pgbouncer")
}

pub fn superuser() -> Client {
    connect_as("postgres", "app")
}

pub fn app() -> Client {
    connect_as("app", "app")
}

/// Tenant `i`'s id.
pub fn tenant(i: usize) -> String {
    format!("00000000-0000-4000-8000-{:012}", i)
}

/// Single-quoted SQL literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

static SETUP: Once = Once::new();

/// Creates the schema, policies, keys and configuration once per test run (idempotent).
pub fn setup() {
    SETUP.call_once(|| {
        let mut su = superuser();
        // The key of an earlier test binary, if any: sessions it left open (pgbouncer's server
        // connections) read the database's key set when they started, so it must not change.
        let earlier: Option<String> = su
            .query_opt("SELECT key::text FROM test_keys LIMIT 1", &[])
            .ok()
            .flatten()
            .map(|r| r.get(0));
        su.batch_execute(include_str!("schema.sql")).expect("schema.sql");
        let private = earlier.unwrap_or_else(|| {
            su.query_one("SELECT jwt_generate_jwk('ES256', 'test-key')::text", &[])
                .unwrap()
                .get::<_, String>(0)
        });
        let public = su
            .query_one(&format!("SELECT jwt_public_jwks({})::text", lit(&private)), &[])
            .unwrap()
            .get::<_, String>(0);
        su.batch_execute(&format!(
            "DELETE FROM test_keys; INSERT INTO test_keys VALUES ({});
             ALTER DATABASE app SET pg_jwt.jwks = {p};
             ALTER DATABASE app SET pg_jwt.audience = {a};
             ALTER DATABASE app SET pg_jwt.issuer = {i};",
            lit(&private),
            p = lit(&public),
            a = lit(AUDIENCE),
            i = lit(ISSUER)
        ))
        .unwrap();
    });
}

/// The public key set of the test key (`setup`), for other databases' `pg_jwt.jwks`.
pub fn public_jwks(su: &mut Client) -> String {
    su.query_one("SELECT jwt_public_jwks(key)::text FROM test_keys", &[])
        .unwrap()
        .get(0)
}

/// A token for tenant `i` (valid `ttl` seconds) with extra claims.
pub fn token(su: &mut Client, i: usize, ttl: i64, extra: &str) -> String {
    let sql = format!(
        "SELECT jwt_sign(jsonb_build_object('sub', 'user-{i}', 'tenant_id', {t}, 'aud', {a}, 'iss', {is},
                 'exp', extract(epoch FROM now())::bigint + {ttl}) || {x}::jsonb, key)
         FROM test_keys",
        t = lit(&tenant(i)),
        a = lit(AUDIENCE),
        is = lit(ISSUER),
        x = lit(if extra.is_empty() { "{}" } else { extra })
    );
    su.query_one(&sql, &[]).unwrap().get(0)
}

/// The SQLSTATE of an error, or "ok".
pub fn sqlstate<T>(r: &Result<T, postgres::Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e
            .code()
            .map(|c| c.code().to_owned())
            .unwrap_or_else(|| format!("no sqlstate: {e}")),
    }
}

/// The message (and detail) of a database error.
pub fn message<T>(r: &Result<T, postgres::Error>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(e) => match e.as_db_error() {
            Some(db) => format!("{} / {}", db.message(), db.detail().unwrap_or("")),
            None => e.to_string(),
        },
    }
}

/// `SET LOCAL` of the setting that forces parallel plans: `force_parallel_mode` up to
/// PostgreSQL 15, renamed `debug_parallel_query` in 16.
pub fn force_parallel(c: &mut Client) -> String {
    let version: i32 = c
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    let name = if version >= 160_000 {
        "debug_parallel_query"
    } else {
        "force_parallel_mode"
    };
    format!("SET LOCAL {name} = on")
}
