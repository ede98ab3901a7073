//! Revocation: a denylist in the extension's table `jwt_revocations` (durable, transactional,
//! replicated), consulted once per token per change of the list, never per row. This folder:
//! - `mod.rs` (here): the table, its triggers and the revoking functions (SQL), the transaction
//!   callbacks, and the per-token lookup (`is_revoked`);
//! - `filter.rs`: the Bloom filter of the table in shared memory, which answers "certainly not
//!   revoked" for nearly every token without opening the table;
//! - `purge.rs`: the background purge of expired rows (launched by the key fetcher's loop).
//!
//! - Statement-level triggers on the table mark the transaction (before and after each
//!   statement); at commit a transaction callback bumps the shared generation
//!   (`generations::bump_shared_generation`), which every backend compares on its per-row path:
//!   their cached verifications are void at the next access, and each token is verified again,
//!   revocation check included. A rolled-back revocation bumps nothing, and nothing a
//!   transaction saw of its own uncommitted changes is kept. A transaction that changes
//!   revocations cannot be prepared (two-phase commit would make it visible without the bump):
//!   it is refused at PREPARE (0A000).
//! - The check reads the table with a snapshot of the present (not the statement's, which in
//!   REPEATABLE READ could predate the revocation; in parallel mode a fresh catalog snapshot)
//!   straight from its primary-key index: at most three B-tree probes, no SQL (the application
//!   role has no privilege on the table, and this internal read needs none).
//! - On a hot standby the primary's commits are replayed without this backend's callback; the
//!   key fetcher bumps the generation there whenever replay has advanced (see `jwks::fetcher`).

pub mod filter;
pub mod purge;

use crate::errors;
use pg_jwt_core::claims::{Body, Claim, ClaimSet};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::c_void;

/// What a verified token is checked against: its claims in the database encoding (the encoding
/// the revoking functions stored their arguments in). A string claim the database encoding cannot
/// represent refuses the token (`22P05`): no row of the table could hold it, so no revocation
/// could ever match it.
pub struct Identity<'a> {
    pub jti: Option<std::borrow::Cow<'a, [u8]>>,
    pub sub: Option<std::borrow::Cow<'a, [u8]>>,
    pub sid: Option<std::borrow::Cow<'a, [u8]>>,
    /// `iat` in Unix seconds, if present.
    pub iat: Option<f64>,
    /// The provider that verified the token: a row scoped to another provider does not revoke
    /// it (the same `sub` from two issuers is two people); a row for every provider does.
    pub provider: &'a str,
}

/// What the revocation check looks up for verified claims.
fn identity_of<'a>(claims: &'a Body, provider: &'a str, session_claim: &str) -> Result<Identity<'a>, ErrorReport> {
    Ok(Identity {
        jti: server_text(claims.claim("jti"))?,
        sub: server_text(claims.claim("sub"))?,
        sid: server_text(claims.claim(session_claim))?,
        iat: match claims.claim("iat") {
            Some(Claim::Number(n)) => pg_jwt_core::claims::number_value(n),
            _ => None,
        },
        provider,
    })
}

/// Whether `identity_of` the claims would hold a `jti`, `sub` or session id (the same test,
/// stopping at the first).
fn names_someone(claims: &Body, session_claim: &str) -> Result<bool, ErrorReport> {
    let mut found = false;
    for name in ["jti", "sub", session_claim] {
        found |= server_text(claims.claim(name))?.is_some();
    }
    Ok(found)
}

