//! JWK and JWKS import (RFC 7517, RFC 7518 §6, RFC 8037) for verification, private JWKs for
//! signing, the publishable form of a key set, and key generation.
//!
//! Import is all-or-nothing: a set with one bad signing key is refused whole (checklist D1–D18),
//! while keys that are not for JWS signatures (unknown `kty`/`crv`, `use: enc`, `key_ops`
//! without `verify`, a non-JWS `alg`) are skipped, because real key sets publish encryption keys
//! beside signing keys.

use crate::alg::{AlgName, Algorithm};
use crate::b64;
use crate::error::KeyError;
use crate::json::{Json, Str};
use num_bigint::BigUint;
use ring::{hmac, signature};

/// Largest key set text accepted (bytes).
pub const MAX_KEY_SET_BYTES: usize = 256 * 1024;
/// Largest number of keys in a set.
pub const MAX_KEYS: usize = 100;
/// Longest `kid` accepted, in a key or a token header (bytes).
pub const MAX_KID_BYTES: usize = 256;
/// RSA modulus bounds in bits (ring verifies 2048 to 8192).
pub const RSA_MIN_BITS: usize = 2048;
pub const RSA_MAX_BITS: usize = 8192;

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// An elliptic curve for ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    pub(crate) fn from_name(name: &str) -> Option<Curve> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    /// Coordinate (and private scalar) length in bytes.
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    pub fn algorithm(self) -> Algorithm {
        match self {
            Curve::P256 => Algorithm::ES256,
            Curve::P384 => Algorithm::ES384,
        }
    }

    /// Field prime p and coefficient b of the short Weierstrass curve y² = x³ − 3x + b.
    pub(crate) fn params(self) -> (BigUint, BigUint) {
        let (p, b): (&[u8], &[u8]) = match self {
            Curve::P256 => (
                b"ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
                b"5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
            ),
            Curve::P384 => (
                b"fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
                b"b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
            ),
        };
        // The constants are valid hex, so parsing cannot fail; fall back to zero to stay panic-free.
        let parse = |h: &[u8]| BigUint::parse_bytes(h, 16).unwrap_or_default();
        (parse(p), parse(b))
    }

    /// True when (x, y) are both below p and satisfy the curve equation. P-256 and P-384 have
    /// cofactor 1, so every such point is in the prime-order group; the identity has no affine
    /// encoding, so it cannot pass.
    pub(crate) fn is_on_curve(self, x: &[u8], y: &[u8]) -> bool {
        let (p, b) = self.params();
        let x = BigUint::from_bytes_be(x);
        let y = BigUint::from_bytes_be(y);
        if x >= p || y >= p {
            return false;
        }
        let three = BigUint::from(3u32);
        let lhs = (&y * &y) % &p;
        let x3 = (&x * &x % &p) * &x % &p;
        let three_x = (&three * &x) % &p;
        let rhs = (x3 + &p - three_x + b) % &p;
        lhs == rhs
    }
}

/// The public (or, for HMAC, shared) material of a verification key.
pub enum KeyMaterial {
    /// `oct`: the secret, and ring keys for each HS algorithm the secret is long enough for.
    Hmac {
        len: usize,
        keys: Vec<(Algorithm, hmac::Key)>,
    },
    /// `RSA`: big-endian modulus and exponent, minimal encodings.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// `EC`: the uncompressed SEC1 point `04 || x || y`.
    Ec { curve: Curve, point: Vec<u8> },
    /// `OKP` Ed25519: the 32-byte public key.
    Ed25519 { x: Vec<u8> },
}

impl std::fmt::Debug for KeyMaterial {
    // Never print key bytes, not even public ones: keep debug output free of key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyMaterial::Hmac { len, .. } => write!(f, "Hmac({len} bytes)"),
            KeyMaterial::Rsa { n, .. } => write!(f, "Rsa({} bits)", n.len() * 8),
            KeyMaterial::Ec { curve, .. } => write!(f, "Ec({})", curve.name()),
            KeyMaterial::Ed25519 { .. } => write!(f, "Ed25519"),
        }
    }
}

