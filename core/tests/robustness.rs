//! A deterministic, randomized no-panic test: mutated tokens, key sets and JWKs go through every
//! entry point of the core, which must return `Err`, never panic. (The same entry points are
//! what a coverage-guided fuzzer would drive.)

mod common;

use common::*;
use pg_jwt_core::json::Json;
use pg_jwt_core::token::{self, HeaderPolicy};
use pg_jwt_core::{b64, jwk, KeySet, SigningKey, Validation};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b".",
    b"=",
    b"+",
    b"/",
    b" ",
    b"\0",
    b"\xff",
    b"\\u0000",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"1e400",
    b"-0",
    b"null",
    b"eyJ",
    b"AAAA",
    b"\xc3\xa9",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let pos = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(pos..pos, piece.iter().copied());
            }
            3 => v.truncate(pos),
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            _ => {
                let start = rng.below(v.len() + 1);
                let end = (start + rng.below(16)).min(v.len());
                let copy = v[start..end].to_vec();
                v.splice(pos..pos, copy);
            }
        }
    }
    v
}

/// Also mutates inside the decoded JSON of the header and payload, re-encoded, so the
/// mutations reach the JSON and claim layers and not only the base64url decoder.
fn mutate_inside(rng: &mut Rng, token: &str) -> Vec<u8> {
    let parts: Vec<&str> = token.split('.').collect();
    let i = rng.below(2);
    let decoded = b64::decode(parts[i].as_bytes()).unwrap();
    let mutated = b64::encode(&mutate(rng, &decoded));
    let mut out = parts.clone();
    out[i] = &mutated;
    out.join(".").into_bytes()
}

#[test]
fn mutated_inputs_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let required = vec!["exp".to_owned()];
    let mut corpus = Vec::new();
    for alg in ["HS256", "RS256", "PS384", "ES256", "ES384", "EdDSA"] {
        let p = private_jwk(alg, Some("k"));
        let jwks = verify_jwks(&p);
        let claims = format!(
            r#"{{"sub":"a","aud":["x"],"nbf":1,"iat":2,"exp":{},"n":{{"d":[1,2.5,true]}}}}"#,
            now() + 600
        );
        corpus.push((token(&claims, &p), jwks, p));
    }
    let mut errors = 0usize;
    for round in 0..6000 {
        let (t, jwks, private) = &corpus[round % corpus.len()];
        let keys = keyset(jwks);
        let bad_token = if round % 2 == 0 {
            mutate(&mut rng, t.as_bytes())
        } else {
            mutate_inside(&mut rng, t)
        };
        let v = Validation {
            audience: Some("x"),
            ..Validation::new(now(), &required)
        };
        let result = std::panic::catch_unwind(|| {
            let a = token::verify(&bad_token, &keys, &HeaderPolicy::default(), &v).is_err();
            let b = token::decode_unverified(&bad_token, 0).is_err();
            let bad_jwks = mutate(&mut Rng(round as u64 + 1), jwks.as_bytes());
            let c = KeySet::parse(&bad_jwks).is_err();
            let d = jwk::public_key_set(&bad_jwks).is_err();
            let bad_private = mutate(&mut Rng(round as u64 + 7), private.as_bytes());
            let e = SigningKey::parse(&bad_private).is_err();
            let f = Json::parse(&bad_jwks).is_err();
            let g = b64::decode(&bad_token).is_err();
            [a, b, c, d, e, f, g].iter().filter(|x| **x).count()
        });
        errors += result.unwrap_or_else(|_| panic!("panic in round {round}"));
    }
    assert!(errors > 10_000, "the mutations should mostly produce errors ({errors})");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    let keys = hs256().1;
    let required = vec!["exp".to_owned()];
    for _ in 0..20_000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = Json::parse(&bytes);
        let _ = b64::decode(&bytes);
        let _ = KeySet::parse(&bytes);
        let _ = token::verify(
            &bytes,
            &keys,
            &HeaderPolicy::default(),
            &Validation::new(now(), &required),
        );
    }
}
