//! The signature cache's building blocks (src/shared_cache.rs keeps good signatures in shared
//! memory): its key is a cryptographic hash of the key set and the exact token bytes, and a
//! token whose signature is vouched for (`Signature::KnownGood`) still goes through every other
//! check.

mod common;
use common::*;
use pg_jwt_core::token::{self, key_set_fingerprint, signature_cache_key, HeaderPolicy, Signature};
use pg_jwt_core::{TokenError, Validation};

fn known_good(t: &str, keys: &pg_jwt_core::KeySet) -> Result<pg_jwt_core::VerifiedToken, TokenError> {
    let required = vec!["exp".to_owned()];
    token::verify_with(
        t.as_bytes(),
        keys,
        &HeaderPolicy::default(),
        &Validation::new(now(), &required),
        Signature::KnownGood,
    )
}

#[test]
fn the_cache_key_changes_with_any_byte_of_the_token_or_the_key_set() {
    let (p, _) = hs256();
    let t = token(&fresh_claims(), &p);
    let f = key_set_fingerprint(&[Some(b"{\"keys\":[]}"), None]);
    let k = signature_cache_key(&f, t.as_bytes());
    for i in 0..t.len() {
        let mut other = t.clone().into_bytes();
        other[i] ^= 1;
        assert_ne!(k, signature_cache_key(&f, &other), "byte {i}");
    }
    assert_ne!(k, signature_cache_key(&f, &t.as_bytes()[..t.len() - 1]));
    let g = key_set_fingerprint(&[Some(b"{\"keys\":[ ]}"), None]);
    assert_ne!(k, signature_cache_key(&g, t.as_bytes()), "another key set");
    assert_eq!(k, signature_cache_key(&f, t.as_bytes()), "deterministic");
}

#[test]
fn the_fingerprint_tells_apart_which_source_holds_a_text_and_where_texts_split() {
    let a = key_set_fingerprint(&[Some(b"ab"), None]);
    assert_ne!(a, key_set_fingerprint(&[None, Some(b"ab")]));
    assert_ne!(
        key_set_fingerprint(&[Some(b"a"), Some(b"b")]),
        key_set_fingerprint(&[Some(b"ab"), Some(b"")])
    );
    assert_eq!(a, key_set_fingerprint(&[Some(b"ab"), None]));
}

#[test]
fn a_vouched_signature_skips_only_the_signature_check() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    assert!(known_good(&t, &keys).is_ok());
    // The same token with another (same-length) signature: only a vouching caller accepts it.
    let sig = segment(&t, 2);
    let flipped = format!("{}{}", if sig.starts_with('A') { "B" } else { "A" }, &sig[1..]);
    let forged = with_segment(&t, 2, &flipped);
    assert!(matches!(verify(&forged, &keys), Err(TokenError::InvalidSignature)));
    assert!(known_good(&forged, &keys).is_ok());
    // Everything else is still checked.
    let expired = token(&format!("{{\"sub\":\"a\",\"exp\":{}}}", now() - 3600), &p);
    assert!(known_good(&expired, &keys).is_err(), "claims");
    assert!(
        known_good(&with_segment(&t, 2, "AAAA"), &keys).is_err(),
        "signature length"
    );
    assert!(known_good(&format!("{t}.x.y"), &keys).is_err(), "structure");
    let none = format!("{}.{}.", b64("{\"alg\":\"none\"}"), segment(&t, 1));
    assert!(known_good(&none, &keys).is_err(), "alg none");
    let (_, other_keys) = hs256();
    let q = private_jwk("HS256", Some("another-kid"));
    assert!(
        known_good(&token(&fresh_claims(), &q), &other_keys).is_err(),
        "no such key"
    );
    let too_big = format!("{t}{}", "A".repeat(20_000));
    assert!(matches!(known_good(&too_big, &keys), Err(TokenError::TooLarge(_))));
}