/// One key usable to verify JWS signatures.
#[derive(Debug)]
pub struct VerifyKey {
    pub kid: Option<String>,
    /// The algorithm the JWK pins with `alg`, if any.
    pub alg: Option<Algorithm>,
    pub material: KeyMaterial,
}

impl VerifyKey {
    /// Whether a token signed with `alg` may be checked with this key: the JWK's `alg` pins the
    /// algorithm; without it the algorithm must belong to the key's type (RFC 8725 §3.1). HS*
    /// is never usable with a non-`oct` key.
    pub fn allows(&self, alg: Algorithm) -> bool {
        if let Some(pinned) = self.alg {
            if pinned != alg {
                return false;
            }
        }
        match &self.material {
            KeyMaterial::Hmac { len, .. } => alg.is_hmac() && *len >= alg.hmac_min_key_len(),
            KeyMaterial::Rsa { .. } => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyMaterial::Ec { curve, .. } => curve.algorithm() == alg,
            KeyMaterial::Ed25519 { .. } => alg == Algorithm::EdDSA,
        }
    }

    /// The exact signature length this key produces for `alg`.
    pub fn signature_len(&self, alg: Algorithm) -> usize {
        match &self.material {
            KeyMaterial::Hmac { .. } => match alg {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            },
            KeyMaterial::Rsa { n, .. } => n.len(),
            KeyMaterial::Ec { curve, .. } => 2 * curve.coordinate_len(),
            KeyMaterial::Ed25519 { .. } => 64,
        }
    }

    /// Checks `signature` over `message`. The caller has checked [`VerifyKey::allows`].
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Hmac { keys, .. } => keys
                .iter()
                .find(|(a, _)| *a == alg)
                .is_some_and(|(_, key)| hmac::verify(key, message, signature).is_ok()),
            KeyMaterial::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            KeyMaterial::Ec { curve, point } => {
                let params = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                };
                signature::UnparsedPublicKey::new(params, point)
                    .verify(message, signature)
                    .is_ok()
            }
            KeyMaterial::Ed25519 { x } => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// A verified-importable key set: only keys usable for JWS signature verification.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
    /// How many keys of the input were skipped as not for JWS signatures.
    pub skipped: usize,
    /// Whether the text holds secret key material: an `oct` key or a `k` member, imported or
    /// skipped (an `oct` key marked `use: enc` is skipped but is still a secret). Private
    /// members of asymmetric keys are refused outright, so they never get here.
    pub holds_secrets: bool,
}

impl KeySet {
    /// Parses a JWKS (`{"keys": [...]}`) or a single JWK.
    pub fn parse(text: &[u8]) -> Result<KeySet, KeyError> {
        let json = parse_key_json(text, KeyError::Set)?;
        let members = key_objects(&json).map_err(KeyError::Set)?;
        let mut keys: Vec<VerifyKey> = Vec::with_capacity(members.len());
        let mut skipped = 0;
        let mut holds_secrets = false;
        for (index, member) in members.iter().enumerate() {
            let obj = member.as_object().ok_or_else(|| KeyError::Key {
                index,
                reason: "not a JSON object".into(),
            })?;
            holds_secrets |= get(obj, "kty").and_then(Json::as_str) == Some("oct") || get(obj, "k").is_some();
            match import_public_key(obj).map_err(|reason| KeyError::Key { index, reason })? {
                Some(key) => {
                    if let Some(kid) = &key.kid {
                        if keys.iter().any(|k| k.kid.as_deref() == Some(kid.as_str())) {
                            return Err(KeyError::Key {
                                index,
                                reason: "duplicate kid".into(),
                            });
                        }
                    }
                    keys.push(key);
                }
                None => skipped += 1,
            }
        }
        let symmetric = keys
            .iter()
            .filter(|k| matches!(k.material, KeyMaterial::Hmac { .. }))
            .count();
        if symmetric > 0 && symmetric < keys.len() {
            return Err(KeyError::Set("mixes symmetric (oct) and asymmetric keys".into()));
        }
        if keys.is_empty() {
            return Err(KeyError::Set(format!(
                "no usable signature verification key ({skipped} key(s) skipped as not for JWS signatures)"
            )));
        }
        Ok(KeySet {
            keys,
            skipped,
            holds_secrets,
        })
    }
}

