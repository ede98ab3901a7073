//! `CREATE EXTENSION pg_jwt` and `ALTER EXTENSION pg_jwt UPDATE` refuse (SQLSTATE 55000) unless the library was loaded by
//! `shared_preload_libraries`, so the misconfiguration shows at set-up time and not as a
//! readable or replaceable key setting later (see `gucs::preloaded`). The check function exists
//! only while the install script runs.

use crate::fmgr::v1_function;
use crate::{errors, gucs};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// 55000 (with the hint to preload) unless the library was loaded by
/// `shared_preload_libraries`: every path that needs shared memory or settings the application
/// cannot replace starts with this.
pub fn require_preloaded() -> Result<(), pgrx::pg_sys::panic::ErrorReport> {
    if gucs::preloaded() {
        Ok(())
    } else {
        Err(errors::not_preloaded())
    }
}

v1_function! {
    /// Raises 55000 unless the library was preloaded; returns void.
    fn pg_jwt_require_preload / pg_finfo_pg_jwt_require_preload(_fcinfo) {
        require_preloaded()?;
        Ok(pg_sys::Datum::null())
    }
}

extension_sql!(
    r#"
-- upgrade 0.3.0 begin
-- pg_jwt must be in shared_preload_libraries (src/setup.rs): refuse to install or update
-- otherwise (an update refused leaves the database at its old version, whole).
CREATE FUNCTION pg_jwt_require_preload() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'pg_jwt_require_preload';
SELECT pg_jwt_require_preload();
DROP FUNCTION pg_jwt_require_preload();
-- upgrade 0.3.0 end
"#,
    name = "require_preload",
    bootstrap
);
