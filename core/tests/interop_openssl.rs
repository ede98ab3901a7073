//! Tokens made by an independent implementation (the `openssl` command line) verify, and
//! openssl-generated RSA keys sign through pg_jwt. Requires `openssl` on PATH (installed by
//! scripts/setup.sh).

mod common;

use common::*;
use pg_jwt_core::b64;
use std::path::Path;
use std::process::Command;

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut cmd = Command::new("openssl");
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .expect("openssl must be installed (scripts/setup.sh installs it)");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pg_jwt_openssl_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Generates a private key with `openssl genpkey` into `dir/name`; returns its path and the
/// `openssl pkey -text` dump of it.
fn genkey(dir: &Path, name: &str, algorithm: &str, option: Option<&str>) -> (std::path::PathBuf, String) {
    let key = dir.join(name);
    let mut args = vec!["genpkey", "-algorithm", algorithm];
    if let Some(opt) = option {
        args.extend(["-pkeyopt", opt]);
    }
    args.extend(["-out", key.to_str().unwrap()]);
    openssl(&args, None);
    let text = String::from_utf8(openssl(
        &["pkey", "-in", key.to_str().unwrap(), "-noout", "-text"],
        None,
    ))
    .unwrap();
    (key, text)
}

/// The hex-dumped fields of `openssl pkey -text`, e.g. "modulus", "priv", "pub".
fn text_field(text: &str, name: &str) -> Vec<u8> {
    let mut hex = String::new();
    let mut in_field = false;
    for line in text.lines() {
        if line.starts_with(name) && line.trim_end().ends_with(':') {
            in_field = true;
            continue;
        }
        if in_field {
            if line.starts_with("    ") {
                hex.extend(line.trim().split(':').filter(|s| !s.is_empty()));
            } else {
                break;
            }
        }
    }
    assert!(!hex.is_empty(), "field {name} not found");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn strip_zeros(v: Vec<u8>) -> Vec<u8> {
    let i = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v[i..].to_vec()
}

fn sign_input(header: &str) -> String {
    format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(fresh_claims().as_bytes())
    )
}