/// A string claim in the database encoding; `None` when absent or not a string (verification
/// refused `sub`, `jti` and the session claim of another type); an error (`22P05`) when the
/// database encoding cannot represent it.
fn server_text(v: Option<Claim<'_>>) -> Result<Option<std::borrow::Cow<'_, [u8]>>, ErrorReport> {
    match v {
        Some(Claim::String(s)) => crate::encoding::to_server(s).map(Some),
        _ => Ok(None),
    }
}

thread_local! {
    /// The table's OID once resolved (InvalidOid before). Checked on every open: a dropped and
    /// re-created extension is resolved again.
    static TABLE_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    /// The shared generation at which the table was last found missing (an extension still at
    /// 0.1.0 has none): not looked for again until the generation changes.
    static ABSENT_AT: Cell<Option<u64>> = const { Cell::new(None) };
    /// The shared generation at which `TABLE_OID` was last opened and found to be the table.
    /// Every committed write to any `jwt_revocations` bumps the generation (statement trigger),
    /// so while it stays, no table this OID could have been replaced by holds a row the filter
    /// of this OID lacks: the filter alone may answer "not revoked".
    static VALIDATED_AT: Cell<Option<u64>> = const { Cell::new(None) };
    /// The current transaction changed revocations.
    static DIRTY: Cell<bool> = const { Cell::new(false) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// (shared generation, whether the list was empty) as last probed with the latest snapshot.
    /// Any change of the list bumps the generation, so while it stays, an empty list needs no
    /// lookup and a non-empty one needs no second probe.
    static PROBED: Cell<Option<(u64, bool)>> = const { Cell::new(None) };
    /// This backend's counters (`jwt_cache_stats()`): lookups of a token with an identity,
    /// answered by the shared filter alone, and B-tree probes made.
    static COUNTS: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
}

fn count(lookup: u64, filtered: u64, probes: u64) {
    crate::stats::count_revocation(lookup, filtered, probes);
    COUNTS.with(|c| {
        let (a, b, p) = c.get();
        c.set((a + lookup, b + filtered, p + probes));
    });
}

/// (lookups, answered by the filter alone, index probes) in this backend.
pub fn stats() -> (u64, u64, u64) {
    COUNTS.with(Cell::get)
}

/// The `FROM ... WHERE` part of every query that finds the extension's own `jwt_revocations`:
/// the relation named so that is a member of extension pg_jwt (`pg_depend`, deptype `e`), with
/// `c` its `pg_class` row and `n` its schema's `pg_namespace` row. Every name qualified.
macro_rules! member_table_from {
    () => {
        "FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_depend d ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass \
         AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e' \
         AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid \
         AND c.relname OPERATOR(pg_catalog.=) 'jwt_revocations' \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt'"
    };
}
pub(crate) use member_table_from;

/// Column numbers of `jwt_revocations` (1-based, as created by the extension script).
const ATT_ISSUED_BEFORE: i32 = 3;
/// `provider` (0.3.0): '' for every provider, else the name of the one provider a row revokes
/// for. A 0.2.0 table (before ALTER EXTENSION UPDATE) has none: every row is for every provider.
const ATT_PROVIDER: i32 = 7;

/// `pg_depend`, its index on the referenced object, and the columns read here: fixed numbers of
/// the system catalog (`catalog/pg_depend_d.h`, the same in PostgreSQL 15, 16 and 18).
const DEPEND_RELATION: u32 = 2608;
const DEPEND_REFERENCE_INDEX: u32 = 2674;
const DEPEND_CLASSID: i32 = 1;
const DEPEND_OBJID: i32 = 2;
const DEPEND_REFCLASSID: i16 = 4;
const DEPEND_REFOBJID: i16 = 5;
const DEPEND_DEPTYPE: i32 = 7;

/// Finds the extension's own table through its membership (the relation named `jwt_revocations`
/// that is a member of extension pg_jwt: `pg_depend`, deptype `e`, as `member_table_from!`),
/// never by name alone: a table called `jwt_revocations` that someone with CREATE on the schema
/// planted (in a database whose catalog is still at 0.1.0, which has none) is not ours. It reads
/// the catalogs directly: the
/// extension's OID by name, then `pg_depend` through its index on the referenced object. No SQL
/// is parsed, planned or run, no operator or function is looked up by name, and no privilege
/// is needed (nothing a user created can take part). Run once per backend, at its first
/// token: the same lookup through SPI cost about 1.5 ms there (parsing and planning a
/// four-table join in a fresh backend: `perf`, a first `jwt_claim` against one without a
/// token), which a 5,000-token loop (`make bench`, section 4d) counted as 0.3 µs per token.
///
/// # Safety
/// Call inside a transaction, from a SQL function.
unsafe fn resolve_table() -> pg_sys::Oid {
    let extension = pg_sys::get_extension_oid(c"pg_jwt".as_ptr(), true);
    if extension == pg_sys::InvalidOid {
        return pg_sys::InvalidOid;
    }
    let depend = pg_sys::table_open(pg_sys::Oid::from(DEPEND_RELATION), pg_sys::AccessShareLock as i32);
    // SAFETY (of the zeroed keys): ScanKeyData is plain data, every field set by ScanKeyInit.
    let mut keys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
    pg_sys::ScanKeyInit(
        &mut keys[0],
        DEPEND_REFCLASSID,
        pg_sys::BTEqualStrategyNumber as u16,
        pg_sys::Oid::from(pg_sys::F_OIDEQ),
        pg_sys::Datum::from(pg_sys::ExtensionRelationId),
    );
    pg_sys::ScanKeyInit(
        &mut keys[1],
        DEPEND_REFOBJID,
        pg_sys::BTEqualStrategyNumber as u16,
        pg_sys::Oid::from(pg_sys::F_OIDEQ),
        pg_sys::Datum::from(extension),
    );
    let scan = pg_sys::systable_beginscan(
        depend,
        pg_sys::Oid::from(DEPEND_REFERENCE_INDEX),
        true,
        std::ptr::null_mut(),
        2,
        keys.as_mut_ptr(),
    );
    let desc = (*depend).rd_att;
    let mut found = pg_sys::InvalidOid;
    loop {
        let tuple = pg_sys::systable_getnext(scan);
        if tuple.is_null() {
            break;
        }
        // pg_depend's columns are NOT NULL; a null reads as "not this row" all the same.
        let column = |attnum: i32| {
            let mut isnull = false;
            let d = pg_sys::heap_getattr(tuple, attnum, desc, &mut isnull);
            (!isnull).then_some(d)
        };
        let (Some(class), Some(object), Some(deptype)) =
            (column(DEPEND_CLASSID), column(DEPEND_OBJID), column(DEPEND_DEPTYPE))
        else {
            continue;
        };
        if pg_sys::Oid::from(class.value() as u32) != pg_sys::RelationRelationId
            || deptype.value() as u8 != pg_sys::DependencyType::DEPENDENCY_EXTENSION as u8
        {
            continue;
        }
        let relation = pg_sys::Oid::from(object.value() as u32);
        let name = pg_sys::get_rel_name(relation);
        if name.is_null() {
            continue;
        }
        let ours = std::ffi::CStr::from_ptr(name).to_bytes() == b"jwt_revocations";
        pg_sys::pfree(name.cast());
        if ours {
            found = relation;
            break;
        }
    }
    pg_sys::systable_endscan(scan);
    pg_sys::table_close(depend, pg_sys::AccessShareLock as i32);
    found
}

/// The table and its primary-key index, opened with AccessShareLock (closed by `Opened::drop`).
struct Opened {
    table: pg_sys::Relation,
    index: pg_sys::Relation,
    /// The 0.3.0 shape: the primary key is (kind, value, provider).
    scoped: bool,
}

impl Drop for Opened {
    fn drop(&mut self) {
        // SAFETY: both were opened by `open` with this lock mode and are closed once (also when
        // a PostgreSQL error unwinds through here: closing raises nothing).
        unsafe {
            pg_sys::index_close(self.index, pg_sys::AccessShareLock as i32);
            pg_sys::relation_close(self.table, pg_sys::AccessShareLock as i32);
        }
    }
}

/// Opens the table (None when this database's extension has none; an error, 55000, when it
/// has one that is not as the extension script created it).
///
/// # Safety
/// Call inside a transaction, from a SQL function.
unsafe fn open(generation: u64) -> Result<Option<Opened>, ErrorReport> {
    for attempt in 0..2 {
        let mut oid = TABLE_OID.with(Cell::get);
        if oid == pg_sys::InvalidOid || attempt == 1 {
            if attempt == 0 && ABSENT_AT.with(Cell::get) == Some(generation) {
                return Ok(None);
            }
            oid = resolve_table();
            TABLE_OID.with(|c| c.set(oid));
            if oid == pg_sys::InvalidOid {
                ABSENT_AT.with(|c| c.set(Some(generation)));
                return Ok(None);
            }
        }
        let table = pg_sys::try_relation_open(oid, pg_sys::AccessShareLock as i32);
        if table.is_null() {
            continue;
        }
        // An OID reused by another relation after a DROP EXTENSION: check it is ours.
        let name = std::ffi::CStr::from_ptr((*(*table).rd_rel).relname.data.as_ptr());
        if name.to_bytes() != b"jwt_revocations"
            || (*(*table).rd_rel).relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
        {
            pg_sys::relation_close(table, pg_sys::AccessShareLock as i32);
            continue;
        }
        let list = pg_sys::RelationGetIndexList(table);
        pg_sys::list_free(list);
        let index_oid = (*table).rd_pkindex;
        if index_oid == pg_sys::InvalidOid {
            // Ours, without its primary key: fail closed (never "no table, not revoked").
            pg_sys::relation_close(table, pg_sys::AccessShareLock as i32);
            return Err(errors::prerequisite(
                "jwt_revocations is not as this version of pg_jwt created it: revocations cannot be checked",
            )
            .set_hint("Reinstall the extension, or run ALTER EXTENSION pg_jwt UPDATE."));
        }
        let index = pg_sys::index_open(index_oid, pg_sys::AccessShareLock as i32);
        let mut opened = Opened {
            table,
            index,
            scoped: false,
        };
        if !opened.has_expected_shape() {
            // Ours by pg_depend, yet not as the extension script created it: read nothing
            // (a wrong column type read as text would be a wild pointer) and refuse.
            drop(opened);
            return Err(errors::prerequisite(
                "jwt_revocations is not as this version of pg_jwt created it: revocations cannot be checked",
            )
            .set_hint("Reinstall the extension, or run ALTER EXTENSION pg_jwt UPDATE."));
        }
        VALIDATED_AT.with(|c| c.set(Some(generation)));
        return Ok(Some(opened));
    }
    Ok(None)
}

/// Whether a relation's first three columns are (text, text, timestamptz): what `with_row` and
/// the probes read.
///
/// # Safety
/// Inside a transaction; `rel` is open.
unsafe fn has_revocation_columns(rel: pg_sys::Relation) -> bool {
    let oid = (*rel).rd_id;
    pg_sys::get_atttype(oid, 1) == pg_sys::TEXTOID
        && pg_sys::get_atttype(oid, 2) == pg_sys::TEXTOID
        && pg_sys::get_atttype(oid, ATT_ISSUED_BEFORE as pg_sys::AttrNumber) == pg_sys::TIMESTAMPTZOID
}

impl Opened {
    /// The columns `with_row` and the probes read have the types they read them as, and the
    /// primary key is the B-tree on (kind, value) the probes scan.
    ///
    /// # Safety
    /// Inside a transaction.
    unsafe fn has_expected_shape(&mut self) -> bool {
        let index = &*self.index;
        let form = index.rd_index;
        if form.is_null() || !has_revocation_columns(self.table) {
            return false;
        }
        let n = (*form).indnkeyatts;
        if !(n == 2 || n == 3) || (*form).indkey.dim1 < i32::from(n) {
            return false;
        }
        // SAFETY: an int2vector of dim1 >= n entries (checked above).
        let keys = (*form).indkey.values.as_slice(n as usize);
        let scoped = n == 3
            && keys.get(2) == Some(&(ATT_PROVIDER as i16))
            && pg_sys::get_atttype((*self.table).rd_id, ATT_PROVIDER as pg_sys::AttrNumber) == pg_sys::TEXTOID;
        if n == 3 && !scoped {
            return false;
        }
        self.scoped = scoped;
        (*index.rd_rel).relam == pg_sys::BTREE_AM_OID
            && (*form).indisunique
            && keys.first() == Some(&1)
            && keys.get(1) == Some(&2)
    }

    /// Whether a row (kind, value) visible in `snapshot` is for `provider` (or every provider)
    /// and `f` says it revokes; each such row is read before the scan ends.
    ///
    /// # Safety
    /// `snapshot` is valid for the call.
    unsafe fn probe(
        &self,
        snapshot: pg_sys::Snapshot,
        kind: &str,
        value: &[u8],
        provider: &str,
        mut f: impl FnMut(pg_sys::HeapTuple) -> bool,
    ) -> bool {
        let collations = (*self.index).rd_indcollation;
        let mut keys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
        let datums = [
            pg_sys::cstring_to_text_with_len(kind.as_ptr().cast(), kind.len() as i32),
            pg_sys::cstring_to_text_with_len(value.as_ptr().cast(), value.len() as i32),
        ];
        for (i, d) in datums.iter().enumerate() {
            // The index's own collation: the B-tree is ordered by it.
            pg_sys::ScanKeyEntryInitialize(
                &mut keys[i],
                0,
                (i + 1) as pg_sys::AttrNumber,
                pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::InvalidOid,
                *collations.add(i),
                pg_sys::Oid::from(pg_sys::F_TEXTEQ),
                pg_sys::Datum::from(*d),
            );
        }
        count(0, 0, 1);
        let desc = (*self.table).rd_att;
        let scan = pg_sys::systable_beginscan(self.table, (*self.index).rd_id, true, snapshot, 2, keys.as_mut_ptr());
        let mut found = false;
        // One row per provider scope of (kind, value) at most: a short scan.
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            if self.scoped {
                let mut isnull = false;
                let d = pg_sys::heap_getattr(tuple, ATT_PROVIDER, desc, &mut isnull);
                if !isnull {
                    let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                    let scope = pgrx::varlena::varlena_to_byte_slice(v);
                    if !scope.is_empty() && scope != provider.as_bytes() {
                        continue;
                    }
                }
            }
            if f(tuple) {
                found = true;
                break;
            }
        }
        pg_sys::systable_endscan(scan);
        found
    }

    /// The shared filter of this table, built first if this backend is the one to build it (see
    /// `filter`); None: probe the index.
    ///
    /// # Safety
    /// Inside a transaction, not in parallel mode, not in recovery.
    unsafe fn filter(&self) -> Option<crate::revocation::filter::Reader> {
        use crate::revocation::filter::{find_or_claim, Found};
        let table = (*self.table).rd_id;
        let now = crate::clock::now_unix();
        let builder = match find_or_claim(pg_sys::MyDatabaseId, table, now) {
            Found::Use(reader) => return Some(reader),
            Found::Probe => return None,
            Found::Build(builder) => builder,
        };
        // SHARE waits out every transaction that wrote rows (their trigger may have set bits in
        // the slot just cleared); conditional, so that no reader ever waits for a writer: if a
        // revocation is in progress, probe now and build at a later token.
        if !pg_sys::ConditionalLockRelationOid(table, pg_sys::ShareLock as i32) {
            return None; // dropping the builder frees the slot
        }
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let scan = pg_sys::systable_beginscan(self.table, pg_sys::InvalidOid, false, snapshot, 0, std::ptr::null_mut());
        let mut rows = 0u64;
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            with_row(tuple, (*self.table).rd_att, |kind, value| builder.add(kind, value));
            rows += 1;
        }
        pg_sys::systable_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::UnlockRelationOid(table, pg_sys::ShareLock as i32);
        builder.finish(rows, now);
        match find_or_claim(pg_sys::MyDatabaseId, table, now) {
            Found::Use(reader) => Some(reader),
            _ => None,
        }
    }

    /// Whether the table has any row visible in `snapshot`.
    ///
    /// # Safety
    /// `snapshot` is valid for the call.
    unsafe fn is_empty(&self, snapshot: pg_sys::Snapshot) -> bool {
        let scan = pg_sys::systable_beginscan(self.table, (*self.index).rd_id, true, snapshot, 0, std::ptr::null_mut());
        let empty = pg_sys::systable_getnext(scan).is_null();
        pg_sys::systable_endscan(scan);
        empty
    }
}

