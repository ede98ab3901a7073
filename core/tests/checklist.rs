//! One test per row A1–E21 of ../shared/security-checklist.md, named after its row.
//! Rows whose offline vectors are Wycheproof/RFC files are also covered by tests/vectors.rs.

mod common;

use common::*;
use num_bigint::BigUint;
use pg_jwt_core::json::Json;
use pg_jwt_core::token::{verify_signature, HeaderPolicy};
use pg_jwt_core::{Algorithm, KeyError, KeySet, TokenError, Validation};

fn is_malformed<T: std::fmt::Debug>(r: &Result<T, TokenError>) -> bool {
    matches!(r, Err(TokenError::Malformed(_)))
}

fn assert_malformed<T: std::fmt::Debug>(r: Result<T, TokenError>, what: &str) {
    assert!(is_malformed(&r), "{what}: expected malformed, got {r:?}");
}

/// E-AUTH: a rejection that is about authentication, not syntax.
fn assert_auth<T: std::fmt::Debug>(r: Result<T, TokenError>, what: &str) {
    assert!(
        matches!(
            r,
            Err(TokenError::InvalidSignature
                | TokenError::AlgorithmNotAllowed(_)
                | TokenError::NoMatchingKey(_)
                | TokenError::Expired { .. }
                | TokenError::NotYetValid { .. }
                | TokenError::AudienceMismatch(_)
                | TokenError::IssuerMismatch(_)
                | TokenError::MissingClaim(_)
                | TokenError::InvalidClaimType(_))
        ),
        "{what}: expected an authentication error, got {r:?}"
    );
}

fn key_err(jwks: &str) -> KeyError {
    match parse_set(jwks.as_bytes()) {
        Ok(k) => panic!("key set accepted: {k:?}"),
        Err(e) => e,
    }
}

fn header_token(header: &str, private: &str) -> String {
    token_raw(header, &fresh_claims(), private)
}

// ----------------------------------------------------------------------------------------
// A. Compact serialization & base64url

#[test]
fn a1_empty_and_dot_only_tokens_malformed() {
    let (_, keys) = hs256();
    for t in ["", ".", ".."] {
        assert_malformed(verify(t, &keys), t);
    }
}

#[test]
fn a2_fewer_than_three_segments_malformed() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    let parts: Vec<&str> = t.split('.').collect();
    for bad in [
        parts[0].to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.", parts[0]),
        format!(".{}", parts[1]),
    ] {
        assert_malformed(verify(&bad, &keys), &bad);
    }
}

#[test]
fn a3_more_than_three_segments_malformed() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    assert_malformed(verify(&format!("{t}."), &keys), "trailing dot");
    assert_malformed(verify(&format!("{t}.{}", segment(&t, 2)), &keys), "four segments");
}

#[test]
fn a4_five_segments_jwe_unsupported() {
    let (_, keys) = hs256();
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn";
    assert!(matches!(verify(jwe, &keys), Err(TokenError::Unsupported(_))));
}

#[test]
fn a5_json_serialization_malformed() {
    let (_, keys) = hs256();
    let t = r#"{"payload":"Zm9v","protected":"eyJhbGciOiJIUzI1NiJ9","signature":"abc"}"#;
    assert_malformed(verify(t, &keys), "JSON serialization");
}

#[test]
fn a6_padding_in_any_segment_malformed() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    for i in 0..3 {
        let padded = with_segment(&t, i, &format!("{}=", segment(&t, i)));
        assert_malformed(verify(&padded, &keys), &format!("segment {i} padded"));
        let padded = with_segment(&t, i, &format!("{}==", segment(&t, i)));
        assert_malformed(verify(&padded, &keys), &format!("segment {i} padded twice"));
    }
}

#[test]
fn a7_standard_alphabet_malformed() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    for i in 0..3 {
        for c in ["+", "/"] {
            let s = segment(&t, i);
            let bad = with_segment(&t, i, &format!("{}{c}{}", &s[..4], &s[5..]));
            assert_malformed(verify(&bad, &keys), &format!("segment {i} with {c}"));
        }
    }
}

#[test]
fn a8_whitespace_and_bearer_prefix_malformed() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    for bad in [
        format!(" {t}"),
        format!("{t} "),
        format!("{t}\n"),
        format!("Bearer {t}"),
        t.replacen('.', ". ", 1),
        t.replacen('.', "\t.", 1),
        format!("{}\n{}", &t[..10], &t[10..]),
    ] {
        assert_malformed(verify(&bad, &keys), &format!("{bad:?}"));
    }
}

#[test]
fn a9_other_invalid_characters_malformed() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    for c in ["?", "#", "!", "%", "é", "\u{0}", "*"] {
        let s = segment(&t, 1);
        let bad = with_segment(&t, 1, &format!("{}{c}{}", &s[..4], &s[5..]));
        assert_malformed(verify(&bad, &keys), c);
    }
}

#[test]
fn a10_non_canonical_trailing_bits_malformed() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    // A 32-byte HMAC encodes to 43 characters: the last carries 2 unused bits.
    let sig = segment(&t, 2);
    assert_eq!(sig.len() % 4, 3);
    let last = sig.as_bytes()[sig.len() - 1];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.iter().position(|c| *c == last).unwrap();
    let bumped = alphabet[(idx & !3) | 1] as char;
    let bad = with_segment(&t, 2, &format!("{}{bumped}", &sig[..sig.len() - 1]));
    assert_malformed(verify(&bad, &keys), "non-canonical signature");
}

#[test]
fn a11_segment_length_one_mod_four_malformed() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    for i in 0..3 {
        let s = segment(&t, i);
        let extra = if s.len() % 4 == 0 { "A" } else { "" };
        let mut bad = format!("{s}{extra}");
        while bad.len() % 4 != 1 {
            bad.push('A');
        }
        assert_malformed(verify(&with_segment(&t, i, &bad), &keys), &format!("segment {i}"));
    }
}

#[test]
fn a12_any_bit_flipped_is_an_invalid_signature() {
    for alg in ["HS256", "RS256", "ES256", "EdDSA"] {
        let p = private_jwk(alg, None);
        let keys = keyset(&verify_jwks(&p));
        let claims = fresh_claims();
        let t = token(&claims, &p);
        assert!(verify(&t, &keys).is_ok(), "{alg}: the untouched token must verify");
        // Payload: one bit of the claims JSON changed, still valid JSON.
        let flipped = claims.replace("alice", "alicf");
        assert_eq!(
            verify(&with_segment(&t, 1, &b64(&flipped)), &keys).unwrap_err(),
            TokenError::InvalidSignature
        );
        // Header: same meaning, different bytes.
        let h = String::from_utf8(pg_jwt_core::b64::decode(segment(&t, 0).as_bytes()).unwrap()).unwrap();
        let h2 = h.replace("\"typ\":\"JWT\"", "\"typ\":\"JWS\"");
        assert_ne!(h, h2);
        assert_eq!(
            verify(&with_segment(&t, 0, &b64(&h2)), &keys).unwrap_err(),
            TokenError::InvalidSignature,
            "{alg}"
        );
        // Signature: every bit of the first byte and one bit of the last.
        let sig = pg_jwt_core::b64::decode(segment(&t, 2).as_bytes()).unwrap();
        for bit in 0..8 {
            let mut s = sig.clone();
            s[0] ^= 1 << bit;
            let bad = with_segment(&t, 2, &pg_jwt_core::b64::encode(&s));
            assert_eq!(
                verify(&bad, &keys).unwrap_err(),
                TokenError::InvalidSignature,
                "{alg} bit {bit}"
            );
        }
        let mut s = sig.clone();
        *s.last_mut().unwrap() ^= 0x80;
        assert_eq!(
            verify(&with_segment(&t, 2, &pg_jwt_core::b64::encode(&s)), &keys).unwrap_err(),
            TokenError::InvalidSignature
        );
    }
}

