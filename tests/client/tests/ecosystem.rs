//! Ecosystem fit: role from a claim (`jwt_set_role`) through a transaction pooler, its refusals,
//! and the claim shapes of real identity providers, each with a policy written the way that
//! provider's users write it (README, "Identity providers").

use pg_jwt_client_tests::*;
use postgres::Client;

fn roles(su: &mut Client) {
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eco_reader') THEN CREATE ROLE eco_reader; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eco_bypass') THEN CREATE ROLE eco_bypass BYPASSRLS; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eco_stranger') THEN CREATE ROLE eco_stranger; END IF;
         END $$;
         GRANT eco_reader, eco_bypass TO app;",
    )
    .unwrap();
    // Server-wide and reloaded: sessions opened earlier (pgbouncer's server connections) see it
    // too, which a database-level setting would reach only in new sessions.
    su.batch_execute("ALTER SYSTEM SET pg_jwt.allowed_roles = 'eco_reader, eco_bypass, eco_stranger, postgres'")
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
}

/// (`jwt_set_role()` result or SQLSTATE, current_user inside, current_user after COMMIT).
fn set_role(c: &mut Client, token: &str) -> (String, String, String) {
    c.batch_execute("BEGIN").unwrap();
    c.execute("SELECT set_config('pg_jwt.token', $1, true)", &[&token])
        .map(|_| ())
        .unwrap();
    let r = c.query_one("SELECT jwt_set_role()", &[]);
    let (result, inside) = match &r {
        Ok(row) => (
            row.get::<_, String>(0),
            c.query_one("SELECT current_user::text", &[]).unwrap().get(0),
        ),
        Err(_) => {
            eprintln!("jwt_set_role: {}", message(&r));
            (sqlstate(&r), String::new())
        }
    };
    c.batch_execute(if r.is_ok() { "COMMIT" } else { "ROLLBACK" }).unwrap();
    let after: String = c.query_one("SELECT current_user::text", &[]).unwrap().get(0);
    (result, inside, after)
}

