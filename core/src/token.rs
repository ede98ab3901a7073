//! JWS compact serialization: parsing, header policy, key selection and signature checks,
//! in the fail-closed order of the security checklist (steps 1–10), and signing.

use crate::alg::{AlgName, Algorithm};
use crate::b64;
use crate::claims::{self, Validation};
use crate::error::{KeyError, TokenError};
use crate::json::{Json, JsonError, Members};
use crate::jwk::{KeySet, SigningKey, VerifyKey, MAX_KID_BYTES};

/// Default cap on the whole token, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Cap on the decoded header, in bytes (checklist B17).
pub const MAX_HEADER_BYTES: usize = 2048;

/// What the header may contain beyond the fixed rules.
#[derive(Debug, Clone, Default)]
pub struct HeaderPolicy {
    /// Cap on the whole token; 0 means [`DEFAULT_MAX_TOKEN_BYTES`].
    pub max_token_bytes: usize,
    /// If set, only these algorithms are accepted (checklist B3).
    pub allowed_algs: Option<Vec<Algorithm>>,
    /// If set, `typ` must be present and one of these, compared case-insensitively with an
    /// optional `application/` prefix removed (RFC 8725 §3.11, checklist B15).
    pub allowed_typ: Option<Vec<String>>,
}

/// A token whose signature has been checked; the payload is not yet validated as claims.
#[derive(Debug)]
pub struct SignedToken {
    pub alg: Algorithm,
    pub header: Json,
    pub payload: Vec<u8>,
}

/// A fully verified token.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub header: Json,
    /// The header's algorithm (allowed by the policy, the key's own): what a cache of verified
    /// tokens records (see [`verify_recorded`]).
    pub alg: Algorithm,
    pub claims: Json,
    /// `exp` and `nbf` as numbers, so that later accesses can re-check time cheaply.
    pub times: claims::TimeClaims,
}

/// Verifies a token: signature by one key of `keys`, then the claims against `validation`.
pub fn verify(
    token: &[u8],
    keys: &KeySet,
    policy: &HeaderPolicy,
    validation: &Validation<'_>,
) -> Result<VerifiedToken, TokenError> {
    verify_with(token, keys, policy, validation, Signature::Check)
}

/// Whether [`verify_with`] checks the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Check it (always, unless the caller knows better, see `KnownGood`).
    Check,
    /// The signature of these exact bytes was already found good under this exact key set, by
    /// a cache keyed with a cryptographic hash of both ([`signature_cache_key`]). Everything
    /// else (size, structure, strict base64url, header policy, key choice, signature length,
    /// claims) is checked as usual.
    KnownGood,
}

/// [`verify`], with the signature check skipped when the caller vouches for it.
pub fn verify_with(
    token: &[u8],
    keys: &KeySet,
    policy: &HeaderPolicy,
    validation: &Validation<'_>,
    signature: Signature,
) -> Result<VerifiedToken, TokenError> {
    let signed = verify_signature_with(token, keys, policy, signature)?;
    let claims = parse_claims(&signed.payload)?;
    let times = claims::validate(&claims, validation)?;
    Ok(VerifiedToken {
        header: signed.header,
        alg: signed.alg,
        claims,
        times,
    })
}

/// A token's claims, when a cache of verified tokens holds a record of these exact bytes under
/// this exact key set (the cache's key is [`signature_cache_key`], a cryptographic hash of
/// both) with the algorithm of their header. Steps 1-9 are functions of the token bytes, the key
/// set and the header policy only, so their outcome is the record's, except what the policy may
/// have changed since: the algorithm allowlist, checked again here. The payload is decoded from
/// the token itself (the same strict base64url), then steps 10-11 (the payload as claims, the
/// claims against `validation`: time, issuer, audience, required claims) run in full, against
/// the caller's settings of now. What is skipped: the header's decoding, parsing and policy,
/// the key choice, and the signature's decoding, length and check.
///
/// `None`: the policy has a rule the record cannot answer (a `typ` allowlist needs the
/// header): verify the token itself.
pub fn verify_recorded(
    token: &[u8],
    alg: Algorithm,
    policy: &HeaderPolicy,
    validation: &Validation<'_>,
) -> Option<Result<(claims::Body, claims::TimeClaims), TokenError>> {
    // The claims checked as strictly as a full verification's `parse_claims`, without building
    // the tree.
    record_checks(token, alg, policy).map(|checked| {
        checked
            .and_then(|()| payload_claims(token, policy.max_token_bytes))
            .and_then(|claims| validated(claims, validation))
    })
}