#[test]
fn a13_whitespace_inside_header_json_accepted() {
    let (p, keys) = hs256();
    let t = header_token("{ \"alg\" :\n\t\"HS256\" ,  \"typ\": \"JWT\" }", &p);
    assert!(verify(&t, &keys).is_ok());
}

#[test]
fn a14_oversized_token_rejected_before_decoding() {
    let (_, keys) = hs256();
    // Not even base64url: the size cap must fire first.
    let huge = "!".repeat(16 * 1024 + 1);
    assert!(matches!(verify(&huge, &keys), Err(TokenError::TooLarge(_))));
    let policy = HeaderPolicy {
        max_token_bytes: 100,
        ..Default::default()
    };
    let (p, _) = hs256();
    let t = token(&fresh_claims(), &p);
    assert!(matches!(
        verify_signature(t.as_bytes(), &keys, &policy),
        Err(TokenError::TooLarge(_))
    ));
}

// ----------------------------------------------------------------------------------------
// B. JOSE header

#[test]
fn b1_alg_none_in_any_case_not_allowed() {
    let (p, keys) = hs256();
    for none in ["none", "None", "NONE", "nOnE"] {
        let h = b64(&format!("{{\"alg\":\"{none}\"}}"));
        let body = b64(&fresh_claims());
        for t in [
            format!("{h}.{body}."),
            format!("{h}.{body}.{}", segment(&token(&fresh_claims(), &p), 2)),
        ] {
            assert!(
                matches!(verify(&t, &keys), Err(TokenError::AlgorithmNotAllowed(_))),
                "{none}"
            );
        }
    }
}

#[test]
fn b2_alg_missing_empty_or_not_a_string_malformed() {
    let (p, keys) = hs256();
    for h in [
        r#"{"typ":"JWT"}"#,
        r#"{"alg":""}"#,
        r#"{"alg":256}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"alg":null}"#,
    ] {
        assert_malformed(verify(&header_token(h, &p), &keys), h);
    }
}

