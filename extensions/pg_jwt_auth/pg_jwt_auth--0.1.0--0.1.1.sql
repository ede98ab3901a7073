-- pg_jwt_auth 0.1.0 -> 0.1.1 (one line per change):
-- the install script quotes pg_jwt's schema name with format's %I inside a %L-quoted body (0.1.0 let a hostile schema name run SQL as the installing superuser); the functions it creates are unchanged, so there is nothing to alter here.
\echo Use "ALTER EXTENSION pg_jwt_auth UPDATE TO '0.1.1'" to load this file. \quit
