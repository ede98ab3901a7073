"""pg_jwt client recipe: Python with psycopg 3 and psycopg_pool.

One request = one transaction on a pooled connection. The token is handed to PostgreSQL as a
bind parameter of set_config(..., true), i.e. SET LOCAL: it is never built into SQL text, and
it ends with the transaction, so the next request on the same connection never inherits it.

Run by make test (scripts/recipes-test.sh) against the throwaway cluster: PGJWT_RECIPE_DSN is
the connection string of the application role, PGJWT_RECIPE_USERS a JSON list of
{"tenant": ..., "token": ...}. It checks tenant isolation under concurrency and exits 1 if any
request saw rows of another tenant (or none of its own).
"""
import json
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor

from psycopg_pool import ConnectionPool


def tenants_visible(pool, token):
    with pool.connection() as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('pg_jwt.token', %s, true)", (token,))
            rows = conn.execute("SELECT DISTINCT tenant_id::text FROM docs").fetchall()
    return [r[0] for r in rows]


def main():
    users = json.loads(os.environ["PGJWT_RECIPE_USERS"])
    requests = int(os.environ.get("PGJWT_RECIPE_REQUESTS", "400"))
    # prepare_threshold=None: no server-side prepared statements across transactions, which a
    # transaction-mode pooler (pgbouncer) cannot carry from one server connection to another.
    with ConnectionPool(os.environ["PGJWT_RECIPE_DSN"], min_size=4, max_size=4, open=True,
                        kwargs={"prepare_threshold": None}) as pool:

        def one(_):
            user = random.choice(users)
            return tenants_visible(pool, user["token"]) == [user["tenant"]]

        with ThreadPoolExecutor(max_workers=8) as workers:
            ok = list(workers.map(one, range(requests)))
    bad = ok.count(False)
    print(f"python (psycopg {__import__('psycopg').__version__}, psycopg_pool): {requests} requests, "
          f"8 threads on 4 pooled connections, {bad} saw another tenant's rows")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
