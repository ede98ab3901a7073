//! Registered claim validation (RFC 7519 §4.1): types first, then values (checklist E7–E20).

use crate::error::TokenError;
use crate::json::{Json, Member, Members};
use std::borrow::Cow;
use std::cell::OnceCell;

/// Largest NumericDate accepted: 9999-12-31 23:59:59 UTC.
pub const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;
/// Default clock leeway in seconds.
pub const DEFAULT_LEEWAY: i64 = 30;
/// Largest clock leeway accepted anywhere (the `pg_jwt.leeway` setting and `jwt_verify`'s
/// argument), in seconds: an hour of skew is already far more than any sane clock has.
pub const MAX_LEEWAY: i64 = 3600;
/// The claims a token must carry unless configured otherwise (`pg_jwt.required_claims`'s
/// default; `jwt_verify` always requires them).
pub const DEFAULT_REQUIRED_CLAIMS: &[&str] = &["exp"];

/// How claims are checked.
#[derive(Debug, Clone)]
pub struct Validation<'a> {
    /// The current time, Unix seconds.
    pub now: i64,
    /// Clock skew tolerated for `exp`, `nbf` and `iat`, in seconds (non-negative).
    pub leeway: i64,
    /// If set, `aud` must be this string or an array containing it. If not set, a token that
    /// carries `aud` is rejected (RFC 7519 §4.1.3: the recipient must identify itself).
    pub audience: Option<&'a str>,
    /// If non-empty (a provider's `audience` list), `aud` must contain one of them; this
    /// replaces `audience`.
    pub audiences: &'a [String],
    /// If set, `iss` must be exactly this string.
    pub issuer: Option<&'a str>,
    /// Claims that must be present (callers pass [`DEFAULT_REQUIRED_CLAIMS`] unless configured
    /// otherwise).
    pub required: &'a [String],
    /// If set, `exp` may be at most this many seconds after `now` (checklist E12).
    pub max_lifetime: Option<i64>,
    /// If set, the claim revocation by session matches (`pg_jwt.session_claim`): when present
    /// it must be a string, as `sub` and `jti` must, or no revocation of its session could
    /// ever match the token.
    pub session_claim: Option<&'a str>,
}

impl<'a> Validation<'a> {
    pub fn new(now: i64, required: &'a [String]) -> Validation<'a> {
        Validation {
            now,
            leeway: DEFAULT_LEEWAY,
            audience: None,
            audiences: &[],
            issuer: None,
            required,
            max_lifetime: None,
            session_claim: None,
        }
    }
}

/// The time claims of a verified token, kept to re-check expiry at every access.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TimeClaims {
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
}

/// The half-open interval of Unix times `[from, until)` in which a token is valid: the one
/// definition of expiry and not-before, used by the verification, the per-backend cache and the
/// per-call-site cache alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// `nbf - leeway`, or minus infinity without `nbf`.
    pub from: f64,
    /// `exp + leeway`, or infinity without `exp`.
    pub until: f64,
}

impl Window {
    /// Whether `now` (Unix seconds) lies inside the window.
    #[inline]
    pub fn contains(&self, now: f64) -> bool {
        self.from <= now && now < self.until
    }
}

impl TimeClaims {
    /// The validity window with `leeway` seconds of clock skew (negative counts as 0).
    pub fn window(&self, leeway: i64) -> Window {
        let leeway = leeway.max(0) as f64;
        Window {
            from: self.nbf.map_or(f64::NEG_INFINITY, |nbf| nbf - leeway),
            until: self.exp.map_or(f64::INFINITY, |exp| exp + leeway),
        }
    }

    /// Re-checks `exp` and `nbf` against `now` (used when a cached verification is reused).
    pub fn check(&self, now: i64, leeway: i64) -> Result<(), TokenError> {
        let window = self.window(leeway);
        let now = now as f64;
        if let Some(exp) = self.exp {
            if now >= window.until {
                return Err(TokenError::Expired {
                    exp: exp.floor() as i64,
                });
            }
        }
        if let Some(nbf) = self.nbf {
            if now < window.from {
                return Err(TokenError::NotYetValid {
                    claim: "nbf",
                    at: nbf.floor() as i64,
                });
            }
        }
        Ok(())
    }
}

