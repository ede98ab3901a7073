//! PostgreSQL 18 only: compiles src/signin/validator.c, the OAuth validator module's C glue
//! (its callbacks and the pg_hba.conf line's fields are not in pgrx's bindings), against the
//! server headers of the pg_config cargo-pgrx builds with ($PGRX_PG_CONFIG_PATH, else the
//! `pg18` entry of cargo-pgrx's configuration).

fn main() {
    println!("cargo:rerun-if-changed=src/signin/validator.c");
    println!("cargo:rerun-if-env-changed=PGRX_PG_CONFIG_PATH");
    if std::env::var_os("CARGO_FEATURE_PG18").is_none() {
        return;
    }
    let pg_config = std::env::var("PGRX_PG_CONFIG_PATH").ok().or_else(pg18_from_pgrx_config);
    let Some(pg_config) = pg_config else {
        panic!(
            "pg_jwt (pg18): no pg_config for PostgreSQL 18 (set PGRX_PG_CONFIG_PATH or run cargo pgrx init --pg18 ...)"
        );
    };
    let include = std::process::Command::new(&pg_config)
        .arg("--includedir-server")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| panic!("pg_jwt (pg18): {pg_config} --includedir-server failed"));
    cc::Build::new()
        .file("src/signin/validator.c")
        .include(&include)
        .flag_if_supported("-Wno-unused-parameter")
        .compile("pg_jwt_validator");
}

/// The `pg18 = "..."` line of `$PGRX_HOME/config.toml` (default `~/.pgrx`).
fn pg18_from_pgrx_config() -> Option<String> {
    let home = std::env::var("PGRX_HOME")
        .ok()
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.pgrx")))?;
    let text = std::fs::read_to_string(format!("{home}/config.toml")).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "pg18").then(|| v.trim().trim_matches('"').to_owned())
    })
}