#[test]
fn b3_alg_outside_allow_list_rejected() {
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    let policy = HeaderPolicy {
        allowed_algs: Some(vec![Algorithm::RS256]),
        ..Default::default()
    };
    assert!(matches!(
        verify_signature(t.as_bytes(), &keys, &policy),
        Err(TokenError::AlgorithmNotAllowed(_))
    ));
    let policy = HeaderPolicy {
        allowed_algs: Some(vec![Algorithm::HS256]),
        ..Default::default()
    };
    assert!(verify_signature(t.as_bytes(), &keys, &policy).is_ok());
    // An unknown algorithm name is not allowed either.
    assert!(matches!(
        verify(&header_token(r#"{"alg":"HS1"}"#, &p), &keys),
        Err(TokenError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn b4_alg_differs_from_key_alg_rejected() {
    // Key pinned to PS512, token RS256 (same family).
    let p_rs = private_jwk("RS256", Some("k1"));
    let pub_ps = verify_jwks(&p_rs).replace("\"alg\":\"RS256\"", "\"alg\":\"PS512\"");
    let keys = keyset(&pub_ps);
    let t = token(&fresh_claims(), &p_rs);
    assert!(matches!(verify(&t, &keys), Err(TokenError::AlgorithmNotAllowed(_))));
    // Without kid: no key allows RS256.
    let p_nokid = private_jwk("RS256", None);
    let keys = keyset(&verify_jwks(&p_nokid).replace("\"alg\":\"RS256\"", "\"alg\":\"PS512\""));
    assert_auth(verify(&token(&fresh_claims(), &p_nokid), &keys), "no kid");
}

#[test]
fn b5_hs256_with_public_key_bytes_never_accepted() {
    // The classic confusion: MAC a token with the RSA/EC public key's bytes as the secret.
    for alg in ["RS256", "ES256", "EdDSA"] {
        let p = private_jwk(alg, None);
        let public = verify_jwks(&p);
        let keys = keyset(&public);
        let j = Json::parse(public.as_bytes()).unwrap();
        let key0 = j.get("keys").unwrap().as_array().unwrap()[0].clone();
        let mut secrets: Vec<Vec<u8>> = vec![public.clone().into_bytes(), key0.to_json_string().into_bytes()];
        for m in ["n", "x"] {
            if let Some(v) = key0.get(m).and_then(Json::as_str) {
                secrets.push(v.as_bytes().to_vec());
                secrets.push(pg_jwt_core::b64::decode(v.as_bytes()).unwrap());
            }
        }
        for secret in secrets {
            let jwk = format!("{{\"kty\":\"oct\",\"k\":\"{}\"}}", pg_jwt_core::b64::encode(&secret));
            let t = header_token(r#"{"alg":"HS256","typ":"JWT"}"#, &jwk);
            assert_auth(verify(&t, &keys), alg);
        }
    }
}

#[test]
fn b6_any_crit_unsupported() {
    let (p, keys) = hs256();
    for crit in [
        r#"["foo"]"#,
        "[]",
        r#"["exp"]"#,
        r#"["alg"]"#,
        r#""b64""#,
        r#"["b64","b64"]"#,
        "null",
    ] {
        let h = format!(r#"{{"alg":"HS256","crit":{crit}}}"#);
        assert!(
            matches!(verify(&header_token(&h, &p), &keys), Err(TokenError::Unsupported(_))),
            "{crit}"
        );
    }
}

#[test]
fn b7_b64_header_unsupported() {
    let (p, keys) = hs256();
    for v in ["false", "true"] {
        let h = format!(r#"{{"alg":"HS256","b64":{v}}}"#);
        assert!(matches!(
            verify(&header_token(&h, &p), &keys),
            Err(TokenError::Unsupported(_))
        ));
    }
}

#[test]
fn b8_enc_or_zip_in_three_segment_token_unsupported() {
    let (p, keys) = hs256();
    for h in [r#"{"alg":"HS256","enc":"A256GCM"}"#, r#"{"alg":"HS256","zip":"DEF"}"#] {
        assert!(
            matches!(verify(&header_token(h, &p), &keys), Err(TokenError::Unsupported(_))),
            "{h}"
        );
    }
}

#[test]
fn b9_nested_jwt_cty_unsupported() {
    let (p, keys) = hs256();
    for cty in ["JWT", "jwt", "application/JWT", "Application/jwt"] {
        let h = format!(r#"{{"alg":"HS256","cty":"{cty}"}}"#);
        assert!(
            matches!(verify(&header_token(&h, &p), &keys), Err(TokenError::Unsupported(_))),
            "{cty}"
        );
    }
    assert!(verify(&header_token(r#"{"alg":"HS256","cty":"text/plain"}"#, &p), &keys).is_ok());
}

#[test]
fn b10_embedded_jwk_never_used() {
    let real = private_jwk("ES256", None);
    let keys = keyset(&verify_jwks(&real));
    let attacker = private_jwk("ES256", None);
    let attacker_pub = Json::parse(verify_jwks(&attacker).as_bytes()).unwrap();
    let jwk = attacker_pub.get("keys").unwrap().as_array().unwrap()[0].to_json_string();
    let t = header_token(&format!(r#"{{"alg":"ES256","jwk":{jwk}}}"#), &attacker);
    assert_eq!(verify(&t, &keys).unwrap_err(), TokenError::InvalidSignature);
}

#[test]
fn b11_jku_x5u_x5c_never_dereferenced() {
    // They are ignored: the token verifies with the configured key, nothing is fetched.
    let (p, keys) = hs256();
    let h = r#"{"alg":"HS256","jku":"http://127.0.0.1:1/jwks","x5u":"http://127.0.0.1:1/x","x5c":["AAAA"]}"#;
    assert!(verify(&header_token(h, &p), &keys).is_ok());
    // And a token signed by another key is not rescued by them.
    let (other, _) = hs256();
    assert_eq!(
        verify(&header_token(h, &other), &keys).unwrap_err(),
        TokenError::InvalidSignature
    );
}

#[test]
fn b12_hostile_kid_values() {
    let p = private_jwk("HS256", Some("real"));
    let keys = keyset(&verify_jwks(&p));
    for kid in ["../real", "' OR 1=1--", "real%00", "real\\u0000x", "REAL", "real "] {
        let h = format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#);
        let r = verify(&header_token(&h, &p), &keys);
        assert!(
            matches!(r, Err(TokenError::NoMatchingKey(_)) | Err(TokenError::Malformed(_))),
            "{kid}: {r:?}"
        );
    }
    let long = "k".repeat(10 * 1024);
    let h = format!(r#"{{"alg":"HS256","kid":"{long}"}}"#);
    let r = verify(&header_token(&h, &p), &keys);
    assert!(matches!(r, Err(TokenError::TooLarge(_))), "{r:?}");
    for kid in ["1", "null", "[\"real\"]", "{}"] {
        let h = format!(r#"{{"alg":"HS256","kid":{kid}}}"#);
        assert_malformed(verify(&header_token(&h, &p), &keys), kid);
    }
}

#[test]
fn b13_no_kid_with_several_candidate_keys_rejected() {
    let a = private_jwk("ES256", Some("a"));
    let b = private_jwk("ES256", Some("b"));
    let set = format!(
        "{{\"keys\":[{},{}]}}",
        Json::parse(verify_jwks(&a).as_bytes())
            .unwrap()
            .get("keys")
            .unwrap()
            .as_array()
            .unwrap()[0]
            .to_json_string(),
        Json::parse(verify_jwks(&b).as_bytes())
            .unwrap()
            .get("keys")
            .unwrap()
            .as_array()
            .unwrap()[0]
            .to_json_string()
    );
    let keys = keyset(&set);
    let no_kid = header_token(r#"{"alg":"ES256"}"#, &a);
    assert!(matches!(verify(&no_kid, &keys), Err(TokenError::NoMatchingKey(_))));
    assert!(
        verify(&token(&fresh_claims(), &a), &keys).is_ok(),
        "with kid it verifies"
    );
}

#[test]
fn b14_duplicate_header_member_malformed() {
    let (p, keys) = hs256();
    for h in [
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
    ] {
        assert_malformed(verify(&header_token(h, &p), &keys), h);
    }
}

#[test]
fn b15_typ_outside_configured_set_rejected() {
    let (p, keys) = hs256();
    let policy = HeaderPolicy {
        allowed_typ: Some(vec!["at+jwt".into()]),
        ..Default::default()
    };
    let check = |h: &str| verify_signature(header_token(h, &p).as_bytes(), &keys, &policy);
    assert!(matches!(
        check(r#"{"alg":"HS256","typ":"JWT"}"#),
        Err(TokenError::AlgorithmNotAllowed(_))
    ));
    assert!(matches!(
        check(r#"{"alg":"HS256"}"#),
        Err(TokenError::AlgorithmNotAllowed(_))
    ));
    assert!(check(r#"{"alg":"HS256","typ":"at+jwt"}"#).is_ok());
    assert!(check(r#"{"alg":"HS256","typ":"application/AT+JWT"}"#).is_ok());
    assert_malformed(
        verify(&header_token(r#"{"alg":"HS256","typ":1}"#, &p), &keys),
        "typ number",
    );
}

#[test]
fn b16_header_not_an_object_bom_or_bad_utf8_malformed() {
    let (p, keys) = hs256();
    let body = b64(&fresh_claims());
    let sig = segment(&token(&fresh_claims(), &p), 2);
    for h in [
        &b"[\"HS256\"]"[..],
        b"\"HS256\"",
        b"1",
        b"\xef\xbb\xbf{\"alg\":\"HS256\"}",
        b"{\"alg\":\"HS256\xff\"}",
    ] {
        let t = format!("{}.{body}.{sig}", pg_jwt_core::b64::encode(h));
        assert_malformed(verify(&t, &keys), &format!("{h:?}"));
    }
}

#[test]
fn b17_oversized_header_rejected() {
    let (p, keys) = hs256();
    let h = format!(r#"{{"alg":"HS256","pad":"{}"}}"#, "x".repeat(2100));
    assert!(matches!(
        verify(&header_token(&h, &p), &keys),
        Err(TokenError::TooLarge(_))
    ));
}

// ----------------------------------------------------------------------------------------
// C. Signature / cryptography

const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";

fn hex32(v: &BigUint) -> Vec<u8> {
    let b = v.to_bytes_be();
    let mut out = vec![0u8; 32usize.saturating_sub(b.len())];
    out.extend_from_slice(&b[b.len().saturating_sub(32)..]);
    out
}

fn es256_setup() -> (String, KeySet, String) {
    let p = private_jwk("ES256", None);
    let keys = keyset(&verify_jwks(&p));
    let t = token(&fresh_claims(), &p);
    (p, keys, t)
}

#[test]
fn c1_psychic_signature_rejected() {
    let (_, keys, t) = es256_setup();
    let zero = pg_jwt_core::b64::encode(&[0u8; 64]);
    assert_eq!(
        verify(&with_segment(&t, 2, &zero), &keys).unwrap_err(),
        TokenError::InvalidSignature
    );
}

#[test]
fn c2_out_of_range_r_and_s_rejected() {
    let (_, keys, t) = es256_setup();
    let sig = pg_jwt_core::b64::decode(segment(&t, 2).as_bytes()).unwrap();
    let r = BigUint::from_bytes_be(&sig[..32]);
    let s = BigUint::from_bytes_be(&sig[32..]);
    let n = BigUint::parse_bytes(P256_N.as_bytes(), 16).unwrap();
    let p = BigUint::parse_bytes(P256_P.as_bytes(), 16).unwrap();
    let one = BigUint::from(1u32);
    let specials = [
        BigUint::from(0u32),
        one.clone(),
        &n - &one,
        n.clone(),
        &n + &one,
        p.clone(),
        &p + &one,
    ];
    for v in &specials {
        for (rr, ss) in [(v.clone(), s.clone()), (r.clone(), v.clone()), (v.clone(), v.clone())] {
            let mut bytes = hex32(&rr);
            bytes.extend(hex32(&ss));
            let bad = with_segment(&t, 2, &pg_jwt_core::b64::encode(&bytes));
            assert_eq!(verify(&bad, &keys).unwrap_err(), TokenError::InvalidSignature);
        }
    }
    // r not reduced: r + n (when it still fits in 32 bytes).
    let big = &r + &n;
    if big.bits() <= 256 {
        let mut bytes = hex32(&big);
        bytes.extend(hex32(&s));
        assert_eq!(
            verify(&with_segment(&t, 2, &pg_jwt_core::b64::encode(&bytes)), &keys).unwrap_err(),
            TokenError::InvalidSignature
        );
    }
}

#[test]
fn c3_der_or_wrong_length_ecdsa_signatures_rejected() {
    let (_, keys, t) = es256_setup();
    let sig = pg_jwt_core::b64::decode(segment(&t, 2).as_bytes()).unwrap();
    let mut der = vec![0x30, 0x44, 0x02, 0x20];
    der.extend_from_slice(&sig[..32]);
    der.extend_from_slice(&[0x02, 0x20]);
    der.extend_from_slice(&sig[32..]);
    let mut trailing = sig.clone();
    trailing.extend_from_slice(&[0, 0]);
    for bad in [
        der,
        sig[..63].to_vec(),
        [&sig[..], &[0]].concat(),
        [&sig[..], &sig[..]].concat(),
        trailing,
    ] {
        assert_eq!(
            verify(&with_segment(&t, 2, &pg_jwt_core::b64::encode(&bad)), &keys).unwrap_err(),
            TokenError::InvalidSignature
        );
    }
}

#[test]
fn c4_high_s_ecdsa_signature_accepted() {
    let (_, keys, t) = es256_setup();
    let sig = pg_jwt_core::b64::decode(segment(&t, 2).as_bytes()).unwrap();
    let n = BigUint::parse_bytes(P256_N.as_bytes(), 16).unwrap();
    let s = BigUint::from_bytes_be(&sig[32..]);
    let mut bytes = sig[..32].to_vec();
    bytes.extend(hex32(&(&n - &s)));
    let twin = with_segment(&t, 2, &pg_jwt_core::b64::encode(&bytes));
    assert_ne!(twin, t);
    // Valid ECDSA: accepted. The twin is a different string with the same claims, which is why
    // signature bytes are never used as a replay identity (pg_jwt keeps no replay state).
    assert_eq!(verify(&twin, &keys).unwrap().claims, verify(&t, &keys).unwrap().claims);
}

#[test]
fn c5_curve_and_alg_mismatch_rejected() {
    let (p, keys, _) = es256_setup();
    let t = header_token(
        r#"{"alg":"ES384"}"#,
        &p.replace("\"alg\":\"ES256\"", "\"alg\":\"ES256\""),
    );
    assert_auth(verify(&t, &keys), "ES384 header, P-256 key");
    // A P-256 key claiming ES384 is refused at import.
    let bad = verify_jwks(&p).replace("\"alg\":\"ES256\"", "\"alg\":\"ES384\"");
    assert!(matches!(key_err(&bad), KeyError::Key { .. }));
}

#[test]
fn c6_es512_unsupported() {
    let (p, keys) = hs256();
    let r = verify(&header_token(r#"{"alg":"ES512"}"#, &p), &keys);
    assert!(matches!(r, Err(TokenError::Unsupported(_))), "{r:?}");
}

#[test]
fn c7_rsa_pkcs1_mutations_rejected() {
    // The Wycheproof RS256 group (tc33-258) runs in tests/vectors.rs; here: sig = 0, 1, n-1, n
    // and a re-signed digest under another hash.
    let p = private_jwk("RS256", None);
    let keys = keyset(&verify_jwks(&p));
    let t = token(&fresh_claims(), &p);
    let n = pg_jwt_core::b64::decode(
        Json::parse(p.as_bytes())
            .unwrap()
            .get("n")
            .unwrap()
            .as_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let nn = BigUint::from_bytes_be(&n);
    let to_len = |v: BigUint| {
        let b = v.to_bytes_be();
        let mut out = vec![0u8; n.len().saturating_sub(b.len())];
        out.extend(b);
        out
    };
    for v in [BigUint::from(0u32), BigUint::from(1u32), &nn - 1u32, nn.clone()] {
        let bad = with_segment(&t, 2, &pg_jwt_core::b64::encode(&to_len(v)));
        assert_eq!(verify(&bad, &keys).unwrap_err(), TokenError::InvalidSignature);
    }
    // An RS512 signature presented as RS256 (wrong DigestInfo).
    let rs512 = token(&fresh_claims(), &private_jwk("RS512", None));
    let header256 = segment(&t, 0);
    let bad = format!("{header256}.{}.{}", segment(&rs512, 1), segment(&rs512, 2));
    assert_eq!(verify(&bad, &keys).unwrap_err(), TokenError::InvalidSignature);
}

#[test]
fn c8_rsa_pss_mutations_rejected() {
    let p = private_jwk("PS256", None);
    let keys = keyset(&verify_jwks(&p));
    let t = token(&fresh_claims(), &p);
    assert!(verify(&t, &keys).is_ok());
    let sig = pg_jwt_core::b64::decode(segment(&t, 2).as_bytes()).unwrap();
    for i in [0, sig.len() / 2, sig.len() - 1] {
        let mut s = sig.clone();
        s[i] ^= 0x01;
        assert_eq!(
            verify(&with_segment(&t, 2, &pg_jwt_core::b64::encode(&s)), &keys).unwrap_err(),
            TokenError::InvalidSignature
        );
    }
    // Leading zero added or removed: wrong length.
    let with_zero = [&[0u8][..], &sig].concat();
    assert_eq!(
        verify(&with_segment(&t, 2, &pg_jwt_core::b64::encode(&with_zero)), &keys).unwrap_err(),
        TokenError::InvalidSignature
    );
    // A PS384 signature over the same input.
    let ps384 = private_jwk("PS384", None);
    let other = token_raw(
        &String::from_utf8(pg_jwt_core::b64::decode(segment(&t, 0).as_bytes()).unwrap()).unwrap(),
        &String::from_utf8(pg_jwt_core::b64::decode(segment(&t, 1).as_bytes()).unwrap()).unwrap(),
        &ps384,
    );
    assert_eq!(verify(&other, &keys).unwrap_err(), TokenError::InvalidSignature);
}

#[test]
fn c9_ed25519_non_canonical_or_truncated_signatures_rejected() {
    let p = private_jwk("EdDSA", None);
    let keys = keyset(&verify_jwks(&p));
    let t = token(&fresh_claims(), &p);
    let sig = pg_jwt_core::b64::decode(segment(&t, 2).as_bytes()).unwrap();
    // S + L: same value mod L, non-canonical encoding.
    let l = BigUint::parse_bytes(
        b"7237005577332262213973186563042994240857116359379907606001950938285454250989",
        10,
    )
    .unwrap();
    let s = BigUint::from_bytes_le(&sig[32..]);
    let mut s_plus_l = (&s + &l).to_bytes_le();
    s_plus_l.resize(32, 0);
    let bad_s = [&sig[..32], &s_plus_l[..]].concat();
    for bad in [bad_s, sig[..63].to_vec(), [&sig[..], &[0]].concat()] {
        assert_eq!(
            verify(&with_segment(&t, 2, &pg_jwt_core::b64::encode(&bad)), &keys).unwrap_err(),
            TokenError::InvalidSignature
        );
    }
}

#[test]
fn c10_modified_or_truncated_hmac_rejected() {
    for alg in ["HS256", "HS384", "HS512"] {
        let p = private_jwk(alg, None);
        let keys = keyset(&verify_jwks(&p));
        let t = token(&fresh_claims(), &p);
        assert!(verify(&t, &keys).is_ok(), "{alg}");
        let sig = pg_jwt_core::b64::decode(segment(&t, 2).as_bytes()).unwrap();
        let mut flipped = sig.clone();
        flipped[5] ^= 4;
        for bad in [flipped, sig[..sig.len() - 1].to_vec(), sig[..16].to_vec(), vec![]] {
            assert_eq!(
                verify(&with_segment(&t, 2, &pg_jwt_core::b64::encode(&bad)), &keys).unwrap_err(),
                TokenError::InvalidSignature
            );
        }
    }
}

#[test]
fn c11_valid_mac_over_non_canonical_segment_malformed() {
    let (p, keys) = hs256();
    let claims = fresh_claims();
    // Find a payload whose encoding has unused bits, then set one of them.
    let payload = if b64(&claims).len() % 4 == 0 {
        format!("{claims} ")
    } else {
        claims.clone()
    };
    let enc = b64(&payload);
    assert_ne!(enc.len() % 4, 0);
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = enc.chars().last().unwrap();
    let idx = alphabet.find(last).unwrap();
    let non_canonical = format!("{}{}", &enc[..enc.len() - 1], alphabet.as_bytes()[idx | 1] as char);
    assert_ne!(non_canonical, enc);
    let header = b64(r#"{"alg":"HS256"}"#);
    let input = format!("{header}.{non_canonical}");
    let key = pg_jwt_core::SigningKey::parse(p.as_bytes()).unwrap();
    let mac = pg_jwt_core::b64::encode(&key.sign(input.as_bytes()).unwrap());
    assert_malformed(
        verify(&format!("{input}.{mac}"), &keys),
        "valid MAC, non-canonical payload",
    );
}

#[test]
fn c12_signature_is_over_the_received_bytes() {
    // Header and payload with unusual but valid spacing and member order: the signature over
    // these exact bytes verifies; a re-encoding would not.
    let (p, keys) = hs256();
    let payload = format!("{{ \"exp\" : {} ,\n \"sub\":\"alice\" }}", now() + 600);
    let t = token_raw("{\"typ\":\"JWT\",   \"alg\":\"HS256\"}", &payload, &p);
    assert!(verify(&t, &keys).is_ok());
    // RFC 7520 figures (tests/vectors.rs) are verified the same way.
}

// ----------------------------------------------------------------------------------------
// D. JWKS / key import

fn rsa_public(n: &[u8], e: &[u8]) -> String {
    format!(
        r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#,
        pg_jwt_core::b64::encode(n),
        pg_jwt_core::b64::encode(e)
    )
}

fn odd_modulus(bytes: usize) -> Vec<u8> {
    let mut n = vec![0xC3u8; bytes];
    n[0] = 0xD1;
    *n.last_mut().unwrap() = 0x0B;
    n
}

#[test]
fn d1_rsa_modulus_under_2048_bits_rejected() {
    for bytes in [64, 128, 255] {
        let e = key_err(&rsa_public(&odd_modulus(bytes), &[1, 0, 1]));
        assert!(e.to_string().contains("at least 2048"), "{e}");
    }
}

#[test]
fn d2_rsa_exponent_one_rejected() {
    assert!(key_err(&rsa_public(&odd_modulus(256), &[1]))
        .to_string()
        .contains("exponent"));
}

#[test]
fn d3_rsa_exponent_even_small_or_huge_rejected() {
    for e in [&[2u8][..], &[1, 0, 0], &[0x01, 0, 0, 0, 1]] {
        assert!(
            key_err(&rsa_public(&odd_modulus(256), e))
                .to_string()
                .contains("exponent"),
            "{e:?}"
        );
    }
}

#[test]
fn d4_rsa_modulus_over_8192_bits_rejected_at_import() {
    let e = key_err(&rsa_public(&odd_modulus(1025), &[1, 0, 1]));
    assert!(e.to_string().contains("at most 8192"), "{e}");
}

#[test]
fn d5_non_minimal_rsa_integers_rejected() {
    let p = private_jwk("RS256", None);
    let j = Json::parse(p.as_bytes()).unwrap();
    let n = pg_jwt_core::b64::decode(j.get("n").unwrap().as_str().unwrap().as_bytes()).unwrap();
    let padded = [&[0u8][..], &n].concat();
    assert!(key_err(&rsa_public(&padded, &[1, 0, 1]))
        .to_string()
        .contains("leading zero"));
    assert!(key_err(&rsa_public(&n, &[0, 1, 0, 1]))
        .to_string()
        .contains("leading zero"));
    assert!(parse_set(rsa_public(&n, &[1, 0, 1]).as_bytes()).is_ok());
}

#[test]
fn d6_roca_vulnerable_modulus_rejected() {
    if !vectors_present() {
        return;
    }
    // WP-JWK tc7 (tests/vectors.rs) is a real ROCA key; a modulus of the form 65537^k mod M
    // passes the fingerprint by construction.
    let doc: serde_json::Value = serde_json::from_str(&read_vector("wycheproof/json_web_key_test.json")).unwrap();
    let group = doc["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["tests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["tcId"] == 7 || t["tcId"] == "7")
        })
        .unwrap();
    let jwks = strip_private(group.get("public").unwrap_or(&group["private"])).to_string();
    assert!(key_err(&jwks).to_string().contains("ROCA"));
}

#[test]
fn d7_invalid_ec_points_rejected() {
    let p = private_jwk("ES256", None);
    let j = Json::parse(p.as_bytes()).unwrap();
    let x = j.get("x").unwrap().as_str().unwrap().to_owned();
    let y = j.get("y").unwrap().as_str().unwrap().to_owned();
    let ec = |x: &str, y: &str| format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}"#);
    assert!(parse_set(ec(&x, &y).as_bytes()).is_ok());
    let mut yb = pg_jwt_core::b64::decode(y.as_bytes()).unwrap();
    yb[31] ^= 1;
    let zero = pg_jwt_core::b64::encode(&[0u8; 32]);
    let p_bytes = pg_jwt_core::b64::encode(&BigUint::parse_bytes(P256_P.as_bytes(), 16).unwrap().to_bytes_be());
    let short = pg_jwt_core::b64::encode(&pg_jwt_core::b64::decode(x.as_bytes()).unwrap()[1..]);
    for (bx, by) in [
        (x.clone(), pg_jwt_core::b64::encode(&yb)),
        (zero.clone(), zero.clone()),
        (p_bytes.clone(), y.clone()),
        (short, y.clone()),
        (x.clone() + "AA", y.clone()),
    ] {
        assert!(matches!(key_err(&ec(&bx, &by)), KeyError::Key { .. }));
    }
    // P-384 too.
    let p384 = private_jwk("ES384", None);
    let j = Json::parse(p384.as_bytes()).unwrap();
    let (x, y) = (
        j.get("x").unwrap().as_str().unwrap(),
        j.get("y").unwrap().as_str().unwrap(),
    );
    let ec384 = |x: &str, y: &str| format!(r#"{{"kty":"EC","crv":"P-384","x":"{x}","y":"{y}"}}"#);
    assert!(parse_set(ec384(x, y).as_bytes()).is_ok());
    assert!(parse_set(ec384(y, x).as_bytes()).is_err());
}

#[test]
fn d8_unknown_kty_or_crv_skipped_and_unmatched() {
    let es = private_jwk("ES256", Some("good"));
    let good = Json::parse(verify_jwks(&es).as_bytes())
        .unwrap()
        .get("keys")
        .unwrap()
        .as_array()
        .unwrap()[0]
        .to_json_string();
    let set = format!(
        r#"{{"keys":[{good},
            {{"kty":"EC","crv":"P-521","kid":"p521","x":"AA","y":"AA"}},
            {{"kty":"EC","crv":"secp256k1","kid":"k1","x":"AA","y":"AA"}},
            {{"kty":"OKP","crv":"X25519","kid":"x25519","x":"AA"}},
            {{"kty":"PQC","kid":"future"}}]}}"#
    );
    let keys = parse_set(set.as_bytes()).unwrap();
    assert_eq!((keys.keys.len(), keys.skipped), (1, 4));
    let t = header_token(r#"{"alg":"ES256","kid":"p521"}"#, &es);
    assert!(matches!(verify(&t, &keys), Err(TokenError::NoMatchingKey(_))));
    // Only unusable keys: the set is refused as a whole.
    assert!(parse_set(br#"{"keys":[{"kty":"PQC"}]}"#).is_err());
}

#[test]
fn d9_kty_inconsistent_with_members_rejected() {
    let p = private_jwk("RS256", None);
    let j = Json::parse(p.as_bytes()).unwrap();
    let n = j.get("n").unwrap().as_str().unwrap();
    let bad = format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB","x":"AA","y":"AA"}}"#);
    assert!(key_err(&bad).to_string().contains("does not belong"));
    let bad = r#"{"kty":"EC","crv":"P-256","n":"AA","x":"AA","y":"AA"}"#;
    assert!(key_err(bad).to_string().contains("does not belong"));
}

#[test]
fn d10_small_order_ed25519_keys_rejected() {
    let mut p_minus_1 = [0xffu8; 32];
    p_minus_1[0] = 0xec;
    p_minus_1[31] = 0x7f;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for x in [identity, [0u8; 32], p_minus_1] {
        let jwk = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
            pg_jwt_core::b64::encode(&x)
        );
        let e = key_err(&jwk);
        assert!(matches!(e, KeyError::Key { .. }), "{e}");
    }
    // The forgery the row describes: identity key, signature R = identity, S = 0. The bare
    // primitive accepts it for any message, which is why such keys must be refused at import.
    let mut forged = vec![0u8; 64];
    forged[0] = 1;
    let bare = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, identity);
    let forgeries = (0..100)
        .filter(|i| bare.verify(format!("msg {i}").as_bytes(), &forged).is_ok())
        .count();
    assert_eq!(
        forgeries, 100,
        "the small-order forgery works against the bare primitive"
    );
}

#[test]
fn d11_empty_oct_key_rejected() {
    assert!(key_err(r#"{"kty":"oct","k":""}"#).to_string().contains("empty"));
}

#[test]
fn d12_short_hmac_keys_rejected_long_keys_accepted() {
    let k = |n: usize| pg_jwt_core::b64::encode(&vec![7u8; n]);
    assert!(parse_set(format!(r#"{{"kty":"oct","k":"{}"}}"#, k(31)).as_bytes()).is_err());
    assert!(parse_set(format!(r#"{{"kty":"oct","alg":"HS384","k":"{}"}}"#, k(47)).as_bytes()).is_err());
    assert!(parse_set(format!(r#"{{"kty":"oct","alg":"HS512","k":"{}"}}"#, k(63)).as_bytes()).is_err());
    for (alg, n) in [("HS256", 32), ("HS384", 48), ("HS512", 64), ("HS256", 200)] {
        assert!(parse_set(format!(r#"{{"kty":"oct","alg":"{alg}","k":"{}"}}"#, k(n)).as_bytes()).is_ok());
    }
    // An unpinned 32-byte key cannot verify HS512.
    let jwk = format!(r#"{{"kty":"oct","k":"{}"}}"#, k(32));
    let keys = keyset(&jwk);
    let t = header_token(r#"{"alg":"HS512"}"#, &format!(r#"{{"kty":"oct","k":"{}"}}"#, k(64)));
    assert_auth(verify(&t, &keys), "HS512 with a 32-byte key");
}

#[test]
fn d13_mixed_symmetric_and_asymmetric_set_rejected() {
    let es = Json::parse(verify_jwks(&private_jwk("ES256", Some("e"))).as_bytes()).unwrap();
    let es = es.get("keys").unwrap().as_array().unwrap()[0].to_json_string();
    let oct = private_jwk("HS256", Some("h"));
    assert!(key_err(&format!(r#"{{"keys":[{es},{oct}]}}"#))
        .to_string()
        .contains("mixes"));
}

#[test]
fn d14_duplicate_kid_rejected() {
    let a = private_jwk("HS256", Some("same"));
    let b = private_jwk("HS256", Some("same"));
    assert!(key_err(&format!(r#"{{"keys":[{a},{b}]}}"#))
        .to_string()
        .contains("duplicate kid"));
}

#[test]
fn d15_encryption_keys_skipped_and_unmatched() {
    let sig = private_jwk("HS256", Some("sig"));
    let k = pg_jwt_core::b64::encode(&[9u8; 32]);
    let set = format!(
        r#"{{"keys":[{sig},{{"kty":"oct","kid":"enc","use":"enc","k":"{k}"}},{{"kty":"oct","kid":"wrap","key_ops":["wrapKey"],"k":"{k}"}}]}}"#
    );
    let keys = parse_set(set.as_bytes()).unwrap();
    assert_eq!((keys.keys.len(), keys.skipped), (1, 2));
    let enc_jwk = format!(r#"{{"kty":"oct","kid":"enc","k":"{k}"}}"#);
    let t = token(&fresh_claims(), &enc_jwk);
    assert!(matches!(verify(&t, &keys), Err(TokenError::NoMatchingKey(_))));
}

#[test]
fn d16_non_jws_alg_keys_skipped() {
    let sig = private_jwk("HS256", Some("sig"));
    let k = pg_jwt_core::b64::encode(&[9u8; 32]);
    let others: Vec<String> = ["A256GCM", "A256KW", "RSA1_5", "RSA-OAEP", "ES224", "ES521", "none"]
        .iter()
        .map(|a| format!(r#"{{"kty":"oct","kid":"{a}","alg":"{a}","k":"{k}"}}"#))
        .collect();
    let set = format!(r#"{{"keys":[{sig},{}]}}"#, others.join(","));
    let keys = parse_set(set.as_bytes()).unwrap();
    assert_eq!((keys.keys.len(), keys.skipped), (1, 7));
    let t = token(
        &fresh_claims(),
        &format!(r#"{{"kty":"oct","kid":"A256GCM","k":"{k}"}}"#),
    );
    assert!(matches!(verify(&t, &keys), Err(TokenError::NoMatchingKey(_))));
}

#[test]
fn d17_private_members_rejected() {
    for alg in ["RS256", "ES256", "EdDSA"] {
        let e = key_err(&private_jwk(alg, None));
        assert!(e.to_string().contains("private member"), "{alg}: {e}");
    }
}

#[test]
fn d18_malformed_or_oversized_key_sets_rejected() {
    let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(300 * 1024));
    let many = format!(r#"{{"keys":[{}]}}"#, vec![r#"{"kty":"PQC"}"#; 101].join(","));
    for bad in [
        big.as_str(),
        many.as_str(),
        "[]",
        "\"keys\"",
        "{}",
        r#"{"keys":{}}"#,
        r#"{"keys":[1]}"#,
        r#"{"keys":["x"]}"#,
        r#"{"keys":[]}"#,
        "not json",
        r#"{"keys":[{"kty":1}]}"#,
    ] {
        assert!(parse_set(bad.as_bytes()).is_err(), "{}", &bad[..bad.len().min(40)]);
    }
}

#[test]
fn d19_key_set_replacement_is_a_new_parse() {
    // The core keeps no cache: a KeySet is immutable and built from the text it is given. The
    // SQL layer invalidates its verification cache when the configured key set changes
    // (tested by the #[pg_test]s and the client suite).
    let (p, keys) = hs256();
    let t = token(&fresh_claims(), &p);
    assert!(verify(&t, &keys).is_ok());
    let (_, rotated) = hs256();
    assert_eq!(verify(&t, &rotated).unwrap_err(), TokenError::InvalidSignature);
}

#[test]
fn d20_token_of_another_issuer_rejected() {
    let (p, keys) = hs256();
    let t = token(&format!(r#"{{"iss":"https://a.example","exp":{}}}"#, now() + 600), &p);
    let required = vec!["exp".to_owned()];
    let v = Validation {
        issuer: Some("https://b.example"),
        ..Validation::new(now(), &required)
    };
    assert!(matches!(verify_with(&t, &keys, &v), Err(TokenError::IssuerMismatch(_))));
}

// ----------------------------------------------------------------------------------------
// E. Payload & claims

fn claims_result(payload: &str) -> Result<pg_jwt_core::VerifiedToken, TokenError> {
    let (p, keys) = hs256();
    verify(&token_raw(r#"{"alg":"HS256"}"#, payload, &p), &keys)
}

fn claims_with(payload: &str, v: impl FnOnce(&mut Validation<'_>)) -> Result<pg_jwt_core::VerifiedToken, TokenError> {
    let (p, keys) = hs256();
    let required = vec!["exp".to_owned()];
    let mut val = Validation::new(now(), &required);
    v(&mut val);
    verify_with(&token_raw(r#"{"alg":"HS256"}"#, payload, &p), &keys, &val)
}

fn exp() -> i64 {
    now() + 600
}

#[test]
fn e1_payload_not_an_object_malformed() {
    for p in ["[]", "\"x\"", "1", "null", "foo", ""] {
        assert_malformed(claims_result(p), p);
    }
}

#[test]
fn e2_invalid_utf8_lone_surrogate_bom_malformed() {
    let (p, keys) = hs256();
    for payload in [
        format!("{{\"exp\":{},\"a\":\"\\ud800\"}}", exp()).into_bytes(),
        format!("\u{feff}{{\"exp\":{}}}", exp()).into_bytes(),
        [format!("{{\"exp\":{},\"a\":\"", exp()).as_bytes(), b"\xff\xfe\"}"].concat(),
        [format!("{{\"exp\":{},\"a\":\"", exp()).as_bytes(), b"\xed\xa0\x80\"}"].concat(),
    ] {
        let header = b64(r#"{"alg":"HS256"}"#);
        let input = format!("{header}.{}", pg_jwt_core::b64::encode(&payload));
        let key = pg_jwt_core::SigningKey::parse(p.as_bytes()).unwrap();
        let t = format!(
            "{input}.{}",
            pg_jwt_core::b64::encode(&key.sign(input.as_bytes()).unwrap())
        );
        assert_malformed(verify(&t, &keys), &format!("{payload:?}"));
    }
}

#[test]
fn e3_duplicate_claims_at_any_depth_malformed() {
    let e = exp();
    for p in [
        format!(r#"{{"exp":{e},"sub":"a","sub":"b"}}"#),
        format!(r#"{{"exp":{e},"exp":{e}}}"#),
        format!(r#"{{"exp":{e},"app":{{"role":"user","role":"admin"}}}}"#),
        format!(r#"{{"exp":{e},"l":[{{"x":1,"x":2}}]}}"#),
    ] {
        assert_malformed(claims_result(&p), &p);
    }
}

#[test]
fn e4_nul_in_any_string_malformed() {
    let e = exp();
    for p in [
        format!(r#"{{"exp":{e},"sub":"a\u0000b"}}"#),
        format!(r#"{{"exp":{e},"a\u0000":"x"}}"#),
        format!(r#"{{"exp":{e},"l":["\u0000"]}}"#),
    ] {
        assert_malformed(claims_result(&p), &p);
    }
}

#[test]
fn e5_large_numbers_preserved_exactly() {
    let p = format!(
        r#"{{"exp":{},"big":123456789012345678901234567890,"neg":-18446744073709551617,"dec":0.1000000000000000055511151231257827}}"#,
        exp()
    );
    let v = claims_result(&p).unwrap();
    assert_eq!(
        v.claims.get("big"),
        Some(&Json::Number("123456789012345678901234567890".into()))
    );
    assert_eq!(v.claims.get("neg"), Some(&Json::Number("-18446744073709551617".into())));
    assert_eq!(
        v.claims.get("dec"),
        Some(&Json::Number("0.1000000000000000055511151231257827".into()))
    );
    assert!(v.claims.to_json_string().contains("123456789012345678901234567890"));
}

#[test]
fn e6_nesting_deeper_than_cap_rejected() {
    let deep = format!(r#"{{"exp":{},"a":{}1{}}}"#, exp(), "[".repeat(40), "]".repeat(40));
    assert!(matches!(claims_result(&deep), Err(TokenError::TooLarge(_))));
    let ok = format!(r#"{{"exp":{},"a":{}1{}}}"#, exp(), "[".repeat(20), "]".repeat(20));
    assert!(claims_result(&ok).is_ok());
}

#[test]
fn e7_missing_exp_rejected_by_default() {
    assert_eq!(
        claims_result(r#"{"sub":"a"}"#).unwrap_err(),
        TokenError::MissingClaim("exp".into())
    );
    // Not required when the caller says so.
    assert!(claims_with(r#"{"sub":"a"}"#, |v| v.required = &[]).is_ok());
}

#[test]
fn e8_expired_tokens_rejected_boundary_included() {
    let n = now();
    assert!(matches!(
        claims_result(&format!(r#"{{"exp":{}}}"#, n - 3600)),
        Err(TokenError::Expired { .. })
    ));
    // Within the 30 s leeway: still accepted.
    assert!(claims_result(&format!(r#"{{"exp":{}}}"#, n - 10)).is_ok());
    // Boundary: exp == now with no leeway is expired.
    let r = claims_with(&format!(r#"{{"exp":{n}}}"#), |v| {
        v.leeway = 0;
        v.now = n;
    });
    assert!(matches!(r, Err(TokenError::Expired { .. })), "{r:?}");
    let r = claims_with(&format!(r#"{{"exp":{}}}"#, n + 1), |v| {
        v.leeway = 0;
        v.now = n;
    });
    assert!(r.is_ok());
    // The detail names the expiry time, not token bytes.
    let e = claims_result(&format!(r#"{{"exp":{}}}"#, 1_000_000_000)).unwrap_err();
    assert!(e.detail().contains("2001-09-09"), "{}", e.detail());
}

#[test]
fn e9_time_claims_of_wrong_type_rejected_never_treated_as_absent() {
    for claim in ["exp", "nbf", "iat"] {
        for v in ["\"123\"", "\"never\"", "true", "null", "[]", "{}", "[1]"] {
            let base = if claim == "exp" {
                String::new()
            } else {
                format!(r#""exp":{},"#, exp())
            };
            let p = format!("{{{base}\"{claim}\":{v}}}");
            assert!(
                matches!(claims_result(&p), Err(TokenError::InvalidClaimType(c)) if c == claim),
                "{p}"
            );
        }
    }
}

#[test]
fn e10_out_of_range_exp_rejected() {
    for v in ["-1", "253402300800", "1e20", "1e400", "-1e400"] {
        let r = claims_result(&format!(r#"{{"exp":{v}}}"#));
        assert!(matches!(r, Err(TokenError::InvalidClaimType("exp"))), "{v}: {r:?}");
    }
    assert!(claims_result(r#"{"exp":253402300799}"#).is_ok());
}

#[test]
fn e11_fractional_exp_in_future_accepted() {
    assert!(claims_result(&format!(r#"{{"exp":{}.5}}"#, exp())).is_ok());
    assert!(claims_result(&format!(r#"{{"exp":{}e0}}"#, exp())).is_ok());
}

#[test]
fn e12_lifetime_beyond_configured_maximum_rejected() {
    let r = claims_with(&format!(r#"{{"exp":{}}}"#, now() + 7200), |v| {
        v.max_lifetime = Some(3600)
    });
    assert!(r.is_err());
    assert!(
        claims_with(&format!(r#"{{"exp":{}}}"#, now() + 600), |v| v.max_lifetime =
            Some(3600))
        .is_ok()
    );
    // u64::MAX is out of the NumericDate range whatever the configuration.
    assert!(claims_result(r#"{"exp":18446744073709551615}"#).is_err());
}

#[test]
fn e13_nbf_in_future_rejected() {
    let p = format!(r#"{{"exp":{},"nbf":{}}}"#, exp(), now() + 300);
    assert!(matches!(
        claims_result(&p),
        Err(TokenError::NotYetValid { claim: "nbf", .. })
    ));
    let p = format!(r#"{{"exp":{},"nbf":{}}}"#, exp(), now() + 10);
    assert!(claims_result(&p).is_ok(), "within leeway");
}

#[test]
fn e14_iat_in_future_rejected() {
    let p = format!(r#"{{"exp":{},"iat":{}}}"#, exp(), now() + 300);
    assert!(matches!(
        claims_result(&p),
        Err(TokenError::NotYetValid { claim: "iat", .. })
    ));
    let p = format!(r#"{{"exp":{},"iat":{}}}"#, exp(), now() - 300);
    assert!(claims_result(&p).is_ok());
}

#[test]
fn e15_audience_configured_but_aud_missing_rejected() {
    let r = claims_with(&format!(r#"{{"exp":{}}}"#, exp()), |v| v.audience = Some("api://db"));
    assert_eq!(r.unwrap_err(), TokenError::MissingClaim("aud".into()));
}

#[test]
fn e16_audience_string_or_array_member_accepted() {
    for aud in [r#""api://db""#, r#"["other","api://db"]"#, r#"["api://db"]"#] {
        let r = claims_with(&format!(r#"{{"exp":{},"aud":{aud}}}"#, exp()), |v| {
            v.audience = Some("api://db")
        });
        assert!(r.is_ok(), "{aud}");
    }
}

#[test]
fn e17_wrong_aud_types_and_near_misses_rejected() {
    for aud in ["1", "{}", "[]", "[1]", r#"["api://db",1]"#, "null", "true"] {
        let r = claims_with(&format!(r#"{{"exp":{},"aud":{aud}}}"#, exp()), |v| {
            v.audience = Some("api://db")
        });
        assert!(matches!(r, Err(TokenError::InvalidClaimType("aud"))), "{aud}: {r:?}");
    }
    for aud in [r#""api://db2""#, r#""API://DB""#, r#""api://d""#, r#"["api://db "]"#] {
        let r = claims_with(&format!(r#"{{"exp":{},"aud":{aud}}}"#, exp()), |v| {
            v.audience = Some("api://db")
        });
        assert!(matches!(r, Err(TokenError::AudienceMismatch(_))), "{aud}: {r:?}");
    }
}

#[test]
fn e18_aud_present_without_configured_audience_rejected() {
    let r = claims_result(&format!(r#"{{"exp":{},"aud":"api://db"}}"#, exp()));
    assert!(matches!(r, Err(TokenError::AudienceMismatch(_))));
}

#[test]
fn e19_issuer_missing_wrong_type_or_partial_rejected() {
    let iss = Some("https://issuer.example");
    let r = claims_with(&format!(r#"{{"exp":{}}}"#, exp()), |v| v.issuer = iss);
    assert_eq!(r.unwrap_err(), TokenError::MissingClaim("iss".into()));
    for bad in [r#"["https://issuer.example"]"#, "1", "null"] {
        let r = claims_with(&format!(r#"{{"exp":{},"iss":{bad}}}"#, exp()), |v| v.issuer = iss);
        assert!(matches!(r, Err(TokenError::InvalidClaimType("iss"))), "{bad}");
    }
    for bad in [
        r#""https://issuer.example.evil""#,
        r#""https://issuer.exampl""#,
        r#""HTTPS://issuer.example""#,
    ] {
        let r = claims_with(&format!(r#"{{"exp":{},"iss":{bad}}}"#, exp()), |v| v.issuer = iss);
        assert!(matches!(r, Err(TokenError::IssuerMismatch(_))), "{bad}");
    }
    let r = claims_with(&format!(r#"{{"exp":{},"iss":"https://issuer.example"}}"#, exp()), |v| {
        v.issuer = iss
    });
    assert!(r.is_ok());
}

#[test]
fn e20_sub_and_jti_of_wrong_type_rejected() {
    for claim in ["sub", "jti"] {
        for v in ["1", "[]", "{}", "true", "null"] {
            let r = claims_result(&format!(r#"{{"exp":{},"{claim}":{v}}}"#, exp()));
            assert!(
                matches!(r, Err(TokenError::InvalidClaimType(c)) if c == claim),
                "{claim}={v}"
            );
        }
    }
}

#[test]
fn e21_no_replay_state_is_kept() {
    // pg_jwt keeps no jti replay list (a stateless verifier: a token is valid until exp). Were
    // one added, it must key on (iss, jti), never on token or signature bytes (see c4: the
    // same claims have two valid ECDSA encodings). Verifying twice gives the same claims.
    let (p, keys) = hs256();
    let t = token(&format!(r#"{{"exp":{},"jti":"abc","iss":"i"}}"#, exp()), &p);
    assert_eq!(verify(&t, &keys).unwrap().claims, verify(&t, &keys).unwrap().claims);
}

// ----------------------------------------------------------------------------------------
// Round trips and error texts

#[test]
fn round_trip_every_algorithm() {
    for alg in Algorithm::ALL {
        let p = private_jwk(alg.name(), Some("k"));
        let keys = keyset(&verify_jwks(&p));
        let t = token(&fresh_claims(), &p);
        let v = verify(&t, &keys).unwrap_or_else(|e| panic!("{}: {e}", alg.name()));
        assert_eq!(v.header.get("alg").and_then(Json::as_str), Some(alg.name()));
        assert_eq!(v.header.get("typ").and_then(Json::as_str), Some("JWT"));
        assert_eq!(v.header.get("kid").and_then(Json::as_str), Some("k"));
    }
}

#[test]
fn error_texts_never_contain_token_claim_or_key_bytes() {
    let secret_claim = "s3cr3t-claim-value";
    let (p, keys) = hs256();
    let key_k = Json::parse(p.as_bytes())
        .unwrap()
        .get("k")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let t = token(&format!(r#"{{"exp":1,"sub":"{secret_claim}"}}"#), &p);
    let tampered = format!("{t}x");
    let mut texts = Vec::new();
    for tok in [t.clone(), tampered, format!("{t}."), t.replace('.', "..")] {
        if let Err(e) = verify(&tok, &keys) {
            texts.push(format!("{e} {}", e.detail()));
        }
    }
    let kerr = parse_set(format!(r#"{{"kty":"oct","alg":"HS512","k":"{key_k}"}}"#).as_bytes()).unwrap_err();
    texts.push(kerr.to_string());
    assert!(texts.len() >= 5);
    for text in texts {
        for forbidden in [
            secret_claim,
            key_k.as_str(),
            &segment(&t, 1)[..12],
            &segment(&t, 2)[..12],
        ] {
            assert!(!text.contains(forbidden), "{text}");
        }
    }
}