impl KeySet {
    /// The union of two key sets (a pinned static set and a fetched one) for lookup. Refused,
    /// like a single set, if a `kid` appears in both or if the union mixes symmetric and
    /// asymmetric keys.
    pub fn merge(first: KeySet, second: KeySet) -> Result<KeySet, KeyError> {
        for key in &second.keys {
            if let Some(kid) = &key.kid {
                if first.keys.iter().any(|k| k.kid.as_deref() == Some(kid.as_str())) {
                    return Err(KeyError::Set(
                        "the same kid appears in pg_jwt.jwks and in the fetched key set".into(),
                    ));
                }
            }
        }
        let hmac = |s: &KeySet| s.keys.iter().any(|k| matches!(k.material, KeyMaterial::Hmac { .. }));
        let asym = |s: &KeySet| s.keys.iter().any(|k| !matches!(k.material, KeyMaterial::Hmac { .. }));
        if (hmac(&first) || hmac(&second)) && (asym(&first) || asym(&second)) {
            return Err(KeyError::Set("mixes symmetric (oct) and asymmetric keys".into()));
        }
        let skipped = first.skipped + second.skipped;
        let holds_secrets = first.holds_secrets || second.holds_secrets;
        let mut keys = first.keys;
        keys.extend(second.keys);
        Ok(KeySet {
            keys,
            skipped,
            holds_secrets,
        })
    }

    /// The `kid`s of the keys, in order (keys without one are left out).
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref()).collect()
    }
}

/// The size cap, then strict JSON: the start of every key import. `error` wraps the reason in
/// the caller's kind of error (a key set or a single JWK).
pub(crate) fn parse_key_json(text: &[u8], error: fn(String) -> KeyError) -> Result<Json, KeyError> {
    if text.len() > MAX_KEY_SET_BYTES {
        return Err(error(format!("larger than {MAX_KEY_SET_BYTES} bytes")));
    }
    Json::parse(text).map_err(|e| error(format!("not valid JSON ({e:?})")))
}

/// The key objects of a JWKS or a single JWK.
pub(crate) fn key_objects(json: &Json) -> Result<&[Json], String> {
    if json.as_object().is_none() {
        return Err("expected a JSON object: a JWKS {\"keys\": [...]} or a single JWK".into());
    }
    if let Some(keys) = json.get("keys") {
        let keys = keys.as_array().ok_or("member keys is not an array")?;
        if keys.len() > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} keys"));
        }
        Ok(keys)
    } else if json.get("kty").is_some() {
        Ok(std::slice::from_ref(json))
    } else {
        Err("expected a JWKS {\"keys\": [...]} or a single JWK with kty".into())
    }
}

pub(crate) fn get<'a>(obj: &'a [(Str, Json)], name: &str) -> Option<&'a Json> {
    obj.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

pub(crate) fn opt_str<'a>(obj: &'a [(Str, Json)], name: &str) -> Result<Option<&'a str>, String> {
    match get(obj, name) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("member {name} is not a string")),
    }
}

pub(crate) fn req_str<'a>(obj: &'a [(Str, Json)], name: &str) -> Result<&'a str, String> {
    opt_str(obj, name)?.ok_or_else(|| format!("member {name} is missing"))
}

pub(crate) fn req_b64(obj: &[(Str, Json)], name: &str) -> Result<Vec<u8>, String> {
    b64::decode(req_str(obj, name)?.as_bytes()).map_err(|_| format!("member {name} is not strict base64url"))
}

fn forbid(obj: &[(Str, Json)], kty: &str, names: &[&str]) -> Result<(), String> {
    match names.iter().find(|n| get(obj, n).is_some()) {
        Some(n) => Err(format!("member {n} does not belong to a key of kty {kty}")),
        None => Ok(()),
    }
}

/// The metadata common to every JWK, and whether the key is for JWS signature verification.
struct Common {
    kid: Option<String>,
    alg: Option<Algorithm>,
    for_signatures: bool,
}