/// What a record leaves to check before the claims: `None` when the policy has a rule the record
/// cannot answer (a `typ` allowlist); else the size cap and the algorithm allowlist of now.
fn record_checks(token: &[u8], alg: Algorithm, policy: &HeaderPolicy) -> Option<Result<(), TokenError>> {
    if policy.allowed_typ.is_some() {
        return None;
    }
    Some(check_size(token, policy.max_token_bytes).and_then(|()| check_allowed(alg, policy)))
}

/// Step 11: `claims` against `validation` (time, issuer, audience, required claims).
fn validated(
    claims: claims::Body,
    validation: &Validation<'_>,
) -> Result<(claims::Body, claims::TimeClaims), TokenError> {
    let times = claims::validate(&claims, validation)?;
    Ok((claims, times))
}

/// Step 1, before any decoding (and before a caller hashes the token for a cache): the size
/// cap. `max_token_bytes` 0 means [`DEFAULT_MAX_TOKEN_BYTES`].
pub fn check_size(token: &[u8], max_token_bytes: usize) -> Result<(), TokenError> {
    let max = if max_token_bytes == 0 {
        DEFAULT_MAX_TOKEN_BYTES
    } else {
        max_token_bytes
    };
    if token.len() > max {
        return Err(TokenError::TooLarge("the token is longer than the configured maximum"));
    }
    Ok(())
}

/// Steps 1–9: size, segments, header, key choice, signature over the received bytes, and the
/// payload's base64url. This is the JWS layer the Wycheproof and RFC 7520 vectors exercise.
pub fn verify_signature(token: &[u8], keys: &KeySet, policy: &HeaderPolicy) -> Result<SignedToken, TokenError> {
    verify_signature_with(token, keys, policy, Signature::Check)
}

fn verify_signature_with(
    token: &[u8],
    keys: &KeySet,
    policy: &HeaderPolicy,
    check: Signature,
) -> Result<SignedToken, TokenError> {
    let (header_b64, payload_b64, signature_b64, header) = checked_header(token, policy)?;
    let (alg, kid) = check_header(&header, policy)?;
    let key = select_key(keys, alg, kid)?;
    let signature =
        b64::decode(signature_b64).map_err(|_| TokenError::Malformed("the signature is not strict base64url"))?;
    // Every segment is strictly decoded before the signature check, so a non-canonical payload
    // is refused even when its signature matches (C11). It is parsed only after the check.
    let payload = b64::decode(payload_b64).map_err(|_| TokenError::Malformed("the payload is not strict base64url"))?;
    if signature.len() != key.signature_len(alg) {
        return Err(TokenError::InvalidSignature);
    }
    // The signing input is the received ASCII `header.payload`, never a re-encoding (C12).
    let signing_input = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(TokenError::Malformed("truncated"))?;
    if check == Signature::Check && !key.verify(alg, signing_input, &signature) {
        return Err(TokenError::InvalidSignature);
    }
    Ok(SignedToken { alg, header, payload })
}

