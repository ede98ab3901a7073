//! Private keys: signing tokens, generating keys, and the publishable (public) form of a key
//! set. Kept apart from `jwk` (importing the keys tokens are verified with), so that an audit of
//! verification can skip this file: nothing on the verification path calls into it.

use crate::alg::{AlgName, Algorithm};
use crate::b64;
use crate::error::KeyError;
use crate::json::{Json, Str};
use crate::jwk::{
    check_alg_fits, ec_public_point, ed25519_public_key, hmac_algorithm, hmac_secret, is_rsa_alg, key_objects, opt_str,
    parse_key_json, req_b64, req_str, rsa_public_components, Curve, MAX_KID_BYTES,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hmac, signature};

/// A private key that can sign tokens.
pub struct SigningKey {
    pub alg: Algorithm,
    pub kid: Option<String>,
    inner: SigningInner,
}

enum SigningInner {
    Hmac(hmac::Key),
    Rsa(signature::RsaKeyPair),
    Ec(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

impl SigningKey {
    /// Parses a private JWK. The algorithm is the JWK's `alg`, else the type's default
    /// (oct: HS256, RSA: RS256, EC: ES256/ES384 by curve, OKP Ed25519: EdDSA).
    pub fn parse(text: &[u8]) -> Result<SigningKey, KeyError> {
        let json = parse_key_json(text, KeyError::Jwk)?;
        let obj = json
            .as_object()
            .ok_or_else(|| KeyError::Jwk("expected a JSON object".into()))?;
        Self::from_object(obj).map_err(KeyError::Jwk)
    }

    fn from_object(obj: &[(Str, Json)]) -> Result<SigningKey, String> {
        let kty = req_str(obj, "kty")?;
        let kid = opt_str(obj, "kid")?;
        if kid.is_some_and(|k| k.len() > MAX_KID_BYTES) {
            return Err(format!("kid is longer than {MAX_KID_BYTES} bytes"));
        }
        let pinned = match opt_str(obj, "alg")? {
            None => None,
            Some(name) => match Algorithm::classify(name) {
                AlgName::Supported(a) => Some(a),
                _ => return Err("alg is not a supported JWS algorithm".into()),
            },
        };
        let rng = SystemRandom::new();
        let (alg, inner) = match kty {
            "oct" => {
                check_alg_fits(pinned, Algorithm::is_hmac, kty)?;
                let alg = pinned.unwrap_or(Algorithm::HS256);
                let secret = hmac_secret(obj, Some(alg))?;
                (alg, SigningInner::Hmac(hmac::Key::new(hmac_algorithm(alg), &secret)))
            }
            "RSA" => {
                check_alg_fits(pinned, is_rsa_alg, kty)?;
                let (n, e) = rsa_public_components(obj)?;
                let parts = ["d", "p", "q", "dp", "dq", "qi"]
                    .iter()
                    .map(|m| req_b64(obj, m))
                    .collect::<Result<Vec<_>, _>>()?;
                let [d, p, q, dp, dq, qi] = parts.as_slice() else {
                    return Err("RSA private key members missing".into());
                };
                let components = ring::rsa::KeyPairComponents {
                    public_key: ring::rsa::PublicKeyComponents { n: &n, e: &e },
                    d,
                    p,
                    q,
                    dP: dp,
                    dQ: dq,
                    qInv: qi,
                };
                let pair = signature::RsaKeyPair::from_components(&components)
                    .map_err(|e| format!("RSA private key rejected ({e})"))?;
                (pinned.unwrap_or(Algorithm::RS256), SigningInner::Rsa(pair))
            }
            "EC" => {
                let curve = Curve::from_name(req_str(obj, "crv")?).ok_or("crv must be P-256 or P-384")?;
                check_alg_fits(pinned, |a| a == curve.algorithm(), kty)?;
                let point = ec_public_point(obj, curve)?;
                let d = req_b64(obj, "d")?;
                let params = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                };
                let pair = signature::EcdsaKeyPair::from_private_key_and_public_key(params, &d, &point, &rng)
                    .map_err(|e| format!("EC private key rejected ({e})"))?;
                (curve.algorithm(), SigningInner::Ec(pair))
            }
            "OKP" => {
                if req_str(obj, "crv")? != "Ed25519" {
                    return Err("crv must be Ed25519".into());
                }
                check_alg_fits(pinned, |a| a == Algorithm::EdDSA, kty)?;
                let x = ed25519_public_key(obj)?;
                let d = req_b64(obj, "d")?;
                let pair = signature::Ed25519KeyPair::from_seed_and_public_key(&d, &x)
                    .map_err(|e| format!("Ed25519 private key rejected ({e})"))?;
                (Algorithm::EdDSA, SigningInner::Ed25519(pair))
            }
            _ => return Err("kty must be oct, RSA, EC or OKP".into()),
        };
        Ok(SigningKey {
            alg,
            kid: kid.map(str::to_owned),
            inner,
        })
    }

    /// Signs `message` (the ASCII `header.payload`) with this key's algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let failed = |what: &str| KeyError::Jwk(format!("signing failed ({what})"));
        match &self.inner {
            SigningInner::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            SigningInner::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = match self.alg {
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut sig).map_err(|_| failed("RSA"))?;
                Ok(sig)
            }
            SigningInner::Ec(pair) => Ok(pair.sign(&rng, message).map_err(|_| failed("ECDSA"))?.as_ref().to_vec()),
            SigningInner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// The publishable form of a key set: private members removed, secret (`oct`) keys and keys
/// of unknown type dropped. Accepts a JWKS or a single JWK; always returns a JWKS.
pub fn public_key_set(text: &[u8]) -> Result<Json, KeyError> {
    let json = parse_key_json(text, KeyError::Set)?;
    let members = key_objects(&json).map_err(KeyError::Set)?;
    let mut out = Vec::new();
    for (index, member) in members.iter().enumerate() {
        let obj = member.as_object().ok_or_else(|| KeyError::Key {
            index,
            reason: "not a JSON object".into(),
        })?;
        let kty = req_str(obj, "kty").map_err(|reason| KeyError::Key { index, reason })?;
        let public: &[&str] = match kty {
            "RSA" => &["kty", "kid", "use", "alg", "n", "e"],
            "EC" => &["kty", "kid", "use", "alg", "crv", "x", "y"],
            "OKP" => &["kty", "kid", "use", "alg", "crv", "x"],
            _ => continue,
        };
        let kept = obj
            .iter()
            .filter(|(k, _)| public.contains(&k.as_str()))
            .cloned()
            .collect();
        out.push(Json::Object(kept));
    }
    Ok(Json::Object(vec![("keys".into(), Json::Array(out))]))
}

/// Generates a private JWK for `alg` (HS*, ES256, ES384, EdDSA). ring cannot generate RSA keys.
pub fn generate_jwk(alg_name: &str, kid: Option<&str>) -> Result<Json, KeyError> {
    let alg = match Algorithm::classify(alg_name) {
        AlgName::Supported(a) => a,
        _ => {
            return Err(KeyError::Argument(format!(
                "unsupported algorithm for key generation: {alg_name:?}"
            )))
        }
    };
    if kid.is_some_and(|k| k.len() > MAX_KID_BYTES) {
        return Err(KeyError::Argument(format!("kid is longer than {MAX_KID_BYTES} bytes")));
    }
    let rng = SystemRandom::new();
    let fail = || KeyError::Argument("the system random number generator failed".into());
    let s = |v: &str| Json::String(v.into());
    let mut members: Vec<(Str, Json)> = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            let mut secret = vec![0u8; alg.hmac_min_key_len()];
            rng.fill(&mut secret).map_err(|_| fail())?;
            vec![
                ("kty".into(), s("oct")),
                ("k".into(), Json::String(b64::encode(&secret).into())),
            ]
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let (params, curve) = if alg == Algorithm::ES256 {
                (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, Curve::P256)
            } else {
                (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, Curve::P384)
            };
            let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(params, &rng).map_err(|_| fail())?;
            let pair = signature::EcdsaKeyPair::from_pkcs8(params, pkcs8.as_ref(), &rng).map_err(|_| fail())?;
            let len = curve.coordinate_len();
            let prefix: &[u8] = if len == 32 {
                &[0x02, 0x01, 0x01, 0x04, 0x20]
            } else {
                &[0x02, 0x01, 0x01, 0x04, 0x30]
            };
            let d = find_after(pkcs8.as_ref(), prefix, len).ok_or_else(fail)?;
            let point = signature::KeyPair::public_key(&pair).as_ref();
            let x = point.get(1..1 + len).ok_or_else(fail)?;
            let y = point.get(1 + len..1 + 2 * len).ok_or_else(fail)?;
            vec![
                ("kty".into(), s("EC")),
                ("crv".into(), s(curve.name())),
                ("x".into(), Json::String(b64::encode(x).into())),
                ("y".into(), Json::String(b64::encode(y).into())),
                ("d".into(), Json::String(b64::encode(d).into())),
            ]
        }
        Algorithm::EdDSA => {
            let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| fail())?;
            let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| fail())?;
            let seed = find_after(pkcs8.as_ref(), &[0x04, 0x22, 0x04, 0x20], 32).ok_or_else(fail)?;
            let x = signature::KeyPair::public_key(&pair).as_ref();
            vec![
                ("kty".into(), s("OKP")),
                ("crv".into(), s("Ed25519")),
                ("x".into(), Json::String(b64::encode(x).into())),
                ("d".into(), Json::String(b64::encode(seed).into())),
            ]
        }
        _ => {
            return Err(KeyError::Argument(format!(
                "cannot generate {} keys: the crypto library (ring) has no RSA key generation; \
                 generate an RSA key with openssl and import it as a JWK",
                alg.name()
            )))
        }
    };
    members.push(("alg".into(), s(alg.name())));
    members.push(("use".into(), s("sig")));
    if let Some(kid) = kid {
        members.push(("kid".into(), s(kid)));
    }
    Ok(Json::Object(members))
}

/// The `len` bytes that follow the first occurrence of `prefix` in `haystack`.
fn find_after<'a>(haystack: &'a [u8], prefix: &[u8], len: usize) -> Option<&'a [u8]> {
    let start = haystack.windows(prefix.len()).position(|w| w == prefix)? + prefix.len();
    haystack.get(start..start + len)
}