fn dgst_sign(dir: &Path, key: &Path, input: &str, extra: &[&str]) -> Vec<u8> {
    let input_path = dir.join("input");
    std::fs::write(&input_path, input).unwrap();
    let mut args = vec!["dgst", "-sha256", "-sign", key.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(input_path.to_str().unwrap());
    openssl(&args, None)
}

#[test]
fn openssl_rs256_and_ps256_tokens_verify() {
    let dir = tmpdir("rsa");
    let (key, text) = genkey(&dir, "rsa.pem", "RSA", Some("rsa_keygen_bits:2048"));
    let n = strip_zeros(text_field(&text, "modulus"));
    let jwks = format!(r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#, b64::encode(&n));
    let keys = keyset(&jwks);

    let input = sign_input(r#"{"alg":"RS256","typ":"JWT"}"#);
    let sig = dgst_sign(&dir, &key, &input, &[]);
    let t = format!("{input}.{}", b64::encode(&sig));
    assert_eq!(
        verify(&t, &keys).unwrap().claims.get("sub").unwrap().as_str(),
        Some("alice")
    );

    let input = sign_input(r#"{"alg":"PS256"}"#);
    let sig = dgst_sign(
        &dir,
        &key,
        &input,
        &["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"],
    );
    assert!(verify(&format!("{input}.{}", b64::encode(&sig)), &keys).is_ok());

    // And the other way: openssl's private key, as a JWK, signs through pg_jwt.
    let fields = [
        "privateExponent",
        "prime1",
        "prime2",
        "exponent1",
        "exponent2",
        "coefficient",
    ];
    let names = ["d", "p", "q", "dp", "dq", "qi"];
    let mut private = format!(r#"{{"kty":"RSA","alg":"RS256","n":"{}","e":"AQAB""#, b64::encode(&n));
    for (f, m) in fields.iter().zip(names) {
        private.push_str(&format!(
            r#","{m}":"{}""#,
            b64::encode(&strip_zeros(text_field(&text, f)))
        ));
    }
    private.push('}');
    let t = token(&fresh_claims(), &private);
    let input = t.rsplit_once('.').unwrap().0;
    let sig = b64::decode(t.rsplit_once('.').unwrap().1.as_bytes()).unwrap();
    std::fs::write(dir.join("input"), input).unwrap();
    std::fs::write(dir.join("sig"), sig).unwrap();
    let public = dir.join("pub.pem");
    openssl(
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
        None,
    );
    let out = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            public.to_str().unwrap(),
            "-signature",
            dir.join("sig").to_str().unwrap(),
            dir.join("input").to_str().unwrap(),
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&out).contains("Verified OK"));
    std::fs::remove_dir_all(dir).ok();
}

/// DER ECDSA-Sig-Value to the fixed r || s form JWS uses.
fn der_to_raw(der: &[u8], len: usize) -> Vec<u8> {
    let mut i = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        let l = der[i + 1] as usize;
        let int = strip_zeros(der[i + 2..i + 2 + l].to_vec());
        out.extend(std::iter::repeat(0).take(len - int.len()));
        out.extend(int);
        i += 2 + l;
    }
    out
}

#[test]
fn openssl_es256_and_es384_tokens_verify() {
    for (curve, alg, len, digest) in [("P-256", "ES256", 32, "-sha256"), ("P-384", "ES384", 48, "-sha384")] {
        let dir = tmpdir(alg);
        let (key, text) = genkey(&dir, "ec.pem", "EC", Some(&format!("ec_paramgen_curve:{curve}")));
        let point = text_field(&text, "pub");
        assert_eq!(point[0], 4);
        let jwks = format!(
            r#"{{"kty":"EC","crv":"{curve}","x":"{}","y":"{}"}}"#,
            b64::encode(&point[1..1 + len]),
            b64::encode(&point[1 + len..])
        );
        let keys = keyset(&jwks);
        let input = sign_input(&format!(r#"{{"alg":"{alg}"}}"#));
        std::fs::write(dir.join("input"), &input).unwrap();
        let der = openssl(
            &[
                "dgst",
                digest,
                "-sign",
                key.to_str().unwrap(),
                dir.join("input").to_str().unwrap(),
            ],
            None,
        );
        let t = format!("{input}.{}", b64::encode(&der_to_raw(&der, len)));
        assert!(verify(&t, &keys).is_ok(), "{alg}");
        // The DER form itself is refused (C3).
        assert!(verify(&format!("{input}.{}", b64::encode(&der)), &keys).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn openssl_eddsa_token_verifies() {
    let dir = tmpdir("ed25519");
    let (key, text) = genkey(&dir, "ed.pem", "ED25519", None);
    let x = text_field(&text, "pub");
    let keys = keyset(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, b64::encode(&x)));
    let input = sign_input(r#"{"alg":"EdDSA"}"#);
    std::fs::write(dir.join("input"), &input).unwrap();
    let sig = openssl(
        &[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            key.to_str().unwrap(),
            "-in",
            dir.join("input").to_str().unwrap(),
        ],
        None,
    );
    assert!(verify(&format!("{input}.{}", b64::encode(&sig)), &keys).is_ok());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn openssl_hs256_token_verifies() {
    let secret = [0x5au8; 32];
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let keys = keyset(&format!(r#"{{"kty":"oct","k":"{}"}}"#, b64::encode(&secret)));
    let input = sign_input(r#"{"alg":"HS256"}"#);
    let mac = openssl(
        &[
            "dgst",
            "-sha256",
            "-mac",
            "HMAC",
            "-macopt",
            &format!("hexkey:{hex}"),
            "-binary",
        ],
        Some(input.as_bytes()),
    );
    assert!(verify(&format!("{input}.{}", b64::encode(&mac)), &keys).is_ok());
}