#[test]
fn e1_role_from_a_claim_lasts_one_transaction_through_pgbouncer() {
    setup();
    let mut su = superuser();
    roles(&mut su);
    let t = token(&mut su, 1, 600, r#"{"role": "eco_reader"}"#);
    let mut c = connect_pgbouncer();
    for i in 0..20 {
        let (result, inside, after) = set_role(&mut c, &t);
        assert_eq!(result, "eco_reader", "round {i}");
        assert_eq!(inside, "eco_reader", "round {i}");
        assert_eq!(after, "app", "the role survived the transaction (round {i})");
    }
}

#[test]
fn e2_role_switching_refuses_superusers_bypassrls_strangers_and_unlisted_roles() {
    setup();
    let mut su = superuser();
    roles(&mut su);
    let mut c = app();
    for (role, why) in [
        ("postgres", "a superuser, even listed"),
        ("eco_bypass", "a BYPASSRLS role, even listed and granted"),
        ("eco_stranger", "listed, but app is not a member"),
        ("pg_read_all_data", "not listed"),
        ("no_such_role_here", "not listed, does not exist"),
    ] {
        let t = token(&mut su, 1, 600, &format!(r#"{{"role": "{role}"}}"#));
        let (result, _, after) = set_role(&mut c, &t);
        assert_eq!(result, "42501", "{why}");
        assert_eq!(after, "app");
    }
    // Not a string, or absent.
    for extra in [r#"{"role": ["eco_reader"]}"#, r#"{"no_role": 1}"#] {
        let t = token(&mut su, 1, 600, extra);
        assert_eq!(set_role(&mut c, &t).0, "42501", "{extra}");
    }
    // The message names the reason, never the claim's value.
    let t = token(&mut su, 1, 600, r#"{"role": "eco_bypass"}"#);
    c.batch_execute(&format!("BEGIN; SET LOCAL pg_jwt.token = {}", lit(&t)))
        .unwrap();
    let r = c.query_one("SELECT jwt_set_role()", &[]);
    assert!(!message(&r).contains("eco_bypass"), "{}", message(&r));
    c.batch_execute("ROLLBACK").unwrap();
}

/// One identity provider: its claims (beside sub, tenant_id, aud, iss, exp of the test token),
/// the policy its users write, and the claims of another tenant's user.
struct Provider {
    name: &'static str,
    mine: &'static str,
    theirs: &'static str,
    policy: &'static str,
}

const PROVIDERS: &[Provider] = &[
    Provider {
        name: "auth0",
        // Auth0: custom claims must be namespaced with a URL.
        mine: r#"{"https://myapp.example.com/tenant": "acme", "https://myapp.example.com/roles": ["editor"], "azp": "my-client"}"#,
        theirs: r#"{"https://myapp.example.com/tenant": "globex", "https://myapp.example.com/roles": ["editor"]}"#,
        policy: "tenant = jwt_claim('https://myapp.example.com/tenant')
                 AND 'editor' = ANY (jwt_claim_array('https://myapp.example.com/roles'))",
    },
    Provider {
        name: "keycloak",
        // Keycloak: realm roles in realm_access.roles, client roles in resource_access.<client>.roles,
        // user attributes mapped to claims.
        mine: r#"{"tenant": "acme", "realm_access": {"roles": ["offline_access", "editor"]}, "resource_access": {"docs-api": {"roles": ["read"]}}, "preferred_username": "alice"}"#,
        theirs: r#"{"tenant": "globex", "realm_access": {"roles": ["editor"]}, "resource_access": {"docs-api": {"roles": ["read"]}}}"#,
        policy: "tenant = jwt_claim('tenant')
                 AND 'editor' = ANY (jwt_claim_array('realm_access', 'roles'))
                 AND 'read' = ANY (jwt_claim_array('resource_access', 'docs-api', 'roles'))",
    },
    Provider {
        name: "cognito",
        // Cognito: groups in cognito:groups, custom attributes as custom:<name>.
        mine: r#"{"cognito:groups": ["staff"], "custom:tenant": "acme", "token_use": "id"}"#,
        theirs: r#"{"cognito:groups": ["staff"], "custom:tenant": "globex", "token_use": "id"}"#,
        policy: "tenant = jwt_claim('custom:tenant') AND 'staff' = ANY (jwt_claim_array('cognito:groups'))",
    },
    Provider {
        name: "entra",
        // Entra ID: the directory (tenant) id in tid, app roles in roles, the user in oid.
        mine: r#"{"tid": "acme", "roles": ["Docs.Read"], "oid": "5f2b6c1e-0000-4000-8000-000000000001"}"#,
        theirs: r#"{"tid": "globex", "roles": ["Docs.Read"], "oid": "5f2b6c1e-0000-4000-8000-000000000002"}"#,
        policy: "tenant = jwt_claim('tid') AND 'Docs.Read' = ANY (jwt_claim_array('roles'))",
    },
    Provider {
        name: "firebase",
        // Firebase / Google Identity Platform: multi-tenancy in firebase.tenant, user_id = sub.
        mine: r#"{"user_id": "user-1", "firebase": {"sign_in_provider": "password", "tenant": "acme"}}"#,
        theirs: r#"{"user_id": "user-2", "firebase": {"sign_in_provider": "google.com", "tenant": "globex"}}"#,
        policy: "tenant = jwt_claim('firebase', 'tenant') AND jwt_claim('firebase', 'sign_in_provider') IS NOT NULL",
    },
    Provider {
        name: "supabase",
        // Supabase: role 'authenticated', tenant in app_metadata (only the server can write it),
        // session_id.
        mine: r#"{"role": "authenticated", "app_metadata": {"tenant": "acme", "provider": "email"}, "session_id": "5a3c"}"#,
        theirs: r#"{"role": "authenticated", "app_metadata": {"tenant": "globex"}, "session_id": "9b1d"}"#,
        policy: "tenant = jwt_claim('app_metadata', 'tenant') AND jwt_claim('role') = 'authenticated'",
    },
];

#[test]
fn e3_provider_claim_shapes_with_their_idiomatic_policies() {
    setup();
    let mut su = superuser();
    let mut c = app();
    for p in PROVIDERS {
        let table = format!("eco_{}", p.name);
        su.batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (tenant text, body text);
             INSERT INTO {table} VALUES ('acme', 'acme doc'), ('globex', 'globex doc');
             ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             CREATE POLICY p ON {table} USING ({});
             GRANT SELECT ON {table} TO app;",
            p.policy
        ))
        .unwrap();
        for (claims, want) in [(p.mine, "acme doc"), (p.theirs, "globex doc")] {
            let t = token(&mut su, 1, 600, claims);
            c.batch_execute(&format!("BEGIN; SET LOCAL pg_jwt.token = {}", lit(&t)))
                .unwrap();
            let rows: Vec<String> = c
                .query(&format!("SELECT body FROM {table}"), &[])
                .unwrap_or_else(|e| panic!("{}: {e}", p.name))
                .iter()
                .map(|r| r.get(0))
                .collect();
            c.batch_execute("COMMIT").unwrap();
            assert_eq!(rows, vec![want.to_owned()], "{}", p.name);
        }
        // Without a token: nothing.
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{} without a token", p.name);
        su.batch_execute(&format!("DROP TABLE {table}")).unwrap();
    }
}
