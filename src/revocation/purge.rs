//! Purging expired revocations in the background: every `pg_jwt.revocation_purge_interval`
//! seconds the key fetcher (which connects to no database) calls `launch_if_due`, which starts
//! one short-lived worker per database whose revocations are in use; each deletes the expired
//! rows and exits.

use crate::{clock, gucs};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;

/// Every `pg_jwt.revocation_purge_interval` seconds (on a primary), starts one short-lived
/// worker per database whose revocations are in use (the databases with a revocation filter,
/// `filter::databases`): it deletes the expired ones (the condition of
/// `jwt_purge_revocations()`) and exits. This worker itself never connects to a database; nothing here waits for them.
pub fn launch_if_due(last_purge: &mut i64) {
    let interval = gucs::revocation_purge_interval();
    let now = clock::now_unix();
    // SAFETY: reads shared memory; callable from any process attached to it.
    if interval <= 0 || now - *last_purge < interval || unsafe { pg_sys::RecoveryInProgress() } {
        return;
    }
    *last_purge = now;
    for db in super::filter::databases() {
        let started = BackgroundWorkerBuilder::new("pg_jwt revocation purge")
            .set_type("pg_jwt revocation purge")
            .set_library("pg_jwt")
            .set_function("pg_jwt_revocation_purge_main")
            .set_argument(Some(pg_sys::Datum::from(db.to_u32())))
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(None)
            .load_dynamic();
        if started.is_err() {
            pgrx::warning!("pg_jwt: could not start the revocation purge (max_worker_processes too low?); retrying at the next interval");
        }
    }
}

/// The purge worker: connects to one database as the bootstrap superuser, deletes the expired
/// revocations if pg_jwt is installed there, and exits.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_jwt_revocation_purge_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    BackgroundWorker::transaction(|| {
        // The table itself, found through its extension membership (pg_depend) and named by
        // its current schema and name, never by a name a database owner can take over (a
        // renamed schema and a planted jwt_revocations with triggers would otherwise run them
        // as this superuser). The SHARE lock on pg_namespace holds every schema rename, creation
        // and drop of this database until the transaction ends, so the name resolved here is the
        // one the DELETE resolves. Same condition as jwt_purge_revocations().
        // Bounded lock waits, whatever the database's settings say: any role that owns a schema
        // can hold a lock on pg_namespace (an open ALTER SCHEMA ... RENAME) for as long as it
        // likes, and a purge waiting behind it would stall every schema change queued after it
        // and keep a worker slot. Past a second the lock wait raises an ERROR, which ends this
        // worker (logged; its transaction aborted) and the next interval tries again. (No
        // statement_timeout: only a client backend's statement start arms that timer.)
        if pgrx::Spi::run("SET LOCAL lock_timeout = '1s'").is_err()
            || pgrx::Spi::run("LOCK TABLE pg_catalog.pg_namespace IN SHARE MODE").is_err()
        {
            return;
        }
        let target = pgrx::Spi::get_one::<String>(concat!(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) ",
            super::member_table_from!()
        ));
        if let Ok(Some(target)) = target {
            let purged = pgrx::Spi::get_one::<i64>(&format!(
                "WITH gone AS (DELETE FROM {target} WHERE expires OPERATOR(pg_catalog.<) \
                 (pg_catalog.now() OPERATOR(pg_catalog.-) '{} seconds'::pg_catalog.interval) RETURNING 1) \
                 SELECT pg_catalog.count(*) FROM gone",
                gucs::MAX_LEEWAY
            ));
            if let Ok(Some(n)) = purged {
                if n > 0 {
                    pgrx::log!("pg_jwt: purged {n} expired revocations");
                }
            }
        }
    });
}