/// Steps 1–4: the size cap, three segments, the header's size, strict base64url and JSON.
/// Returns the three segments and the parsed header (its policy is `check_header`'s).
#[allow(clippy::type_complexity)]
fn checked_header<'t>(
    token: &'t [u8],
    policy: &HeaderPolicy,
) -> Result<(&'t [u8], &'t [u8], &'t [u8], Json), TokenError> {
    check_size(token, policy.max_token_bytes)?;
    let (header_b64, payload_b64, signature_b64) = split(token)?;
    if header_b64.len() > MAX_HEADER_BYTES.div_ceil(3) * 4 {
        return Err(TokenError::TooLarge("the header is larger than 2048 bytes"));
    }
    let header_bytes =
        b64::decode(header_b64).map_err(|_| TokenError::Malformed("the header is not strict base64url"))?;
    let header = Json::parse(&header_bytes).map_err(|e| match e {
        JsonError::DuplicateMember => TokenError::Malformed("duplicate member in the header"),
        _ => TokenError::Malformed("the header is not valid JSON"),
    })?;
    Ok((header_b64, payload_b64, signature_b64, header))
}

/// Splits into exactly three segments. Five segments is JWE, which is not supported.
fn split(token: &[u8]) -> Result<(&[u8], &[u8], &[u8]), TokenError> {
    // memchr: a token is hundreds of bytes, and this runs on every verification, the record's too.
    let mut dots = memchr::memchr_iter(b'.', token);
    let parts = match (dots.next(), dots.next(), dots.next()) {
        (Some(d1), Some(d2), None) => token
            .get(..d1)
            .zip(token.get(d1 + 1..d2))
            .zip(token.get(d2 + 1..))
            .map(|((h, p), s)| (h, p, s)),
        _ => None,
    };
    match parts {
        Some(p) => Ok(p),
        None => {
            if token.iter().filter(|b| **b == b'.').count() == 4 {
                Err(TokenError::Unsupported("encrypted tokens (JWE) are not supported"))
            } else {
                Err(TokenError::Malformed(
                    "expected three base64url segments separated by dots",
                ))
            }
        }
    }
}

/// Step 5: the header policy. Returns the algorithm and the `kid`.
fn check_header<'h>(header: &'h Json, policy: &HeaderPolicy) -> Result<(Algorithm, Option<&'h str>), TokenError> {
    let Json::Object(members) = header else {
        return Err(TokenError::Malformed("the header is not a JSON object"));
    };
    let alg_name = match header.get("alg") {
        Some(Json::String(s)) if !s.is_empty() => s.as_str(),
        _ => return Err(TokenError::Malformed("the header has no alg string")),
    };
    let alg = match Algorithm::classify(alg_name) {
        AlgName::Supported(a) => a,
        AlgName::None => return Err(TokenError::AlgorithmNotAllowed("alg none is never accepted")),
        AlgName::Unsupported => return Err(TokenError::Unsupported("the algorithm is not supported")),
        AlgName::Unknown => return Err(TokenError::AlgorithmNotAllowed("unknown algorithm")),
    };
    check_allowed(alg, policy)?;
    for (name, value) in members {
        match name.as_str() {
            "crit" => {
                return Err(TokenError::Unsupported(
                    "header parameter crit (no extensions are supported)",
                ))
            }
            "b64" => {
                return Err(TokenError::Unsupported(
                    "header parameter b64 (RFC 7797) is not supported",
                ))
            }
            "enc" | "zip" => return Err(TokenError::Unsupported("header parameter enc/zip: not a JWS")),
            "cty" => match value {
                Json::String(s) if is_media_type(s, "jwt") => {
                    return Err(TokenError::Unsupported("nested tokens (cty JWT) are not supported"))
                }
                Json::String(_) => {}
                _ => return Err(TokenError::Malformed("header parameter cty is not a string")),
            },
            "typ" if !matches!(value, Json::String(_)) => {
                return Err(TokenError::Malformed("header parameter typ is not a string"))
            }
            _ => {}
        }
    }
    if let Some(allowed) = &policy.allowed_typ {
        let typ = header.get("typ").and_then(Json::as_str);
        if !typ.is_some_and(|t| allowed.iter().any(|a| is_media_type(t, a))) {
            return Err(TokenError::AlgorithmNotAllowed("the token type (typ) is not accepted"));
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Json::String(k)) if k.len() > MAX_KID_BYTES => {
            return Err(TokenError::TooLarge("the kid is longer than 256 bytes"))
        }
        Some(Json::String(k)) => Some(k.as_str()),
        Some(_) => return Err(TokenError::Malformed("header parameter kid is not a string")),
    };
    // jku, x5u, x5c, jwk and x5t are deliberately never read: keys come only from the key set.
    Ok((alg, kid))
}