fn common_members(obj: &[(Str, Json)], usage: &str) -> Result<Common, String> {
    let kid = opt_str(obj, "kid")?;
    if kid.is_some_and(|k| k.len() > MAX_KID_BYTES) {
        return Err(format!("kid is longer than {MAX_KID_BYTES} bytes"));
    }
    let mut for_signatures = true;
    if let Some(u) = opt_str(obj, "use")? {
        for_signatures &= u == "sig";
    }
    if let Some(ops) = get(obj, "key_ops") {
        let ops = ops.as_array().ok_or("member key_ops is not an array")?;
        let mut found = false;
        for op in ops {
            let op = op.as_str().ok_or("member key_ops holds a non-string")?;
            found |= op == usage;
        }
        for_signatures &= found;
    }
    let alg = match opt_str(obj, "alg")? {
        None => None,
        Some(name) => match Algorithm::classify(name) {
            AlgName::Supported(a) => Some(a),
            AlgName::Unsupported | AlgName::Unknown | AlgName::None => {
                for_signatures = false;
                None
            }
        },
    };
    Ok(Common {
        kid: kid.map(str::to_owned),
        alg,
        for_signatures,
    })
}

/// Checks that a pinned `alg` fits the key type.
pub(crate) fn check_alg_fits(
    alg: Option<Algorithm>,
    fits: impl Fn(Algorithm) -> bool,
    kty: &str,
) -> Result<(), String> {
    match alg {
        Some(a) if !fits(a) => Err(format!("alg {} does not fit a key of this type ({kty})", a.name())),
        _ => Ok(()),
    }
}

pub(crate) fn is_rsa_alg(a: Algorithm) -> bool {
    matches!(
        a,
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
    )
}

