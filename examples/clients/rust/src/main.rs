//! pg_jwt client recipe: Rust with tokio-postgres and a deadpool-postgres pool.
//!
//! One request = one transaction on a pooled connection. The token is a bind parameter of
//! `set_config(..., true)`, i.e. `SET LOCAL`: never built into SQL text, and it ends with the
//! transaction, so the next request on the same connection never inherits it.
//!
//! Run by make test (scripts/recipes-test.sh): PGHOST/PGPORT/PGUSER/PGDATABASE select the
//! application role, PGJWT_RECIPE_USERS is a JSON list of {tenant, token}. Exits 1 if any
//! request saw rows of another tenant (or none of its own).

use deadpool_postgres::{Config, Pool, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

async fn tenants_visible(pool: &Pool, token: &str) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The *_typed calls use the unnamed statement. A named prepared statement (what
    // `execute`/`query` with SQL text make) stays on the server connection that prepared it;
    // behind a transaction-mode pooler that connection serves other clients next, and the
    // statements pile up in its memory.
    tx.execute_typed("SELECT set_config('pg_jwt.token', $1, true)", &[(&token, Type::TEXT)])
        .await?;
    let rows = tx.query_typed("SELECT DISTINCT tenant_id::text FROM docs", &[]).await?;
    tx.commit().await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[tokio::main]
async fn main() {
    let users: Vec<serde_json::Value> =
        serde_json::from_str(&std::env::var("PGJWT_RECIPE_USERS").expect("PGJWT_RECIPE_USERS")).expect("users JSON");
    let requests: usize = std::env::var("PGJWT_RECIPE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let mut cfg = Config::new();
    cfg.host = Some(env("PGHOST"));
    cfg.port = env("PGPORT").parse().ok();
    cfg.user = Some(env("PGUSER"));
    cfg.dbname = Some(env("PGDATABASE"));
    cfg.pool = Some(deadpool_postgres::PoolConfig::new(4));
    let pool = cfg.create_pool(Some(Runtime::Tokio1), NoTls).expect("pool");
    let users = Arc::new(users);
    let next = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..8)
        .map(|w| {
            let (pool, users, next, bad) = (pool.clone(), users.clone(), next.clone(), bad.clone());
            tokio::spawn(async move {
                let mut i = w;
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    i = (i * 31 + 7) % users.len();
                    let user = &users[i];
                    let seen = tenants_visible(&pool, user["token"].as_str().unwrap_or_default())
                        .await
                        .expect("request");
                    if seen != [user["tenant"].as_str().unwrap_or_default()] {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for l in loops {
        l.await.expect("request loop");
    }
    let bad = bad.load(Ordering::Relaxed);
    println!("rust (tokio-postgres, deadpool-postgres): {requests} requests, 8 tasks on 4 pooled connections, {bad} saw another tenant's rows");
    std::process::exit(if bad > 0 { 1 } else { 0 });
}