/// The policy's algorithm allowlist (checklist B3), if it has one.
fn check_allowed(alg: Algorithm, policy: &HeaderPolicy) -> Result<(), TokenError> {
    match &policy.allowed_algs {
        Some(allowed) if !allowed.contains(&alg) => Err(TokenError::AlgorithmNotAllowed(
            "the algorithm is not in the allowed list",
        )),
        _ => Ok(()),
    }
}

/// Compares media types case-insensitively, ignoring an `application/` prefix (RFC 7515 §4.1.9).
fn is_media_type(value: &str, expected: &str) -> bool {
    fn strip(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => s.get(12..).unwrap_or(""),
            _ => s,
        }
    }
    strip(value).eq_ignore_ascii_case(strip(expected))
}

/// Step 6: a `kid` must match exactly; without one, the single key compatible with the
/// algorithm is used. Keys are never tried one after another.
fn select_key<'k>(keys: &'k KeySet, alg: Algorithm, kid: Option<&str>) -> Result<&'k VerifyKey, TokenError> {
    match kid {
        Some(kid) => {
            let key = keys
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(TokenError::NoMatchingKey("no key has the token's kid"))?;
            if key.allows(alg) {
                Ok(key)
            } else {
                Err(TokenError::AlgorithmNotAllowed(
                    "the key with this kid does not allow the token's algorithm",
                ))
            }
        }
        None => {
            let mut candidates = keys.keys.iter().filter(|k| k.allows(alg));
            match (candidates.next(), candidates.next()) {
                (Some(key), None) => Ok(key),
                (None, _) => Err(TokenError::NoMatchingKey("no key allows the token's algorithm")),
                (Some(_), Some(_)) => Err(TokenError::NoMatchingKey(
                    "the token has no kid and several keys could verify it",
                )),
            }
        }
    }
}

/// Step 10: the payload must be a JSON object (no duplicates, no NUL, bounded depth).
pub fn parse_claims(payload: &[u8]) -> Result<Json, TokenError> {
    let claims = Json::parse(payload).map_err(claims_error)?;
    if !matches!(claims, Json::Object(_)) {
        return Err(TokenError::Malformed("the claims are not a JSON object"));
    }
    Ok(claims)
}

/// Why a payload is refused as claims.
pub fn claims_error(e: JsonError) -> TokenError {
    match e {
        JsonError::TooDeep => TokenError::TooLarge("the claims are nested too deeply"),
        JsonError::DuplicateMember => TokenError::Malformed("duplicate claim name"),
        JsonError::NulCharacter => TokenError::Malformed("a claim contains a NUL character"),
        JsonError::InvalidUtf8 | JsonError::LoneSurrogate => TokenError::Malformed("the claims are not valid UTF-8"),
        JsonError::Syntax => TokenError::Malformed("the claims are not valid JSON"),
    }
}

/// The claims of a decoded payload as a [`claims::Body`]: its top-level members, found by the
/// strict parser without building the values; or, where members cannot be read that way (a
/// member name with escapes) or the payload is refused, exactly what [`parse_claims`] gives.
pub fn claims_body(payload: Vec<u8>) -> Result<claims::Body, TokenError> {
    match Members::parse(payload).map_err(claims_error)? {
        Ok(members) => Ok(claims::Body::Members(members, Default::default())),
        Err(payload) => parse_claims(&payload).map(claims::Body::Tree),
    }
}