/// The answer of one lookup.
pub struct Lookup {
    pub revoked: bool,
    /// Whether the answer may be kept beyond this statement: not when it was found in parallel
    /// mode, nor by a transaction that changed the list itself (see `is_revoked`).
    pub fresh: bool,
}

/// `iat` (Unix seconds) as a timestamptz (microseconds since 2000-01-01), as `to_timestamp`.
fn iat_timestamptz(iat: f64) -> i64 {
    // `as` saturates: a far-out iat compares as the earliest or latest time.
    ((iat - crate::clock::POSTGRES_EPOCH_UNIX as f64) * 1_000_000.0).round() as i64
}

/// A copy of the latest committed snapshot, registered for as long as this lives (a probe
/// made with it is not disturbed by a `GetLatestSnapshot` elsewhere, such as the filter build's,
/// which overwrites PostgreSQL's one static latest snapshot).
struct Latest(pg_sys::Snapshot);

impl Latest {
    /// Outside parallel mode, PostgreSQL's latest snapshot. In parallel mode (a worker, or a
    /// leader while its workers run) PostgreSQL refuses `GetLatestSnapshot` and the active
    /// snapshot may be the transaction's (REPEATABLE READ, SERIALIZABLE), older than a
    /// revocation a serial plan would see: there a new catalog snapshot is taken instead, an
    /// MVCC snapshot of the present that parallel mode allows (every worker reads catalogs with
    /// one), after dropping the cached one so that it is not older than this call.
    ///
    /// # Safety
    /// Inside a transaction.
    unsafe fn take(table: pg_sys::Oid, parallel: bool) -> Latest {
        let snapshot = if parallel {
            pg_sys::InvalidateCatalogSnapshot();
            pg_sys::GetCatalogSnapshot(table)
        } else {
            pg_sys::GetLatestSnapshot()
        };
        Latest(pg_sys::RegisterSnapshot(snapshot))
    }
}

