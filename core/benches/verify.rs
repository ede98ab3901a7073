//! Verification floor: full pg_jwt verification of a realistic token (about 300 bytes of
//! claims, a JWKS of 3 keys) against the bare ring signature check on the same bytes.
//!
//! `cargo bench -p pg_jwt_core --bench verify` prints a Markdown table (median, min and max of
//! 7 runs of about 0.2 s each). Under `cargo test` (no `--bench` argument) every case runs once,
//! so the test suite keeps this code working.

use pg_jwt_core::json::Json;
use pg_jwt_core::jwk::{generate_jwk, public_key_set};
use pg_jwt_core::token::{self, HeaderPolicy};
use pg_jwt_core::{b64, KeySet, SigningKey, Validation};
use ring::{hmac, signature};
use std::hint::black_box;
use std::time::{Duration, Instant};

const RSA_PRIVATE: &str = include_str!("../../../shared/vectors/rfc7520/RFC7520-RSA-private.json");

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn claims() -> String {
    format!(
        r#"{{"iss":"https://id.example.com/realms/prod","sub":"8f14e45f-ceea-467a-9b8e-3c3b0c5d2f11","aud":"https://api.example.com","exp":{},"iat":{},"tenant_id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","roles":["member","editor"],"email":"alice@example.com","name":"Alice Example","scope":"openid profile email documents:read documents:write","sid":"c1b2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e"}}"#,
        now() + 3600,
        now()
    )
}

/// A private JWK for `alg` with `kid`, and two more public keys of the same type.
fn keys(alg: &str) -> (String, Vec<String>) {
    let private = if alg.starts_with("RS") || alg.starts_with("PS") {
        let mut j = Json::parse(RSA_PRIVATE.as_bytes()).unwrap();
        if let Json::Object(m) = &mut j {
            m.retain(|(k, _)| k != "kid");
            m.push(("kid".into(), Json::String("k0".into())));
            m.push(("alg".into(), Json::String(alg.into())));
        }
        j.to_json_string()
    } else {
        generate_jwk(alg, Some("k0")).unwrap().to_json_string()
    };
    let others = (1..3)
        .map(|i| {
            if alg.starts_with("RS") || alg.starts_with("PS") {
                // Another 2048-bit public modulus (odd, top bit set): only ever looked up by kid.
                let mut n = vec![0u8; 256];
                for (j, b) in n.iter_mut().enumerate() {
                    *b = (j as u8).wrapping_mul(37).wrapping_add(i as u8 * 11) | 1;
                }
                n[0] = 0xC5;
                format!(
                    r#"{{"kty":"RSA","kid":"k{i}","alg":"{alg}","n":"{}","e":"AQAB"}}"#,
                    b64::encode(&n)
                )
            } else {
                let k = generate_jwk(alg, Some(&format!("k{i}"))).unwrap().to_json_string();
                public_or_secret(&k)
            }
        })
        .collect();
    (private, others)
}

fn public_or_secret(private: &str) -> String {
    let j = Json::parse(private.as_bytes()).unwrap();
    if j.get("kty").and_then(Json::as_str) == Some("oct") {
        return private.to_owned();
    }
    let set = public_key_set(private.as_bytes()).unwrap();
    set.get("keys").unwrap().as_array().unwrap()[0].to_json_string()
}

/// Median, min and max nanoseconds per call over `runs` runs.
fn measure(quick: bool, mut f: impl FnMut()) -> (f64, f64, f64) {
    if quick {
        f();
        return (0.0, 0.0, 0.0);
    }
    // Calibrate to about 0.2 s per run.
    let mut iters = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() > Duration::from_millis(50) {
            break;
        }
        iters *= 2;
    }
    iters *= 4;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    (samples[3], samples[0], samples[6])
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else {
        format!("{:.0} ns", ns)
    }
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    if !quick {
        println!("| algorithm | pg_jwt full verification (median, min–max) | bare ring check (median, min–max) | ratio | overhead | target |");
        println!("|---|---|---|---|---|---|");
    }
    let required = vec!["exp".to_owned()];
    for alg in ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"] {
        let (private, others) = keys(alg);
        let jwks = format!("{{\"keys\":[{},{}]}}", others.join(","), public_or_secret(&private));
        let keyset = KeySet::parse(jwks.as_bytes()).unwrap();
        let signer = SigningKey::parse(private.as_bytes()).unwrap();
        let token = token::sign(&Json::parse(claims().as_bytes()).unwrap(), &signer).unwrap();
        let validation = Validation {
            audience: Some("https://api.example.com"),
            ..Validation::new(now(), &required)
        };
        let policy = HeaderPolicy::default();
        assert!(
            token::verify(token.as_bytes(), &keyset, &policy, &validation).is_ok(),
            "{alg}"
        );

        let (input, sig) = token.rsplit_once('.').unwrap();
        let input = input.as_bytes().to_vec();
        let sig = b64::decode(sig.as_bytes()).unwrap();
        let pj = Json::parse(private.as_bytes()).unwrap();
        let field = |m: &str| b64::decode(pj.get(m).unwrap().as_str().unwrap().as_bytes()).unwrap();
        let bare: Box<dyn Fn() -> bool> = match alg {
            "HS256" => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, &field("k"));
                Box::new(move || hmac::verify(&key, &input, &sig).is_ok())
            }
            "RS256" | "PS256" => {
                let (n, e) = (field("n"), field("e"));
                let params: &'static signature::RsaParameters = if alg == "RS256" {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                Box::new(move || {
                    signature::RsaPublicKeyComponents { n: &n, e: &e }
                        .verify(params, &input, &sig)
                        .is_ok()
                })
            }
            "ES256" | "ES384" => {
                let mut point = vec![4u8];
                point.extend(field("x"));
                point.extend(field("y"));
                let params = if alg == "ES256" {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                Box::new(move || {
                    signature::UnparsedPublicKey::new(params, &point)
                        .verify(&input, &sig)
                        .is_ok()
                })
            }
            _ => {
                let x = field("x");
                Box::new(move || {
                    signature::UnparsedPublicKey::new(&signature::ED25519, &x)
                        .verify(&input, &sig)
                        .is_ok()
                })
            }
        };
        assert!(bare(), "{alg}: bare check");
        let full = measure(quick, || {
            black_box(token::verify(black_box(token.as_bytes()), &keyset, &policy, &validation).is_ok());
        });
        let floor = measure(quick, || {
            black_box(bare());
        });
        if quick {
            continue;
        }
        let ratio = full.0 / floor.0;
        let overhead = full.0 - floor.0;
        let target = if alg == "HS256" {
            if full.0 <= 3000.0 {
                "≤ 3 µs total: met".to_owned()
            } else {
                format!("≤ 3 µs total: MISSED ({})", fmt_ns(full.0))
            }
        } else if ratio <= 1.3 {
            "≤ 1.3x: met".to_owned()
        } else {
            "≤ 1.3x: MISSED".to_owned()
        };
        println!(
            "| {alg} | {} ({}–{}) | {} ({}–{}) | {ratio:.2}x | {} | {target} |",
            fmt_ns(full.0),
            fmt_ns(full.1),
            fmt_ns(full.2),
            fmt_ns(floor.0),
            fmt_ns(floor.1),
            fmt_ns(floor.2),
            fmt_ns(overhead)
        );
    }
    if quick {
        println!("verify bench: smoke run ok");
    }
}