#[test]
fn a_record_gives_the_full_verification_s_claims_and_rechecks_alg_and_claims() {
    use pg_jwt_core::Algorithm;
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    let full = verify(&t, &keys).unwrap();
    assert_eq!(full.alg, Algorithm::HS256);
    let required = vec!["exp".to_owned()];
    let v = Validation::new(now(), &required);
    let policy = HeaderPolicy::default();
    let recorded =
        |t: &str, policy: &HeaderPolicy, v: &Validation<'_>| token::verify_recorded(t.as_bytes(), full.alg, policy, v);
    let (claims, times) = recorded(&t, &policy, &v).unwrap().unwrap();
    assert_eq!(claims.tree().unwrap(), &full.claims);
    assert!(
        matches!(claims, pg_jwt_core::claims::Body::Members(..)),
        "members, not a tree"
    );
    assert_eq!(times, full.times);
    // The algorithm allowlist of now, not of the recording.
    let only_es = HeaderPolicy {
        allowed_algs: Some(vec![Algorithm::ES256]),
        ..HeaderPolicy::default()
    };
    assert!(matches!(
        recorded(&t, &only_es, &v),
        Some(Err(TokenError::AlgorithmNotAllowed(_)))
    ));
    // A typ rule needs the header: the record cannot answer it.
    let typ = HeaderPolicy {
        allowed_typ: Some(vec!["at+jwt".into()]),
        ..HeaderPolicy::default()
    };
    assert!(recorded(&t, &typ, &v).is_none());
    // The size cap of now.
    let small = HeaderPolicy {
        max_token_bytes: 16,
        ..HeaderPolicy::default()
    };
    assert!(matches!(recorded(&t, &small, &v), Some(Err(TokenError::TooLarge(_)))));
    // Time and the claim rules of now.
    let later = Validation::new(now() + 7200, &required);
    assert!(matches!(
        recorded(&t, &policy, &later),
        Some(Err(TokenError::Expired { .. }))
    ));
    let aud = Validation {
        audience: Some("another"),
        ..Validation::new(now(), &required)
    };
    assert!(matches!(recorded(&t, &policy, &aud), Some(Err(_))));
    // Whatever the bytes (a cache never records these), the payload is refused as in a full
    // verification, never panics.
    for bad in [
        "",
        "a.b",
        "a..c",
        "e30.W10.x",
        "e30.eyJhIjoxLCJhIjoyfQ.x",
        "e30.e30=.x",
        "a.b.c.d.e",
    ] {
        assert!(matches!(recorded(bad, &policy, &v), Some(Err(_))), "{bad}");
    }
}