impl Drop for Latest {
    fn drop(&mut self) {
        // SAFETY: registered by `take` in this transaction and unregistered once, also when a
        // PostgreSQL error unwinds through here (before the transaction aborts).
        unsafe { pg_sys::UnregisterSnapshot(self.0) }
    }
}

/// Whether the current transaction changed `jwt_revocations` (a statement trigger fired). While
/// it has, no revocation verdict and no "the list is empty" result may outlive the statement:
/// the lookup sees this transaction's own uncommitted changes, which a rollback undoes without
/// bumping any generation.
pub fn changed_in_this_transaction() -> bool {
    DIRTY.with(Cell::get)
}

/// Whether the token is revoked. Identities are the token's own claims in the database
/// encoding; the table stores what the revoking functions were given, in the database encoding.
/// `generation` is the shared generation the caller read before this call (and caches its
/// result under, when the result says `fresh`).
///
/// The lookup reads the primary-key index directly (at most three B-tree probes, no executor,
/// no SQL), with a snapshot of the present (`Latest`, in parallel plans too: under REPEATABLE
/// READ a serial and a parallel plan see the same revocations), bypassing privileges as the
/// extension's own internal read: the application role has none on the table.
pub fn is_revoked(claims: &Body, provider: &str, session_claim: &str, generation: u64) -> Result<Lookup, ErrorReport> {
    // Changed by this transaction: nothing of what follows may be kept (see
    // `changed_in_this_transaction`).
    let dirty = changed_in_this_transaction();
    let probed = PROBED.with(Cell::get);
    if !dirty && probed == Some((generation, true)) {
        // Seen empty at this generation: a revocation committed since would have bumped it.
        // The common case (an empty list) reads no more of the claims than whether they name
        // someone (what the lookup counts), without building the identity.
        if names_someone(claims, session_claim)? {
            count(1, 0, 0);
        }
        return Ok(Lookup {
            revoked: false,
            fresh: true,
        });
    }
    let who = identity_of(claims, provider, session_claim)?;
    if who.jti.is_none() && who.sub.is_none() && who.sid.is_none() {
        return Ok(Lookup {
            revoked: false,
            fresh: true,
        });
    }
    count(1, 0, 0);
    // SAFETY: plain reads of backend and shared state.
    let (parallel, recovery) = unsafe { (pg_sys::IsInParallelMode(), pg_sys::RecoveryInProgress()) };
    // Kept beyond this statement only when seen outside parallel mode (a worker's backend state
    // ends with it; a leader's must not keep a worker-time answer) by a transaction that did not
    // change the list.
    let keep = !dirty && !parallel;
    let no = Lookup {
        revoked: false,
        fresh: keep,
    };
    if keep && !recovery && probed == Some((generation, false)) && VALIDATED_AT.with(Cell::get) == Some(generation) {
        // The common case once the list is not empty: the filter alone, without opening the
        // table, when it says "certainly not" for every identity (see VALIDATED_AT).
        if filter_clears(&who) {
            count(0, 1, 0);
            return Ok(no);
        }
    }
    // SAFETY: from a SQL function in a transaction; `Opened::drop` closes the relations and
    // `Latest::drop` unregisters its snapshot (also on an error); the snapshot is this call's
    // own registered copy, which nothing else changes or frees while it is in use.
    unsafe {
        let Some(opened) = open(generation)? else {
            return Ok(no);
        };
        let latest = Latest::take((*opened.table).rd_id, parallel);
        let snapshot = latest.0;
        if !keep || probed.map(|(g, _)| g) != Some(generation) {
            // An empty list (the common case) costs one probe per generation, not one per
            // token. The snapshot is taken after the caller read the generation, so a
            // revocation this probe misses bumps the generation after it. Recorded only when
            // the answer may be kept (see `keep`).
            let empty = opened.is_empty(snapshot);
            if keep {
                PROBED.with(|c| c.set(Some((generation, empty))));
            }
            if empty {
                return Ok(no);
            }
        }
        let filter = if parallel || recovery || dirty {
            // No build in parallel mode; on a standby the primary's rows arrive without
            // triggers (see `filter`); and none by a transaction that changed the
            // list: its scan would miss rows it deleted, which a rollback brings back without
            // any trigger setting their bits again.
            None
        } else {
            opened.filter()
        };
        // false: certainly not revoked under this kind (the filter never misses a row).
        let maybe = |kind: &str, value: &[u8]| filter.is_none_or(|f| f.may_contain(kind.as_bytes(), value));
        let mut revoked = false;
        if let Some(jti) = who.jti.as_deref().filter(|v| maybe("jti", v)) {
            revoked = opened.probe(snapshot, "jti", jti, who.provider, |_| true);
        }
        if !revoked {
            if let Some(sid) = who.sid.as_deref().filter(|v| maybe("sid", v)) {
                revoked = opened.probe(snapshot, "sid", sid, who.provider, |_| true);
            }
        }
        if !revoked {
            if let Some(sub) = who.sub.as_deref().filter(|v| maybe("sub", v)) {
                let desc = (*opened.table).rd_att;
                revoked = opened.probe(snapshot, "sub", sub, who.provider, |tuple| {
                    let mut isnull = false;
                    let before = pg_sys::heap_getattr(tuple, ATT_ISSUED_BEFORE, desc, &mut isnull);
                    // A token without iat counts as issued before anything; a row without
                    // issued_before cannot exist (CHECK), and would revoke nothing.
                    !isnull && who.iat.is_none_or(|iat| iat_timestamptz(iat) < before.value() as i64)
                });
            }
        }
        drop(latest);
        Ok(Lookup { revoked, fresh: keep })
    }
}

