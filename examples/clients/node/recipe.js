// pg_jwt client recipe: Node.js with node-postgres (pg.Pool).
//
// One request = one transaction on a pooled client. The token is a bind parameter of
// set_config(..., true), i.e. SET LOCAL: never built into SQL text, and it ends with the
// transaction, so the next request on the same connection never inherits it.
//
// Run by make test (scripts/recipes-test.sh): PGHOST/PGPORT/PGUSER/PGDATABASE select the
// application role, PGJWT_RECIPE_USERS is a JSON list of {tenant, token}. Exits 1 if any request
// saw rows of another tenant (or none of its own).
'use strict';
const { Pool } = require('pg');

async function tenantsVisible(pool, token) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('pg_jwt.token', $1, true)", [token]);
    const { rows } = await client.query('SELECT DISTINCT tenant_id::text AS tenant FROM docs');
    await client.query('COMMIT');
    return rows.map((r) => r.tenant);
  } catch (e) {
    await client.query('ROLLBACK');
    throw e;
  } finally {
    client.release();
  }
}

async function main() {
  const users = JSON.parse(process.env.PGJWT_RECIPE_USERS);
  const requests = Number(process.env.PGJWT_RECIPE_REQUESTS || 400);
  const pool = new Pool({ max: 4 });
  let bad = 0;
  let next = 0;
  // 8 concurrent request loops sharing 4 connections.
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < requests) {
      next += 1;
      const user = users[Math.floor(Math.random() * users.length)];
      const seen = await tenantsVisible(pool, user.token);
      if (seen.length !== 1 || seen[0] !== user.tenant) bad += 1;
    }
  }));
  await pool.end();
  console.log(`node (pg ${require('pg/package.json').version}, pg.Pool): ${requests} requests, 8 loops on 4 pooled connections, ${bad} saw another tenant's rows`);
  process.exit(bad ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
