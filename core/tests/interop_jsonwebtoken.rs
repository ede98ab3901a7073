//! Interop with an independent implementation, the `jsonwebtoken` crate (a dev-dependency
//! only; see core/Cargo.toml for why it is not used to verify):
//! - tokens made by `jsonwebtoken::encode` for every algorithm both support verify in pg_jwt;
//! - tokens made by pg_jwt's `token::sign` verify under `jsonwebtoken::decode` with a strict
//!   validation (algorithm pinned, exp/aud/iss required and checked, no leeway).

mod common;
use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use pg_jwt_core::json::Json;
use pg_jwt_core::Validation;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

const AUDIENCE: &str = "api";
const ISSUER: &str = "https://issuer.example";

const RSA_PEM: &[u8] = include_bytes!("../../testdata/rsa-2048-private.pem");
const RSA_JWK: &str = include_str!("../../testdata/rsa-2048-private.jwk.json");

fn claims() -> serde_json::Value {
    serde_json::json!({"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": now() + 600, "n": 1})
}

fn pg_jwt_validation(required: &[String]) -> Validation<'_> {
    Validation {
        audience: Some(AUDIENCE),
        issuer: Some(ISSUER),
        ..Validation::new(now(), required)
    }
}

fn jwk_member(jwk: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(jwk).unwrap();
    v[name].as_str().unwrap().to_owned()
}

/// The public JWK (text) of an RSA key from the repository's test key.
fn rsa_public_jwk(alg: &str) -> String {
    serde_json::json!({"kty": "RSA", "kid": "k", "alg": alg, "n": jwk_member(RSA_JWK, "n"), "e": jwk_member(RSA_JWK, "e")})
        .to_string()
}

/// A key made by ring (PKCS#8 for jsonwebtoken) and its public JWK for pg_jwt.
fn asymmetric(alg: Algorithm) -> (EncodingKey, String) {
    let rng = SystemRandom::new();
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let (ring_alg, crv, len) = if alg == Algorithm::ES256 {
                (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
            } else {
                (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
            };
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(ring_alg, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(ring_alg, pkcs8.as_ref(), &rng).unwrap();
            let point = pair.public_key().as_ref();
            let (x, y) = (&point[1..1 + len], &point[1 + len..]);
            let jwk = serde_json::json!({"kty": "EC", "kid": "k", "crv": crv,
                "x": pg_jwt_core::b64::encode(x), "y": pg_jwt_core::b64::encode(y)});
            (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk.to_string())
        }
        Algorithm::EdDSA => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let jwk = serde_json::json!({"kty": "OKP", "kid": "k", "crv": "Ed25519",
                "x": pg_jwt_core::b64::encode(pair.public_key().as_ref())});
            (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk.to_string())
        }
        _ => {
            let name = format!("{alg:?}");
            (EncodingKey::from_rsa_pem(RSA_PEM).unwrap(), rsa_public_jwk(&name))
        }
    }
}

#[test]
fn tokens_from_jsonwebtoken_verify_in_pg_jwt() {
    let required = vec!["exp".to_owned()];
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let (encoding, jwks) = if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            let mut secret = [0u8; 64];
            SystemRandom::new().fill(&mut secret).unwrap();
            let jwk = serde_json::json!({"kty": "oct", "kid": "k", "k": pg_jwt_core::b64::encode(&secret)});
            (EncodingKey::from_secret(&secret), jwk.to_string())
        } else {
            asymmetric(alg)
        };
        let mut header = Header::new(alg);
        header.kid = Some("k".into());
        let t = jsonwebtoken::encode(&header, &claims(), &encoding).unwrap();
        let keys = keyset(&format!("{{\"keys\":[{jwks}]}}"));
        let verified = verify_with(&t, &keys, &pg_jwt_validation(&required)).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(
            verified.claims.get("sub").and_then(Json::as_str),
            Some("alice"),
            "{alg:?}"
        );
    }
}

/// A strict jsonwebtoken validation: the algorithm pinned, exp/aud/iss required, no leeway.
fn strict(alg: Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.leeway = 0;
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "aud", "iss"]);
    v
}

#[test]
fn tokens_from_pg_jwt_verify_in_jsonwebtoken() {
    let claims_text = claims().to_string();
    let claims = Json::parse(claims_text.as_bytes()).unwrap();
    for (alg_name, alg) in [
        ("HS256", Algorithm::HS256),
        ("HS384", Algorithm::HS384),
        ("HS512", Algorithm::HS512),
        ("RS256", Algorithm::RS256),
        ("RS384", Algorithm::RS384),
        ("RS512", Algorithm::RS512),
        ("PS256", Algorithm::PS256),
        ("PS384", Algorithm::PS384),
        ("PS512", Algorithm::PS512),
        ("ES256", Algorithm::ES256),
        ("ES384", Algorithm::ES384),
        ("EdDSA", Algorithm::EdDSA),
    ] {
        let private = private_jwk(alg_name, Some("k"));
        let key = pg_jwt_core::SigningKey::parse(private.as_bytes()).unwrap();
        let t = pg_jwt_core::token::sign(&claims, &key).unwrap();
        let decoding = match alg_name.get(..2) {
            Some("HS") => {
                DecodingKey::from_secret(&pg_jwt_core::b64::decode(jwk_member(&private, "k").as_bytes()).unwrap())
            }
            Some("RS") | Some("PS") => {
                DecodingKey::from_rsa_components(&jwk_member(&private, "n"), &jwk_member(&private, "e")).unwrap()
            }
            Some("ES") => {
                DecodingKey::from_ec_components(&jwk_member(&private, "x"), &jwk_member(&private, "y")).unwrap()
            }
            _ => DecodingKey::from_ed_components(&jwk_member(&private, "x")).unwrap(),
        };
        let data = jsonwebtoken::decode::<serde_json::Value>(&t, &decoding, &strict(alg))
            .unwrap_or_else(|e| panic!("{alg_name}: {e}"));
        assert_eq!(data.claims["sub"], "alice", "{alg_name}");
        assert_eq!(data.header.alg, alg, "{alg_name}");
        // Any change to the token fails there too.
        let tampered = with_segment(
            &t,
            1,
            &b64(r#"{"sub":"mallory","aud":"api","iss":"https://issuer.example","exp":9999999999}"#),
        );
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&tampered, &decoding, &strict(alg)).is_err(),
            "{alg_name}"
        );
    }
}