/// Whether the valid shared filter of this database's table (resolved and checked in this
/// backend) says "certainly not" for every identity of the token.
fn filter_clears(who: &Identity<'_>) -> bool {
    // SAFETY: a plain read of backend state.
    let db = unsafe { pg_sys::MyDatabaseId };
    let Some(filter) = crate::revocation::filter::peek(db, TABLE_OID.with(Cell::get), crate::clock::now_unix()) else {
        return false;
    };
    let absent = |kind: &str, v: Option<&[u8]>| v.is_none_or(|v| !filter.may_contain(kind.as_bytes(), v));
    absent("jti", who.jti.as_deref()) && absent("sid", who.sid.as_deref()) && absent("sub", who.sub.as_deref())
}

/// This backend's revocation verdicts are void (the transaction or a savepoint that changed
/// the list was rolled back): forget the "empty" probe and every per-call-site result.
fn forget_local_verdicts() {
    PROBED.with(|c| c.set(None));
    crate::generations::bump_local_generation();
}

#[pg_guard]
// SAFETY (for callers): registered with RegisterXactCallback; PostgreSQL calls it on this backend's thread.
unsafe extern "C-unwind" fn on_transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT => {
            if DIRTY.with(|d| d.replace(false)) {
                crate::generations::bump_shared_generation();
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => {
            if DIRTY.with(|d| d.replace(false)) {
                forget_local_verdicts();
            }
        }
        XACT_EVENT_PRE_PREPARE => {
            if DIRTY.with(Cell::get) {
                pgrx::ereport!(
                    pgrx::PgLogLevel::ERROR,
                    pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "pg_jwt: a transaction that changes jwt_revocations cannot be prepared (two-phase commit)",
                    "Its commit must reach every backend's cached verifications, which COMMIT PREPARED does not do."
                );
            }
        }
        _ => {}
    }
}

#[pg_guard]
// SAFETY (for callers): registered with RegisterSubXactCallback; PostgreSQL calls it on this backend's thread.
unsafe extern "C-unwind" fn on_subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    _sub: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    // A savepoint rolled back in a transaction that changed the list: whatever was seen since
    // (call sites of PL/pgSQL keep results across statements) may rest on undone changes. The
    // transaction stays marked: other savepoints may still hold changes.
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB && DIRTY.with(Cell::get) {
        forget_local_verdicts();
    }
}