/// A token's claims read before its signature is checked, to choose the one provider whose keys
/// may verify it by the token's `iss` (never to trust them: the chosen provider's verification
/// checks `iss` again, over the signed bytes), and kept so that a verification on record
/// ([`verify_recorded_peeked`]) neither decodes nor parses them again.
#[derive(Debug)]
pub struct Peeked(claims::Body);

impl Peeked {
    /// The claims' `iss` when it is a string.
    pub fn issuer(&self) -> Option<&str> {
        match self.0.scalar("iss") {
            claims::Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The token's claims for choosing its provider ([`Peeked`]): steps 1, 2 and 10 (size,
/// segments, the payload's strict base64url and JSON). The header is not read unless the payload
/// is refused, and then first: a token refused for its form gets the error it got when the header
/// was checked before the payload. A caller that goes on without a verification on record, or
/// refuses the token for its issuer, calls [`check_form`] first, for the same reason.
pub fn peek(token: &[u8], policy: &HeaderPolicy) -> Result<Peeked, TokenError> {
    payload_claims(token, policy.max_token_bytes).map(Peeked).or_else(|e| {
        check_form(token, policy)?;
        Err(e)
    })
}

/// Steps 1-5 (size, segments, the header and its policy): what refuses a token for its form
/// before its claims are read.
pub fn check_form(token: &[u8], policy: &HeaderPolicy) -> Result<(), TokenError> {
    let (_, _, _, header) = checked_header(token, policy)?;
    check_header(&header, policy)?;
    Ok(())
}

/// [`verify_recorded`] for a token whose claims were [`peek`]ed with the policy's size cap: the
/// same checks, on the claims already decoded and parsed from the same bytes.
pub fn verify_recorded_peeked(
    token: &[u8],
    peeked: Peeked,
    alg: Algorithm,
    policy: &HeaderPolicy,
    validation: &Validation<'_>,
) -> Option<Result<(claims::Body, claims::TimeClaims), TokenError>> {
    record_checks(token, alg, policy).map(|checked| checked.and_then(|()| validated(peeked.0, validation)))
}

/// Steps 1, 2 and 10 without the header: the size cap, the segments, and the payload decoded
/// and checked as claims (as strictly as [`parse_claims`], without building the tree).
fn payload_claims(token: &[u8], max_token_bytes: usize) -> Result<claims::Body, TokenError> {
    check_size(token, max_token_bytes)?;
    let (_, payload_b64, _) = split(token)?;
    let payload = b64::decode(payload_b64).map_err(|_| TokenError::Malformed("the payload is not strict base64url"))?;
    claims_body(payload)
}

/// Decodes a token without checking anything but its syntax: for debugging only.
pub fn decode_unverified(token: &[u8], max_token_bytes: usize) -> Result<(Json, Json), TokenError> {
    check_size(token, max_token_bytes)?;
    let (header_b64, payload_b64, _) = split(token)?;
    let header_bytes =
        b64::decode(header_b64).map_err(|_| TokenError::Malformed("the header is not strict base64url"))?;
    let header = Json::parse(&header_bytes).map_err(|_| TokenError::Malformed("the header is not valid JSON"))?;
    let payload = b64::decode(payload_b64).map_err(|_| TokenError::Malformed("the payload is not strict base64url"))?;
    Ok((header, parse_claims(&payload)?))
}

/// Signs `claims` (a JSON object) with `key`: header `{"alg", "typ": "JWT", "kid"?}`.
pub fn sign(claims: &Json, key: &SigningKey) -> Result<String, KeyError> {
    if !matches!(claims, Json::Object(_)) {
        return Err(KeyError::Argument("claims must be a JSON object".into()));
    }
    let mut header = vec![
        ("alg".into(), Json::String(key.alg.name().into())),
        ("typ".into(), Json::String("JWT".into())),
    ];
    if let Some(kid) = &key.kid {
        header.push(("kid".into(), Json::String(kid.as_str().into())));
    }
    let mut token = b64::encode(Json::Object(header).to_json_string().as_bytes());
    token.push('.');
    token.push_str(&b64::encode(claims.to_json_string().as_bytes()));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64::encode(&signature));
    Ok(token)
}

/// The key of a cache of good signatures: SHA-256 over a fingerprint of the key set (see
/// [`key_set_fingerprint`]) and the exact token bytes. Two tokens that differ in any byte, or
/// one token under two key sets, never share a key.
pub fn signature_cache_key(key_set_fingerprint: &[u8; 32], token: &[u8]) -> [u8; 32] {
    CacheKeyer::new(key_set_fingerprint).key(token)
}

/// [`signature_cache_key`] for one key set, with the key set's part hashed once: the label and
/// the fingerprint fill the first SHA-256 block exactly (zero-padded), so each key hashes only
/// the token's blocks (one block of about eleven fewer for a typical token).
#[derive(Clone)]
pub struct CacheKeyer(ring::digest::Context);

impl CacheKeyer {
    pub fn new(key_set_fingerprint: &[u8; 32]) -> CacheKeyer {
        const LABEL: &[u8; 26] = b"pg_jwt signature cache v2\0";
        let mut block = [0u8; 64];
        let (label, rest) = block.split_at_mut(LABEL.len());
        label.copy_from_slice(LABEL);
        if let Some(print) = rest.get_mut(..32) {
            print.copy_from_slice(key_set_fingerprint);
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&block);
        CacheKeyer(ctx)
    }

    /// The cache key of `token` under this key set.
    pub fn key(&self, token: &[u8]) -> [u8; 32] {
        let mut ctx = self.0.clone();
        ctx.update(token);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

/// A cheap hash of a token for choosing a cache bucket: its length and its last 16 bytes
/// (signature bytes, effectively random for every token an issuer signs), mixed with `seed` by
/// one folded 128-bit multiplication (as foldhash mixes). Not a cache key: equality is always
/// decided on the exact bytes or [`signature_cache_key`]. Callers draw `seed` at random, so
/// that someone who can obtain many signed tokens cannot choose ones that share a bucket.
pub fn tail_hash(seed: u64, token: &[u8]) -> u64 {
    let mut tail = [0u8; 16];
    let src = token.get(token.len().saturating_sub(16)..).unwrap_or_default();
    if let Some(dst) = tail.get_mut(..src.len()) {
        dst.copy_from_slice(src);
    }
    let (a, b) = tail.split_at(8);
    let a = u64::from_le_bytes(a.try_into().unwrap_or_default());
    let b = u64::from_le_bytes(b.try_into().unwrap_or_default());
    let fold = |x: u64, y: u64| {
        let m = u128::from(x) * u128::from(y);
        (m as u64) ^ ((m >> 64) as u64)
    };
    // The seed in both factors: no tail makes either factor zero whatever the seed.
    let state = seed.rotate_left(29) ^ token.len() as u64;
    let x = fold(a ^ state ^ 0x243f_6a88_85a3_08d3, b ^ seed ^ 0x1319_8a2e_0370_7344);
    // A second fold by an odd multiplier: with one fold, tails that differ only in a few bytes
    // (decimal digits, say) fell into a few dozen of 1,024 buckets under some seeds; with two,
    // the fewest over 3,000 seeds was 602 (about 638 expected for random buckets).
    fold(x ^ 0xa409_3822_299f_31d0, (seed ^ 0x082e_fa98_ec4e_6c89) | 1)
}

/// A fingerprint of the texts a key set was imported from (each length-prefixed, in order):
/// the same texts give the same key set.
pub fn key_set_fingerprint(sources: &[Option<&[u8]>]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"pg_jwt key set v1\0");
    for source in sources {
        match source {
            None => ctx.update(&[0]),
            Some(text) => {
                ctx.update(&[1]);
                ctx.update(&(text.len() as u64).to_le_bytes());
                ctx.update(text);
            }
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