/// Imports one public JWK for verification. `Ok(None)`: skipped as not a JWS verification key.
fn import_public_key(obj: &[(Str, Json)]) -> Result<Option<VerifyKey>, String> {
    let kty = req_str(obj, "kty")?;
    if kty != "oct" {
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| get(obj, m).is_some()) {
            return Err(format!(
                "private member {m} present: store only public keys (see jwt_public_jwks)"
            ));
        }
    }
    let common = common_members(obj, "verify")?;
    if !common.for_signatures {
        return Ok(None);
    }
    let material = match kty {
        "RSA" => {
            forbid(obj, kty, &["crv", "x", "y", "k"])?;
            check_alg_fits(common.alg, is_rsa_alg, kty)?;
            let (n, e) = rsa_public_components(obj)?;
            KeyMaterial::Rsa { n, e }
        }
        "EC" => {
            let Some(curve) = Curve::from_name(req_str(obj, "crv")?) else {
                return Ok(None);
            };
            forbid(obj, kty, &["n", "e", "k"])?;
            check_alg_fits(common.alg, |a| a == curve.algorithm(), kty)?;
            KeyMaterial::Ec {
                curve,
                point: ec_public_point(obj, curve)?,
            }
        }
        "OKP" => {
            if req_str(obj, "crv")? != "Ed25519" {
                return Ok(None);
            }
            forbid(obj, kty, &["n", "e", "k", "y"])?;
            check_alg_fits(common.alg, |a| a == Algorithm::EdDSA, kty)?;
            KeyMaterial::Ed25519 {
                x: ed25519_public_key(obj)?,
            }
        }
        "oct" => {
            forbid(obj, kty, &["n", "e", "crv", "x", "y"])?;
            check_alg_fits(common.alg, Algorithm::is_hmac, kty)?;
            let secret = hmac_secret(obj, common.alg)?;
            let keys = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
                .into_iter()
                .filter(|a| secret.len() >= a.hmac_min_key_len() && common.alg.is_none_or(|p| p == *a))
                .map(|a| (a, hmac::Key::new(hmac_algorithm(a), &secret)))
                .collect();
            KeyMaterial::Hmac {
                len: secret.len(),
                keys,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(VerifyKey {
        kid: common.kid,
        alg: common.alg,
        material,
    }))
}

pub(crate) fn hmac_algorithm(a: Algorithm) -> hmac::Algorithm {
    match a {
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

pub(crate) fn hmac_secret(obj: &[(Str, Json)], alg: Option<Algorithm>) -> Result<Vec<u8>, String> {
    let secret = req_b64(obj, "k")?;
    if secret.is_empty() {
        return Err("member k is empty".into());
    }
    let min = alg.map_or(32, Algorithm::hmac_min_key_len);
    if secret.len() < min {
        return Err(format!(
            "HMAC key is {} bytes; at least {min} are required",
            secret.len()
        ));
    }
    Ok(secret)
}

/// A minimal big-endian unsigned integer (RFC 7518 §6.3.1.1: no leading zero octets).
fn minimal_uint(obj: &[(Str, Json)], name: &str) -> Result<Vec<u8>, String> {
    let v = req_b64(obj, name)?;
    match v.first() {
        None => Err(format!("member {name} is empty")),
        Some(0) => Err(format!("member {name} has a leading zero octet (not minimal)")),
        Some(_) => Ok(v),
    }
}

pub(crate) fn rsa_public_components(obj: &[(Str, Json)]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let n = minimal_uint(obj, "n")?;
    let e = minimal_uint(obj, "e")?;
    let top = n.first().copied().unwrap_or(0);
    let bits = n.len() * 8 - top.leading_zeros() as usize;
    if bits < RSA_MIN_BITS {
        return Err(format!(
            "RSA modulus is {bits} bits; at least {RSA_MIN_BITS} are required"
        ));
    }
    if bits > RSA_MAX_BITS {
        return Err(format!(
            "RSA modulus is {bits} bits; at most {RSA_MAX_BITS} are supported"
        ));
    }
    if n.last().is_some_and(|b| b & 1 == 0) {
        return Err("RSA modulus is even".into());
    }
    if is_roca_fingerprint(&n) {
        return Err("RSA modulus has the ROCA fingerprint (CVE-2017-15361): the key is factorable".into());
    }
    if e.len() > 4 {
        return Err("RSA exponent is larger than 2^32".into());
    }
    let e_value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if e_value < 3 || e_value % 2 == 0 {
        return Err("RSA exponent must be odd and at least 3".into());
    }
    Ok((n, e))
}

/// The ROCA test (Nemec et al., CCS 2017): moduli from the vulnerable Infineon library satisfy
/// n mod p ∈ ⟨65537⟩ (mod p) for every small prime p below; a random modulus almost never does.
fn is_roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107,
        109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    let n = BigUint::from_bytes_be(n);
    PRIMES.iter().all(|&p| {
        let residue = (&n % p).iter_u32_digits().next().unwrap_or(0);
        let g = 65_537 % p;
        // Walk the cyclic subgroup generated by g; it has at most p - 1 elements.
        let mut x = 1u32;
        for _ in 0..p {
            if x == residue {
                return true;
            }
            x = x * g % p;
            if x == 1 {
                break;
            }
        }
        false
    })
}

pub(crate) fn ec_public_point(obj: &[(Str, Json)], curve: Curve) -> Result<Vec<u8>, String> {
    let x = req_b64(obj, "x")?;
    let y = req_b64(obj, "y")?;
    let len = curve.coordinate_len();
    if x.len() != len || y.len() != len {
        return Err(format!("{} coordinates must be {len} bytes each", curve.name()));
    }
    if !curve.is_on_curve(&x, &y) {
        return Err(format!("the point is not on curve {}", curve.name()));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

pub(crate) fn ed25519_public_key(obj: &[(Str, Json)]) -> Result<Vec<u8>, String> {
    let x = req_b64(obj, "x")?;
    let bytes: [u8; 32] = x
        .as_slice()
        .try_into()
        .map_err(|_| "Ed25519 key x must be 32 bytes".to_owned())?;
    let compressed = curve25519_dalek::edwards::CompressedEdwardsY(bytes);
    let point = compressed.decompress().ok_or("Ed25519 key x is not a valid point")?;
    // Reject non-canonical encodings (y >= p) and keys of small order: with those, signatures
    // can be forged without the private key (checklist D10).
    if point.compress() != compressed {
        return Err("Ed25519 key x is not canonically encoded".into());
    }
    if point.is_small_order() {
        return Err("Ed25519 key x has small order".into());
    }
    Ok(x)
}

pub use crate::signing::{generate_jwk, public_key_set, SigningKey};