crate::fmgr::v1_function! {
    /// The triggers on `jwt_revocations`. Statement level: marks the transaction so that its
    /// commit voids every backend's cached verifications. Row level (INSERT, UPDATE): adds the
    /// row's value to the shared filter (`filter`) before the row can commit.
    fn pg_jwt_revocations_changed / pg_finfo_pg_jwt_revocations_changed(fcinfo) {
        crate::setup::require_preloaded()?;
        let trigger = (*fcinfo).context.cast::<pg_sys::TriggerData>();
        if trigger.is_null() || (*trigger).type_ != pg_sys::NodeTag::T_TriggerData {
            return Err(errors::internal("pg_jwt_revocations_changed is a trigger function"));
        }
        let event = (*trigger).tg_event;
        if event & pg_sys::TRIGGER_EVENT_ROW != 0 {
            let op = event & pg_sys::TRIGGER_EVENT_OPMASK;
            let tuple = if op == pg_sys::TRIGGER_EVENT_UPDATE {
                (*trigger).tg_newtuple
            } else {
                (*trigger).tg_trigtuple
            };
            if !tuple.is_null() && (op == pg_sys::TRIGGER_EVENT_INSERT || op == pg_sys::TRIGGER_EVENT_UPDATE) {
                let rel = (*trigger).tg_relation;
                if !has_revocation_columns(rel) {
                    // Only a superuser can attach this function to a table; still, never read
                    // columns of other types as text.
                    return Err(errors::prerequisite("pg_jwt_revocations_changed fires only on jwt_revocations"));
                }
                with_row(tuple, (*rel).rd_att, |kind, value| {
                    crate::revocation::filter::add(pg_sys::MyDatabaseId, (*rel).rd_id, kind, value)
                });
                // Marked here too: a logical replication apply worker fires row triggers only,
                // never statement triggers, and its commit must void every backend's cached
                // verdicts as a local revocation's does. (A row removed needs no mark: cached
                // verdicts are "not revoked", which a removal cannot make wrong.)
                mark_changing();
            }
            return Ok(pg_sys::Datum::from(0usize));
        }
        mark_changing();
        Ok(pg_sys::Datum::from(0usize))
    }
}

/// This transaction changes `jwt_revocations`: its commit bumps the shared generation, its
/// abort (or a savepoint's) voids this backend's verdicts, and it cannot be prepared.
fn mark_changing() {
    if !CALLBACK_REGISTERED.with(|c| c.replace(true)) {
        // SAFETY: registered once per backend, inside a transaction (a trigger is running);
        // the callbacks are #[pg_guard]ed.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_transaction_event), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subtransaction_event), std::ptr::null_mut());
        }
    }
    DIRTY.with(|d| d.set(true));
}

/// Calls `f` with a row's kind and value (detoasted; rows with a NULL in either are skipped:
/// the table's constraints forbid them).
///
/// # Safety
/// `tuple` is a valid heap tuple of `jwt_revocations` described by `desc`.
unsafe fn with_row(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc, f: impl FnOnce(&[u8], &[u8])) {
    let mut kind_null = false;
    let mut value_null = false;
    let kind = pg_sys::heap_getattr(tuple, 1, desc, &mut kind_null);
    let value = pg_sys::heap_getattr(tuple, 2, desc, &mut value_null);
    if kind_null || value_null {
        return;
    }
    let kind = pg_sys::pg_detoast_datum_packed(kind.cast_mut_ptr());
    let value = pg_sys::pg_detoast_datum_packed(value.cast_mut_ptr());
    f(
        pgrx::varlena::varlena_to_byte_slice(kind),
        pgrx::varlena::varlena_to_byte_slice(value),
    );
}

crate::fmgr::v1_function! {
    /// `pg_jwt_not_null(value text, what text) RETURNS text`: `value`, or 22004 when it is NULL.
    fn pg_jwt_not_null_text / pg_finfo_pg_jwt_not_null_text(fcinfo) {
        not_null(fcinfo)
    }
}

crate::fmgr::v1_function! {
    /// `pg_jwt_not_null(value timestamptz, what text) RETURNS timestamptz`: the same for a time.
    fn pg_jwt_not_null_timestamptz / pg_finfo_pg_jwt_not_null_timestamptz(fcinfo) {
        not_null(fcinfo)
    }
}

crate::fmgr::v1_function! {
    /// `pg_jwt_provider_scope(provider text) RETURNS text`: the `provider` column of a
    /// revocation scoped to `provider`: `''` (every provider) for NULL, else the name itself. A
    /// name no provider can have (`[a-z0-9_-]{1,63}`, e.g. `Acme`) is refused (22023): it would
    /// revoke nothing, silently. A well-formed name this server does not list gets a WARNING
    /// and is kept: a central database may revoke for providers its subscribers list. The
    /// WARNING only for roles that may read `pg_jwt.providers` (hidden: the function is
    /// PUBLIC's, and would otherwise tell the list name by name).
    fn pg_jwt_provider_scope / pg_finfo_pg_jwt_provider_scope(fcinfo) {
        if crate::fmgr::arg_is_null(fcinfo, 0) {
            return crate::fmgr::text_datum("");
        }
        let name = std::str::from_utf8(crate::fmgr::arg_bytes(fcinfo, 0)).unwrap_or("");
        if name != pg_jwt_core::provider::DEFAULT_NAME && !pg_jwt_core::provider::valid_name(name) {
            return Err(errors::bad_argument(
                "no provider can have that name: a revocation's provider is default or a name of pg_jwt.providers ([a-z0-9_-], 1 to 63 characters)",
            )
            .set_hint("To revoke for every provider, pass provider => NULL (the default)."));
        }
        // Only to a role that may read the list: to others, whether a name is listed would
        // tell the hidden `pg_jwt.providers` name by name.
        if name != pg_jwt_core::provider::DEFAULT_NAME
            && crate::gucs::may_read_hidden_settings()
            && crate::providers::list().by_name(name).is_none()
        {
            pgrx::warning!(
                "pg_jwt: no provider of that name is listed in pg_jwt.providers here: the revocation applies only where one is"
            );
        }
        Ok(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0))
    }
}

/// Argument 0 unchanged, or 22004 with argument 1 as the reason when argument 0 is NULL.
///
/// # Safety
/// A valid call of one of the `pg_jwt_not_null` declarations (two arguments).
unsafe fn not_null(fcinfo: pg_sys::FunctionCallInfo) -> Result<pg_sys::Datum, ErrorReport> {
    if crate::fmgr::arg_is_null(fcinfo, 0) {
        let what = if crate::fmgr::arg_is_null(fcinfo, 1) {
            "a value is NULL".to_owned()
        } else {
            // The reason is the revoking functions' own constant; at most 1 KiB of any other.
            let what = crate::fmgr::arg_bytes(fcinfo, 1);
            String::from_utf8_lossy(what.get(..1024).unwrap_or(what)).into_owned()
        };
        return Err(errors::null_value(&what));
    }
    Ok(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0))
}