/// The value of a JSON number's text (as the parser kept it) as the nearest `f64`: plain
/// integers of up to 15 digits (every real NumericDate) are converted exactly without the float
/// parser; anything else goes through it. Same result either way (a 15-digit integer is exact
/// in an `f64`).
pub fn number_value(text: &str) -> Option<f64> {
    let digits = text.as_bytes();
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let v = digits.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        return Some(v as f64);
    }
    text.parse::<f64>().ok()
}

/// A top-level claim as validation and the revocation check read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim<'a> {
    String(&'a str),
    /// A number's text as written.
    Number(&'a str),
    /// An array whose items are all strings.
    Strings(Vec<Cow<'a, str>>),
    /// Anything else: true, false, null, an object, an array with an item that is not a string.
    Other,
}

/// Claims whose top-level members can be read by name: a parsed tree ([`Json`]), the members
/// of a payload found without building it ([`Members`]), or either ([`Body`]). Validation and
/// the revocation check read claims through this, so they read both alike.
pub trait ClaimSet {
    /// The top-level claim `name`; `None` when absent.
    fn claim(&self, name: &str) -> Option<Claim<'_>>;
    /// Whether the top-level claim `name` is present (JSON null included).
    fn has(&self, name: &str) -> bool;
}

fn strings_of(items: &[Json]) -> Claim<'_> {
    let strings: Option<Vec<Cow<'_, str>>> = items.iter().map(|i| i.as_str().map(Cow::Borrowed)).collect();
    strings.map_or(Claim::Other, Claim::Strings)
}

impl ClaimSet for Json {
    fn claim(&self, name: &str) -> Option<Claim<'_>> {
        Some(match self.get(name)? {
            Json::String(s) => Claim::String(s),
            Json::Number(n) => Claim::Number(n),
            Json::Array(items) => strings_of(items),
            _ => Claim::Other,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl ClaimSet for Members {
    fn claim(&self, name: &str) -> Option<Claim<'_>> {
        Some(match self.get(name)? {
            Member::Str(s) => Claim::String(s),
            Member::Number(n) => Claim::Number(n),
            // An array (for `aud`) is parsed here, by the parser that checked it; what is not
            // an array of strings is `Other`, which no type check accepts.
            Member::Json(text) => match Json::parse(text.as_bytes()) {
                Ok(Json::Array(items)) => match strings_of(&items) {
                    Claim::Strings(s) => Claim::Strings(s.into_iter().map(|c| Cow::Owned(c.into_owned())).collect()),
                    _ => Claim::Other,
                },
                _ => Claim::Other,
            },
        })
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A verified token's claims: the tree a full verification parsed, or the top-level members of
/// a payload verified from the shared cache's record ([`token::verify_recorded`]), whose tree
/// is built at the first use that needs the whole value (`jwt_claims()`, a nested path).
///
/// [`token::verify_recorded`]: crate::token::verify_recorded
#[derive(Debug, Clone)]
pub enum Body {
    Tree(Json),
    Members(Members, OnceCell<Json>),
}

/// A top-level member as an accessor reads it without the tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Absent,
    Str(&'a str),
    /// A number's text as written.
    Number(&'a str),
    /// Anything else: read it from [`Body::tree`].
    Other,
}

impl Body {
    /// The claims as a tree (built once, at the first call, for members).
    pub fn tree(&self) -> Result<&Json, TokenError> {
        match self {
            Body::Tree(json) => Ok(json),
            Body::Members(members, cell) => {
                if let Some(json) = cell.get() {
                    return Ok(json);
                }
                let json = members.tree().map_err(crate::token::claims_error)?;
                Ok(cell.get_or_init(|| json))
            }
        }
    }

    /// Member `name` as a tree value: borrowed from the tree (once built), else built from that
    /// member's text alone (checked already, with the whole payload, by the strict parser).
    pub fn value(&self, name: &str) -> Result<Option<Cow<'_, Json>>, TokenError> {
        match self {
            Body::Tree(json) => Ok(json.get(name).map(Cow::Borrowed)),
            Body::Members(members, cell) => match cell.get() {
                Some(json) => Ok(json.get(name).map(Cow::Borrowed)),
                None => match members.get(name) {
                    None => Ok(None),
                    Some(member) => member
                        .to_json()
                        .map(|v| Some(Cow::Owned(v)))
                        .map_err(crate::token::claims_error),
                },
            },
        }
    }

    /// Member `name` when it is a string or a number (what the scalar accessors read).
    pub fn scalar(&self, name: &str) -> Scalar<'_> {
        match self {
            Body::Tree(json) => match json.get(name) {
                None => Scalar::Absent,
                Some(Json::String(s)) => Scalar::Str(s),
                Some(Json::Number(n)) => Scalar::Number(n),
                Some(_) => Scalar::Other,
            },
            Body::Members(members, _) => match members.get(name) {
                None => Scalar::Absent,
                Some(Member::Str(s)) => Scalar::Str(s),
                Some(Member::Number(n)) => Scalar::Number(n),
                Some(Member::Json(_)) => Scalar::Other,
            },
        }
    }
}

impl ClaimSet for Body {
    fn claim(&self, name: &str) -> Option<Claim<'_>> {
        match self {
            Body::Tree(json) => json.claim(name),
            Body::Members(members, _) => members.claim(name),
        }
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Body::Tree(json) => json.has(name),
            Body::Members(members, _) => members.has(name),
        }
    }
}

/// A NumericDate: a JSON number, finite, from 0 to [`MAX_NUMERIC_DATE`]. Anything else, a
/// numeric string included, is an invalid type, never "absent" (checklist E9, E10).
fn numeric_date<C: ClaimSet + ?Sized>(claims: &C, name: &'static str) -> Result<Option<f64>, TokenError> {
    match claims.claim(name) {
        None => Ok(None),
        Some(Claim::Number(text)) => match number_value(text) {
            Some(v) if v.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&v) => Ok(Some(v)),
            _ => Err(TokenError::InvalidClaimType(name)),
        },
        Some(_) => Err(TokenError::InvalidClaimType(name)),
    }
}

fn optional_string<'c, C: ClaimSet + ?Sized>(claims: &'c C, name: &'static str) -> Result<Option<&'c str>, TokenError> {
    match claims.claim(name) {
        None => Ok(None),
        Some(Claim::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::InvalidClaimType(name)),
    }
}

/// Whether `aud` (a string or an array of strings) names an audience `wanted` accepts.
fn names_any(aud: &Claim<'_>, wanted: impl Fn(&str) -> bool) -> bool {
    match aud {
        Claim::String(s) => wanted(s),
        Claim::Strings(items) => items.iter().any(|a| wanted(a)),
        _ => false,
    }
}

/// Validates the registered claims of a claims object; returns the time claims.
pub fn validate<C: ClaimSet + ?Sized>(claims: &C, v: &Validation<'_>) -> Result<TimeClaims, TokenError> {
    // Types first: every registered claim that is present must have its type.
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    let iss = optional_string(claims, "iss")?;
    optional_string(claims, "sub")?;
    optional_string(claims, "jti")?;
    if let Some(name) = v.session_claim {
        if matches!(claims.claim(name), Some(c) if !matches!(c, Claim::String(_))) {
            // The name is a setting's value, not a static: the default's own name, or the setting's.
            return Err(TokenError::InvalidClaimType(if name == "sid" {
                "sid"
            } else {
                "pg_jwt.session_claim"
            }));
        }
    }
    // A string or a non-empty array of strings (a single string is not copied into a list).
    let aud: Option<Claim<'_>> = match claims.claim("aud") {
        None => None,
        Some(one @ Claim::String(_)) => Some(one),
        Some(Claim::Strings(items)) if !items.is_empty() => Some(Claim::Strings(items)),
        Some(_) => return Err(TokenError::InvalidClaimType("aud")),
    };

    for name in v.required {
        if !claims.has(name) {
            return Err(TokenError::MissingClaim(name.clone()));
        }
    }

    // Then values.
    let times = TimeClaims { exp, nbf };
    times.check(v.now, v.leeway)?;
    if let Some(iat) = iat {
        if iat > (v.now + v.leeway.max(0)) as f64 {
            return Err(TokenError::NotYetValid {
                claim: "iat",
                at: iat.floor() as i64,
            });
        }
    }
    if let (Some(max), Some(exp)) = (v.max_lifetime, exp) {
        if exp - v.now as f64 > max as f64 {
            return Err(TokenError::InvalidClaimType("exp"));
        }
    }
    match (v.issuer, iss) {
        (Some(_), None) => return Err(TokenError::MissingClaim("iss".to_owned())),
        (Some(expected), Some(actual)) if expected != actual => {
            return Err(TokenError::IssuerMismatch(
                "the token's iss is not the configured issuer",
            ))
        }
        _ => {}
    }
    if !v.audiences.is_empty() {
        return match aud {
            None => Err(TokenError::MissingClaim("aud".to_owned())),
            Some(list) if names_any(&list, |a| v.audiences.iter().any(|e| e.as_str() == a)) => Ok(times),
            Some(_) => Err(TokenError::AudienceMismatch(
                "the token's aud names none of its provider's audiences",
            )),
        };
    }
    match (v.audience, aud) {
        (Some(_), None) => return Err(TokenError::MissingClaim("aud".to_owned())),
        (Some(expected), Some(list)) if !names_any(&list, |a| a == expected) => {
            return Err(TokenError::AudienceMismatch(
                "the token's aud does not name the configured audience",
            ))
        }
        (None, Some(_)) => {
            return Err(TokenError::AudienceMismatch(
                "the token carries aud but no audience is configured (RFC 7519 section 4.1.3)",
            ))
        }
        _ => {}
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::number_value;

    #[test]
    fn number_value_agrees_with_the_float_parser() {
        for text in [
            "0",
            "1",
            "9",
            "1765000000",
            "253402300799",
            "999999999999999",
            "1000000000000000",
            "9007199254740993",
            "12345678901234567890",
            "-1",
            "-0",
            "1.5",
            "1e3",
            "1E-3",
            "0.0",
            "1765000000.999",
        ] {
            assert_eq!(number_value(text), text.parse::<f64>().ok(), "{text}");
        }
    }

    /// The session claim revocation matches must be a string when present (a number would never
    /// match a revoked session id, so the token would outlive its session's revocation).
    #[test]
    fn the_session_claim_must_be_a_string() {
        use super::{validate, Validation};
        use crate::{Json, TokenError};
        let required = Vec::new();
        let check = |claims: &str, name: Option<&str>| {
            let v = Validation {
                session_claim: name,
                ..Validation::new(1_700_000_000, &required)
            };
            validate(&Json::parse(claims.as_bytes()).unwrap(), &v).map(|_| ())
        };
        assert!(check(r#"{"sid":"7"}"#, Some("sid")).is_ok());
        assert!(check(r#"{"sub":"a"}"#, Some("sid")).is_ok(), "absent");
        for bad in [
            r#"{"sid":7}"#,
            r#"{"sid":null}"#,
            r#"{"sid":["7"]}"#,
            r#"{"sid":{"a":1}}"#,
        ] {
            assert!(
                matches!(check(bad, Some("sid")), Err(TokenError::InvalidClaimType("sid"))),
                "{bad}"
            );
            assert!(check(bad, None).is_ok(), "no session claim set: {bad}");
        }
        assert!(matches!(
            check(r#"{"session_id":7}"#, Some("session_id")),
            Err(TokenError::InvalidClaimType("pg_jwt.session_claim"))
        ));
        assert!(check(r#"{"sid":7}"#, Some("session_id")).is_ok(), "another claim");
    }
}