/// With several providers, the claims are read before the signature to choose the provider by
/// `iss` (`token::peek`); a record's verification then uses them (`verify_recorded_peeked`),
/// and gives what `verify_recorded` gives for the same bytes.
#[test]
fn peeked_claims_verify_from_a_record_as_the_token_itself_does() {
    use pg_jwt_core::Algorithm;
    let (p, _) = hs256();
    let required = vec!["exp".to_owned()];
    let v = Validation::new(now(), &required);
    let later = Validation::new(now() + 7200, &required);
    let only_es = HeaderPolicy {
        allowed_algs: Some(vec![Algorithm::ES256]),
        ..HeaderPolicy::default()
    };
    let small = HeaderPolicy {
        max_token_bytes: 16,
        ..HeaderPolicy::default()
    };
    let typ = HeaderPolicy {
        allowed_typ: Some(vec!["at+jwt".into()]),
        ..HeaderPolicy::default()
    };
    let escaped = format!(r#"{{"iss":"https:\/\/idp.example","exp":{}}}"#, now() + 600);
    let tokens = [
        token(&fresh_claims(), &p),
        token(
            &format!(r#"{{"iss":"https://idp.example","sub":"a","exp":{}}}"#, now() + 600),
            &p,
        ),
        token(&escaped, &p),
    ];
    let show = |r: Option<Result<(pg_jwt_core::claims::Body, pg_jwt_core::TimeClaims), TokenError>>| {
        r.map(|r| {
            r.map(|(c, t)| (c.tree().cloned().map_err(|e| e.to_string()), t))
                .map_err(|e| e.to_string())
        })
    };
    for t in &tokens {
        for policy in [&HeaderPolicy::default(), &only_es, &typ] {
            for validation in [&v, &later] {
                let peeked = token::peek(t.as_bytes(), &HeaderPolicy::default()).unwrap();
                assert_eq!(
                    show(token::verify_recorded_peeked(
                        t.as_bytes(),
                        peeked,
                        Algorithm::HS256,
                        policy,
                        validation
                    )),
                    show(token::verify_recorded(
                        t.as_bytes(),
                        Algorithm::HS256,
                        policy,
                        validation
                    )),
                );
            }
        }
        // The size cap of now, as the record's path checks it.
        let peeked = token::peek(t.as_bytes(), &HeaderPolicy::default()).unwrap();
        assert!(matches!(
            token::verify_recorded_peeked(t.as_bytes(), peeked, Algorithm::HS256, &small, &v),
            Some(Err(TokenError::TooLarge(_)))
        ));
    }
    // The issuer: a string (its escapes decoded), else none.
    let issuer = |t: &str| {
        token::peek(t.as_bytes(), &HeaderPolicy::default())
            .unwrap()
            .issuer()
            .map(str::to_owned)
    };
    assert_eq!(issuer(&tokens[0]), None);
    assert_eq!(issuer(&tokens[1]).as_deref(), Some("https://idp.example"));
    assert_eq!(issuer(&tokens[2]).as_deref(), Some("https://idp.example"));
    assert_eq!(issuer(&token(r#"{"iss":7}"#, &p)), None);
}

/// `peek` reads the payload only, but a token refused for its form is refused for the reason it
/// got when the header was checked first (`check_form`, then the payload): so callers that go on
/// without a record call `check_form` before anything else that can refuse.
#[test]
fn peek_refuses_for_the_header_first_as_a_full_check_would() {
    let (p, _) = hs256();
    let good = token(&fresh_claims(), &p);
    let h = segment(&good, 0);
    let pl = segment(&good, 1);
    let bad_headers = [
        "!!".to_owned(),
        b64("{}"),
        b64(r#"{"alg":"none"}"#),
        b64(r#"{"alg":"HS256","crit":["x"]}"#),
        b64(r#"{"alg":"HS256","alg":"HS256"}"#),
        b64("[1]"),
    ];
    let bad_payloads = [
        "!!".to_owned(),
        b64("[1]"),
        b64(r#"{"a":1,"a":2}"#),
        b64("{\"a\":\"\\u0000\"}"),
        b64("{"),
    ];
    let policy = HeaderPolicy::default();
    let old_order = |t: &str| -> Result<(), String> {
        token::check_form(t.as_bytes(), &policy).map_err(|e| e.to_string())?;
        token::peek(t.as_bytes(), &policy)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    for header in bad_headers.iter().chain([&h]) {
        for payload in bad_payloads.iter().chain([&pl]) {
            let t = format!("{header}.{payload}.c2ln");
            let peeked = token::peek(t.as_bytes(), &policy)
                .map(|_| ())
                .map_err(|e| e.to_string());
            if payload == &pl {
                // The payload is good: peek does not read the header; check_form does.
                assert!(peeked.is_ok(), "{t}");
            } else {
                assert_eq!(peeked, old_order(&t), "{t}");
                assert!(peeked.is_err(), "{t}");
            }
        }
    }
    for t in ["", "a.b", "a.b.c.d.e", &format!("{good}{}", "A".repeat(20_000))] {
        let peeked = token::peek(t.as_bytes(), &policy)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(peeked, old_order(t), "{t}");
    }
}

/// The shared cache chooses a token's bucket by `tail_hash` (so it can fetch the bucket before
/// the SHA-256 is done): it depends on the seed, the length and the last 16 bytes only, and
/// never panics on short input. Equality stays the SHA-256 key above.
#[test]
fn the_bucket_hash_depends_on_seed_length_and_tail_only() {
    let token = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLWJ5dGVz";
    assert_ne!(token::tail_hash(1, token), token::tail_hash(2, token));
    let mut head_changed = *token;
    head_changed[0] = b'X';
    assert_eq!(token::tail_hash(7, token), token::tail_hash(7, &head_changed));
    let mut tail_changed = *token;
    tail_changed[token.len() - 1] = b'X';
    assert_ne!(token::tail_hash(7, token), token::tail_hash(7, &tail_changed));
    assert_ne!(token::tail_hash(7, &token[1..]), token::tail_hash(7, token));
    for len in 0..20 {
        let _ = token::tail_hash(7, &token[..len]);
    }
}

/// Tails that differ only in a few decimal digits still spread over the buckets, whatever the
/// seed (a single multiply-fold left some seeds with a few dozen of 1,024 buckets).
#[test]
fn the_bucket_hash_spreads_near_identical_tails_under_every_seed() {
    let tokens: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| format!("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.signature{i:08}tail").into_bytes())
        .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..256 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let buckets: std::collections::HashSet<u64> = tokens.iter().map(|t| token::tail_hash(seed, t) & 1023).collect();
        assert!(buckets.len() > 550, "seed {seed:#x}: {} of 1024 buckets", buckets.len());
    }
}