extension_sql!(
    r#"
-- Revocation (src/revocation/mod.rs): the denylist, its trigger and the functions that fill it.
CREATE TABLE jwt_revocations (
    kind text NOT NULL CHECK (kind IN ('jti', 'sub', 'sid')),
    value text NOT NULL,
    issued_before timestamptz,
    expires timestamptz,
    revoked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    revoked_by name NOT NULL DEFAULT CURRENT_USER,
    CHECK ((kind = 'sub') = (issued_before IS NOT NULL)),
    provider text NOT NULL DEFAULT '',
    PRIMARY KEY (kind, value, provider)
);
COMMENT ON TABLE jwt_revocations IS 'Revoked tokens (by jti), sessions (by sid) and subjects (tokens issued before issued_before); kept until expires (NULL: until removed)';
-- upgrade 0.3.0 begin
-- Several providers (0.3.0): a revocation is for every provider ('') or for the named one.
-- upgrade only: ALTER TABLE @extschema@.jwt_revocations ADD COLUMN provider text NOT NULL DEFAULT '';
-- The primary key is found by its table, never by its name: a relation of the schema named
-- jwt_revocations_pkey before the table was created makes PostgreSQL name the key otherwise.
-- upgrade only: DO $pg_jwt_pkey$
-- upgrade only: DECLARE
-- upgrade only:     key pg_catalog.name;
-- upgrade only:     tab pg_catalog.regclass;
-- upgrade only: BEGIN
-- upgrade only:     SELECT k.conname, k.conrelid INTO STRICT key, tab
-- upgrade only:       FROM pg_catalog.pg_constraint k
-- upgrade only:      WHERE k.conrelid OPERATOR(pg_catalog.=) (SELECT c.oid FROM pg_catalog.pg_extension e
-- upgrade only:              JOIN pg_catalog.pg_depend d ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
-- upgrade only:               AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
-- upgrade only:               AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
-- upgrade only:              JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
-- upgrade only:               AND c.relname OPERATOR(pg_catalog.=) 'jwt_revocations'
-- upgrade only:             WHERE e.extname OPERATOR(pg_catalog.=) 'pg_jwt')
-- upgrade only:        AND k.contype OPERATOR(pg_catalog.=) 'p';
-- upgrade only:     EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD PRIMARY KEY (kind, value, provider)', tab, key);
-- upgrade only: END
-- upgrade only: $pg_jwt_pkey$;
COMMENT ON COLUMN jwt_revocations.provider IS 'The provider (pg_jwt.providers name, or default) whose tokens the row revokes; empty: every provider';
-- upgrade 0.3.0 end
REVOKE ALL ON jwt_revocations FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('jwt_revocations', '');
CREATE FUNCTION pg_jwt_revocations_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_revocations_changed';
REVOKE ALL ON FUNCTION pg_jwt_revocations_changed() FROM PUBLIC;
CREATE TRIGGER jwt_revocations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jwt_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION pg_jwt_revocations_changed();
-- upgrade 0.3.0 begin
-- Before each statement too (0.3.0): the transaction is marked before any row changes, so that
-- nothing an accessor sees during the statement is kept (src/revocation/mod.rs, is_revoked).
CREATE TRIGGER jwt_revocations_changing BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON jwt_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION pg_jwt_revocations_changed();
ALTER TABLE jwt_revocations ENABLE ALWAYS TRIGGER jwt_revocations_changing;
-- upgrade 0.3.0 end
-- Row level: each written value enters the shared filter before it can commit
-- (src/revocation/filter.rs). Both fire under session_replication_role = replica too.
CREATE TRIGGER jwt_revocations_filter AFTER INSERT OR UPDATE ON jwt_revocations
    FOR EACH ROW EXECUTE FUNCTION pg_jwt_revocations_changed();
ALTER TABLE jwt_revocations ENABLE ALWAYS TRIGGER jwt_revocations_changed;
ALTER TABLE jwt_revocations ENABLE ALWAYS TRIGGER jwt_revocations_filter;

-- upgrade 0.3.0 begin
-- Every body below is SQL-standard (BEGIN ATOMIC): its table, functions and operators are bound
-- when the extension script creates it, by OID, never looked up by name when it runs. A database
-- owner who renames the extension's schema and plants a jwt_revocations (with triggers) in a new
-- one of the old name reaches nothing here. pg_jwt_not_null is their NULL guard (they cannot RAISE).
CREATE FUNCTION pg_jwt_not_null(value text, what text) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pg_jwt_not_null_text';
COMMENT ON FUNCTION pg_jwt_not_null(text, text) IS 'Internal: value, or 22004 pg_jwt: <what> when it is NULL (the revoking functions'' guard)';
CREATE FUNCTION pg_jwt_not_null(value timestamptz, what text) RETURNS timestamptz
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pg_jwt_not_null_timestamptz';
COMMENT ON FUNCTION pg_jwt_not_null(timestamptz, text) IS 'Internal: value, or 22004 pg_jwt: <what> when it is NULL (the revoking functions'' guard)';
-- A revocation's provider: '' (every provider) for NULL, else the name (22023 if no provider can have it).
CREATE FUNCTION pg_jwt_provider_scope(provider text) RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pg_jwt_provider_scope';
COMMENT ON FUNCTION pg_jwt_provider_scope(text) IS 'Internal: the provider column of a revocation: empty for NULL (every provider), else the name; 22023 for a name no provider can have, a WARNING for one not listed here to roles that may read pg_jwt.providers (the revoking functions'' guard)';

CREATE FUNCTION jwt_revoke_token(jti text, expires timestamptz DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    -- expires NULL: until removed (jwt_unrevoke); a NULL on either side of a repeat wins.
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, expires)
    VALUES ('jti', @extschema@.pg_jwt_not_null(jti, 'jwt_revoke_token needs a jti, not NULL'::pg_catalog.text), expires)
    ON CONFLICT (kind, value, provider) DO UPDATE
    SET expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER;
END;
COMMENT ON FUNCTION jwt_revoke_token(text, timestamptz) IS 'Revoke the token with this jti until expires (its exp; NULL: until removed)';

-- upgrade only: DROP FUNCTION jwt_revoke_session(text, timestamptz);
-- upgrade only: DROP FUNCTION jwt_revoke_subject(text, timestamptz, timestamptz);
CREATE FUNCTION jwt_revoke_session(sid text, expires timestamptz DEFAULT NULL, provider text DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    -- expires NULL: until removed (jwt_unrevoke); a NULL on either side of a repeat wins.
    -- provider NULL: every provider ('').
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, expires, provider)
    VALUES ('sid', @extschema@.pg_jwt_not_null(sid, 'jwt_revoke_session needs a session id, not NULL'::pg_catalog.text), expires,
            @extschema@.pg_jwt_provider_scope(provider))
    ON CONFLICT (kind, value, provider) DO UPDATE
    SET expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER;
END;
COMMENT ON FUNCTION jwt_revoke_session(text, timestamptz, text) IS 'Revoke every token of this session id (claim pg_jwt.session_claim) until expires (NULL: until removed), of this provider (NULL: every provider)';

CREATE FUNCTION jwt_revoke_subject(sub text, issued_before timestamptz DEFAULT pg_catalog.now(),
                                   expires timestamptz DEFAULT NULL, provider text DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    INSERT INTO @extschema@.jwt_revocations AS r (kind, value, issued_before, expires, provider)
    VALUES ('sub', @extschema@.pg_jwt_not_null(sub, 'jwt_revoke_subject needs a subject, not NULL'::pg_catalog.text),
            @extschema@.pg_jwt_not_null(issued_before, 'jwt_revoke_subject needs issued_before, not NULL'::pg_catalog.text),
            expires, @extschema@.pg_jwt_provider_scope(provider))
    ON CONFLICT (kind, value, provider) DO UPDATE
    SET issued_before = GREATEST(r.issued_before, excluded.issued_before),
        expires = CASE WHEN r.expires IS NULL OR excluded.expires IS NULL THEN NULL
                       ELSE GREATEST(r.expires, excluded.expires) END,
        revoked_at = pg_catalog.now(), revoked_by = CURRENT_USER;
END;
COMMENT ON FUNCTION jwt_revoke_subject(text, timestamptz, timestamptz, text) IS 'Log out everywhere: revoke every token of this subject issued before issued_before (tokens without iat included), of this provider (NULL: every provider); kept until expires (NULL: until removed)';

CREATE FUNCTION jwt_unrevoke(kind text, value text) RETURNS boolean
    LANGUAGE sql STRICT VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    WITH gone AS (DELETE FROM @extschema@.jwt_revocations r
                  WHERE r.kind OPERATOR(pg_catalog.=) jwt_unrevoke.kind AND r.value OPERATOR(pg_catalog.=) jwt_unrevoke.value
                  RETURNING 1)
    SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM gone;
END;
COMMENT ON FUNCTION jwt_unrevoke(text, text) IS 'Undo a revocation (kind jti, sid or sub), for every provider it was scoped to; true if there was one';

-- The purge keeps a row until its expiry plus the largest leeway any session may use (the bound
-- of pg_jwt.leeway, 3600 s): a session with a larger leeway than the purging one's must never
-- accept a revoked token again because its row was purged.
CREATE FUNCTION jwt_purge_revocations() RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    WITH gone AS (DELETE FROM @extschema@.jwt_revocations
                  WHERE expires OPERATOR(pg_catalog.<) (pg_catalog.now()
                        OPERATOR(pg_catalog.-) '3600 seconds'::pg_catalog.interval)
                  RETURNING 1)
    SELECT pg_catalog.count(*) FROM gone;
END;
COMMENT ON FUNCTION jwt_purge_revocations() IS 'Delete revocations whose tokens have expired anyway (expires plus the largest pg_jwt.leeway, 3600 s, in the past); returns how many';

REVOKE ALL ON FUNCTION jwt_revoke_token(text, timestamptz), jwt_revoke_session(text, timestamptz, text),
    jwt_revoke_subject(text, timestamptz, timestamptz, text), jwt_unrevoke(text, text), jwt_purge_revocations() FROM PUBLIC;
-- upgrade 0.3.0 end
"#,
    name = "revocation"
);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// The catalog numbers `resolve_table` reads by are this server's: `pg_depend`, its index on
    /// the referenced object (whose first two columns are the scan keys), and the columns read.
    #[pg_test]
    fn pg_depend_numbers_are_this_servers() {
        let relation = Spi::get_one::<pg_sys::Oid>("SELECT 'pg_catalog.pg_depend'::pg_catalog.regclass::oid");
        assert_eq!(relation, Ok(Some(pg_sys::Oid::from(DEPEND_RELATION))));
        let index =
            Spi::get_one::<pg_sys::Oid>("SELECT 'pg_catalog.pg_depend_reference_index'::pg_catalog.regclass::oid");
        assert_eq!(index, Ok(Some(pg_sys::Oid::from(DEPEND_REFERENCE_INDEX))));
        let keys = Spi::get_one::<String>(
            "SELECT indkey::text FROM pg_catalog.pg_index WHERE indexrelid = 'pg_catalog.pg_depend_reference_index'::pg_catalog.regclass",
        );
        let (first, second) = (DEPEND_REFCLASSID, DEPEND_REFOBJID);
        assert!(matches!(keys, Ok(Some(k)) if k.starts_with(&format!("{first} {second} "))));
        for (name, attnum) in [
            ("classid", DEPEND_CLASSID),
            ("objid", DEPEND_OBJID),
            ("refclassid", i32::from(DEPEND_REFCLASSID)),
            ("refobjid", i32::from(DEPEND_REFOBJID)),
            ("deptype", DEPEND_DEPTYPE),
        ] {
            let found = Spi::get_one::<i16>(&format!(
                "SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = 'pg_catalog.pg_depend'::pg_catalog.regclass AND attname = '{name}'"
            ));
            assert_eq!(found, Ok(Some(attnum as i16)), "{name}");
        }
    }
}
