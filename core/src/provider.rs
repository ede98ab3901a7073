//! Several identity providers (`pg_jwt.providers`): the list, checked once when it is set, and
//! the choice of the one provider a token's `iss` names.
//!
//! A provider is chosen by the token's `iss` alone, never by trying keys: an exact issuer first
//! (a hash lookup, so the cost does not grow with the number of providers), then an issuer
//! template (`https://login.microsoftonline.com/{tid}/v2.0`) whose one placeholder stands for a
//! whole path segment that must equal the claim it names. A list in which one `iss` could
//! choose two providers (two equal issuers, two templates that overlap) is refused as a whole.
//!
//! After the signature, [`Provider::check`] applies what only a provider has: the template's
//! claim, `max_lifetime` (`exp - iat`, `iat` then required) and the `claims` constraints.

use crate::alg::{AlgName, Algorithm};
use crate::claims::{Body, Claim, ClaimSet};
use crate::error::TokenError;
use crate::json::Json;
use crate::jwk::KeySet;
use std::collections::HashMap;

/// At most this many providers in one list.
pub const MAX_PROVIDERS: usize = 10_000;
/// The largest `pg_jwt.providers` text, in bytes.
pub const MAX_LIST_BYTES: usize = 16 * 1024 * 1024;
/// The implicit provider the single-provider settings (`pg_jwt.jwks`, `pg_jwt.jwks_uri`,
/// `pg_jwt.issuer`, ...) describe. Reserved: no listed provider may take the name.
pub const DEFAULT_NAME: &str = "default";
/// Longest issuer, URL or claim name accepted in the list, in bytes.
pub const MAX_TEXT: usize = 1000;
/// Longest `max_lifetime`: ten years, in seconds.
pub const MAX_LIFETIME: i64 = 10 * 366 * 86_400;

/// Where a provider's `iss` is matched.
#[derive(Debug, Clone, PartialEq)]
pub enum Issuer {
    /// `iss` must equal it.
    Exact(String),
    /// `iss`, split at `/`, must have as many segments; each literal segment must be equal and
    /// the placeholder's segment (at `at`) a non-empty string equal to claim `claim`.
    Template {
        text: String,
        segments: Vec<String>,
        at: usize,
        claim: String,
    },
}

impl Issuer {
    pub fn text(&self) -> &str {
        match self {
            Issuer::Exact(s) | Issuer::Template { text: s, .. } => s,
        }
    }
}

/// One entry of `pg_jwt.providers`, checked.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub issuer: Issuer,
    /// An https URL, or `discover` (OpenID Connect discovery from the exact issuer).
    pub jwks_uri: Option<String>,
    /// Pinned keys, as JSON text (imported when checked: it imports).
    pub jwks: Option<String>,
    /// The token's `aud` must contain one of them; empty: a token with `aud` is refused.
    pub audience: Vec<String>,
    /// Allowed algorithms; `None`: what the keys allow.
    pub algorithms: Option<Vec<Algorithm>>,
    /// Accepted header `typ` values (e.g. `at+jwt`, RFC 9068 access tokens), compared
    /// case-insensitively with an optional `application/` prefix; `None`: `typ` is not checked.
    pub typ: Option<Vec<String>>,
    /// Claims required in addition to `pg_jwt.required_claims` (never instead of them).
    pub required_claims: Option<Vec<String>>,
    /// Seconds; `None`: `pg_jwt.leeway`.
    pub leeway: Option<i64>,
    /// `exp - iat` at most this many seconds (`iat` then required).
    pub max_lifetime: Option<i64>,
    /// Claim name → allowed constants, checked after the signature.
    pub claims: Vec<(String, Vec<Json>)>,
    /// The claim that names the signed-in user (PostgreSQL 18 sign-in); `None`: the setting's.
    pub identity_claim: Option<String>,
    /// The roles this provider's tokens may switch to (`jwt_set_role()`, a delegated sign-in);
    /// empty: none. `pg_jwt.allowed_roles` is the provider `default`'s alone: one provider's
    /// tokens never choose among roles listed for another's users.
    pub allowed_roles: Vec<String>,
    /// Where this provider's tokens name their role; `None`: `pg_jwt.role_claim`.
    pub role_claim: Option<String>,
}

/// A checked provider list.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub list: Vec<Provider>,
    exact: HashMap<String, usize>,
    templates: Vec<usize>,
}

/// The provider an `iss` chose: its index in the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen(pub usize);

/// A provider name's form: `[a-z0-9_-]{1,63}`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn valid_claim_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || b == b':')
}

/// An https URL as the key fetcher accepts it: ASCII without spaces or controls, under
/// [`MAX_TEXT`] bytes.
pub fn is_https_url(s: &str) -> bool {
    s.len() < MAX_TEXT
        && s.len() > "https://".len()
        && s.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        && s.bytes().all(|b| b.is_ascii_graphic())
}

fn parse_issuer(text: &str) -> Result<Issuer, String> {
    if text.is_empty() || text.len() >= MAX_TEXT {
        return Err(format!("issuer must be a non-empty string under {MAX_TEXT} bytes"));
    }
    if !text.contains(['{', '}']) {
        return Ok(Issuer::Exact(text.to_owned()));
    }
    let segments: Vec<String> = text.split('/').map(str::to_owned).collect();
    let mut at = None;
    for (i, s) in segments.iter().enumerate() {
        if !s.contains(['{', '}']) {
            continue;
        }
        let claim = s.strip_prefix('{').and_then(|r| r.strip_suffix('}'));
        match claim {
            Some(c) if valid_claim_name(c) && at.is_none() => at = Some((i, c.to_owned())),
            _ => {
                return Err(
                    "an issuer template has exactly one {claim} placeholder, a whole path segment (claim names: letters, digits, _ - . :)"
                        .into(),
                )
            }
        }
    }
    let Some((at, claim)) = at else {
        return Err("issuer template without a placeholder".into());
    };
    // scheme:, "", authority, then the path: the placeholder is never the scheme or the host.
    let scheme_ok = segments.first().is_some_and(|s| s.ends_with(':')) && segments.get(1).is_some_and(String::is_empty);
    if !scheme_ok || at < 3 {
        return Err("an issuer template must be a URL whose placeholder is a path segment after the host".into());
    }
    Ok(Issuer::Template {
        text: text.to_owned(),
        segments,
        at,
        claim,
    })
}

/// Whether some `iss` would match both templates.
fn templates_overlap(a: &Issuer, b: &Issuer) -> bool {
    let (
        Issuer::Template {
            segments: sa, at: aa, ..
        },
        Issuer::Template {
            segments: sb, at: ab, ..
        },
    ) = (a, b)
    else {
        return false;
    };
    sa.len() == sb.len()
        && sa.iter().zip(sb).enumerate().all(|(i, (x, y))| {
            let xa = i == *aa;
            let yb = i == *ab;
            match (xa, yb) {
                (true, true) => true,
                (true, false) => !y.is_empty(),
                (false, true) => !x.is_empty(),
                (false, false) => x == y,
            }
        })
}

/// Whether an exact issuer would also match a template (it is then chosen first; allowed).
fn template_value<'i>(template: &Issuer, iss: &'i str) -> Option<&'i str> {
    let Issuer::Template { segments, at, .. } = template else {
        return None;
    };
    let mut value = None;
    let mut n = 0;
    for (i, part) in iss.split('/').enumerate() {
        n += 1;
        let lit = segments.get(i)?;
        if i == *at {
            if part.is_empty() {
                return None;
            }
            value = Some(part);
        } else if part != lit {
            return None;
        }
    }
    (n == segments.len()).then_some(value).flatten()
}

fn string_list(value: &Json, member: &str) -> Result<Vec<String>, String> {
    let items: Vec<&Json> = match value {
        Json::String(_) => vec![value],
        Json::Array(items) if !items.is_empty() => items.iter().collect(),
        _ => return Err(format!("{member} must be a string or a non-empty array of strings")),
    };
    items
        .into_iter()
        .map(|i| match i.as_str() {
            Some(s) if !s.is_empty() && s.len() < MAX_TEXT => Ok(s.to_owned()),
            _ => Err(format!("{member} must hold non-empty strings under {MAX_TEXT} bytes")),
        })
        .collect()
}

fn integer(value: &Json, member: &str, min: i64, max: i64) -> Result<i64, String> {
    match value {
        Json::Number(n) => match n.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(format!("{member} must be an integer from {min} to {max}")),
        },
        _ => Err(format!("{member} must be an integer from {min} to {max}")),
    }
}

/// A constant a `claims` constraint may name: a string, a boolean, or an integer (compared
/// exactly; see `same`).
fn constant(value: &Json) -> bool {
    match value {
        Json::String(_) | Json::Bool(_) => true,
        Json::Number(n) => integer_value(n).is_some(),
        _ => false,
    }
}

fn parse_provider(value: &Json, check_keys: bool) -> Result<Provider, String> {
    let Some(members) = value.as_object() else {
        return Err("each provider must be a JSON object".into());
    };
    let name = match value.get("name") {
        Some(Json::String(n)) if valid_name(n) => n.to_string(),
        Some(_) => return Err("name must be 1 to 63 characters of a-z, 0-9, _ and -".into()),
        None => return Err("a provider has no name".into()),
    };
    if name == DEFAULT_NAME {
        return Err(format!(
            "the name \"{DEFAULT_NAME}\" is reserved for the provider of pg_jwt.jwks / pg_jwt.jwks_uri"
        ));
    }
    let at = |e: String| format!("provider \"{name}\": {e}");
    let mut p = Provider {
        name: name.clone(),
        issuer: Issuer::Exact(String::new()),
        jwks_uri: None,
        jwks: None,
        audience: Vec::new(),
        algorithms: None,
        typ: None,
        required_claims: None,
        leeway: None,
        max_lifetime: None,
        claims: Vec::new(),
        identity_claim: None,
        allowed_roles: Vec::new(),
        role_claim: None,
    };
    let mut issuer = None;
    for (member, v) in members {
        match member.as_str() {
            "name" => {}
            "issuer" => match v.as_str() {
                Some(s) => issuer = Some(parse_issuer(s).map_err(at)?),
                None => return Err(at("issuer must be a string".into())),
            },
            "jwks_uri" => match v.as_str() {
                Some(s) if s == "discover" || is_https_url(s) => p.jwks_uri = Some(s.to_owned()),
                _ => {
                    return Err(at(format!(
                        "jwks_uri must be an https:// URL (ASCII, under {MAX_TEXT} bytes) or \"discover\""
                    )))
                }
            },
            "jwks" => {
                if !matches!(v, Json::Object(_)) {
                    return Err(at("jwks must be a JSON Web Key Set object (or one JWK)".into()));
                }
                let text = v.to_json_string();
                if check_keys {
                    KeySet::parse(text.as_bytes()).map_err(|e| at(format!("jwks: {e}")))?;
                }
                p.jwks = Some(text);
            }
            "audience" => p.audience = string_list(v, "audience").map_err(at)?,
            "algorithms" => {
                let names = string_list(v, "algorithms").map_err(at)?;
                let mut algs = Vec::new();
                for n in &names {
                    match Algorithm::classify(n) {
                        AlgName::Supported(a) => algs.push(a),
                        _ => return Err(at("algorithms names an algorithm pg_jwt does not verify".into())),
                    }
                }
                p.algorithms = Some(algs);
            }
            "typ" => p.typ = Some(string_list(v, "typ").map_err(at)?),
            "required_claims" => match v {
                Json::Array(items) => {
                    let mut names = Vec::new();
                    for i in items {
                        match i.as_str() {
                            Some(s) if !s.is_empty() && s.len() < MAX_TEXT => names.push(s.to_owned()),
                            _ => return Err(at("required_claims must be an array of claim names".into())),
                        }
                    }
                    p.required_claims = Some(names);
                }
                _ => return Err(at("required_claims must be an array of claim names".into())),
            },
            "leeway" => p.leeway = Some(integer(v, "leeway", 0, crate::claims::MAX_LEEWAY).map_err(at)?),
            "max_lifetime" => p.max_lifetime = Some(integer(v, "max_lifetime", 1, MAX_LIFETIME).map_err(at)?),
            "claims" => {
                let Some(constraints) = v.as_object() else {
                    return Err(at("claims must be an object of claim name to allowed value(s)".into()));
                };
                for (claim, allowed) in constraints {
                    if claim.is_empty() || claim.len() >= MAX_TEXT {
                        return Err(at("claims: a claim name is empty or too long".into()));
                    }
                    let values = match allowed {
                        Json::Array(items) if !items.is_empty() && items.iter().all(constant) => items.clone(),
                        one if constant(one) => vec![one.clone()],
                        _ => {
                            return Err(at(format!(
                                "claims.{claim}: a string, integer or boolean, or a non-empty array of them"
                            )))
                        }
                    };
                    p.claims.push((claim.to_string(), values));
                }
            }
            "identity_claim" => match v.as_str() {
                Some(s) if !s.is_empty() && s.len() < MAX_TEXT => p.identity_claim = Some(s.to_owned()),
                _ => return Err(at("identity_claim must be a claim name or a JSON Pointer".into())),
            },
            "allowed_roles" => {
                let names = string_list(v, "allowed_roles").map_err(at)?;
                // A role name is at most NAMEDATALEN - 1 bytes; a longer one could never match.
                if names.iter().any(|n| n.len() > 63) {
                    return Err(at("allowed_roles: a role name is at most 63 bytes".into()));
                }
                p.allowed_roles = names;
            }
            "role_claim" => match v.as_str() {
                Some(s) if !s.is_empty() && s.len() < MAX_TEXT => p.role_claim = Some(s.to_owned()),
                _ => return Err(at("role_claim must be a claim name or a JSON Pointer".into())),
            },
            other => {
                // A misspelt member must not silently weaken a provider.
                let shown: String = other.chars().filter(|c| c.is_ascii_graphic()).take(40).collect();
                return Err(at(format!("unknown member \"{shown}\"")));
            }
        }
    }
    p.issuer = issuer.ok_or_else(|| at("issuer is required".into()))?;
    if p.jwks_uri.is_none() && p.jwks.is_none() {
        return Err(at("jwks_uri or jwks is required".into()));
    }
    if matches!(p.issuer, Issuer::Template { .. }) && p.jwks_uri.as_deref() == Some("discover") {
        return Err(at(
            "an issuer template needs an explicit jwks_uri or jwks (discover needs one issuer)".into(),
        ));
    }
    Ok(p)
}

impl Providers {
    /// Parses and checks `pg_jwt.providers` (a JSON array; empty text or `[]`: no provider),
    /// pinned key sets included. The error names the provider and the member, never a key.
    pub fn parse(text: &[u8]) -> Result<Providers, String> {
        Providers::parse_with(text, true)
    }

    /// [`Providers::parse`], with pinned key sets checked only when `check_keys`: a list
    /// already accepted by the check (the setting's check hook parses with keys) is read again
    /// by every backend, which imports a provider's keys when it first needs them (a failure
    /// there fails closed). Everything else is checked either way.
    pub fn parse_with(text: &[u8], check_keys: bool) -> Result<Providers, String> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(Providers::default());
        }
        // Before the parse, which every backend, the key fetcher and (at a reload) the
        // postmaster run: its memory grows with the text.
        if text.len() > MAX_LIST_BYTES {
            return Err(format!("pg_jwt.providers is larger than {MAX_LIST_BYTES} bytes"));
        }
        let json = Json::parse(text)
            .map_err(|_| "pg_jwt.providers is not valid JSON (or has a duplicate member)".to_owned())?;
        let Some(items) = json.as_array() else {
            return Err("pg_jwt.providers must be a JSON array of providers".into());
        };
        if items.len() > MAX_PROVIDERS {
            return Err(format!("at most {MAX_PROVIDERS} providers"));
        }
        let mut out = Providers::default();
        let mut names: HashMap<String, usize> = HashMap::new();
        for item in items {
            let p = parse_provider(item, check_keys)?;
            let i = out.list.len();
            if names.insert(p.name.clone(), i).is_some() {
                return Err(format!("two providers are named \"{}\"", p.name));
            }
            match &p.issuer {
                Issuer::Exact(iss) => {
                    if let Some(j) = out.exact.insert(iss.clone(), i) {
                        return Err(format!(
                            "providers \"{}\" and \"{}\" have the same issuer: a token's iss must choose one provider",
                            out.list.get(j).map_or("", |q| q.name.as_str()),
                            p.name
                        ));
                    }
                }
                template => {
                    for &j in &out.templates {
                        if let Some(q) = out.list.get(j) {
                            if templates_overlap(&q.issuer, template) {
                                return Err(format!(
                                    "the issuer templates of providers \"{}\" and \"{}\" overlap: a token's iss must choose one provider",
                                    q.name, p.name
                                ));
                            }
                        }
                    }
                    out.templates.push(i);
                }
            }
            out.list.push(p);
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, chosen: Chosen) -> Option<&Provider> {
        self.list.get(chosen.0)
    }

    pub fn by_name(&self, name: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.name == name)
    }

    /// The provider `iss` chooses: an exact issuer first, then a template; `None`: no listed
    /// provider.
    pub fn choose(&self, iss: &str) -> Option<Chosen> {
        if let Some(&i) = self.exact.get(iss) {
            return Some(Chosen(i));
        }
        self.templates
            .iter()
            .copied()
            .find(|&i| {
                self.list
                    .get(i)
                    .is_some_and(|p| template_value(&p.issuer, iss).is_some())
            })
            .map(Chosen)
    }

    /// Whether an exact issuer of the list is `iss` (the implicit provider's issuer must not
    /// be one).
    pub fn has_exact(&self, iss: &str) -> bool {
        self.exact.contains_key(iss)
    }
}

/// An integer written as JSON writes it (optional minus, digits, no fraction or exponent),
/// exactly: a claim constraint on numbers compares integers exactly, never through a float
/// (where 9007199254740993 would equal 9007199254740992).
fn integer_value(text: &str) -> Option<i128> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i128>().ok()
}

/// Two constants are equal: strings and booleans exactly, integers by value (a number with a
/// fraction or an exponent equals nothing: the list refuses such constants).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (integer_value(x), integer_value(y)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => a == b,
    }
}

impl Provider {
    /// What only a provider checks, after the signature and the registered claims: the
    /// template's claim, `max_lifetime`, and the `claims` constraints. It reads the claims as
    /// validation does (`ClaimSet`), so the members of a token from the shared cache's record
    /// are read in place; a constraint's claim alone is built as a tree value to compare.
    pub fn check(&self, claims: &Body) -> Result<(), TokenError> {
        let text = |name: &str| match claims.claim(name) {
            Some(Claim::String(s)) => Some(s),
            _ => None,
        };
        if let Issuer::Template { claim, .. } = &self.issuer {
            let iss = text("iss").unwrap_or_default();
            let wanted = template_value(&self.issuer, iss);
            let have = text(claim);
            if wanted.is_none() || wanted != have || have.is_some_and(|v| v.contains('/')) {
                return Err(TokenError::IssuerMismatch(
                    "the token's iss does not match its provider's issuer template and claim",
                ));
            }
        }
        if let Some(max) = self.max_lifetime {
            let number = |name: &'static str| match claims.claim(name) {
                Some(Claim::Number(n)) => n.parse::<f64>().map_err(|_| TokenError::InvalidClaimType(name)),
                Some(_) => Err(TokenError::InvalidClaimType(name)),
                None => Err(TokenError::MissingClaim(name.to_owned())),
            };
            let exp = number("exp")?;
            let iat = number("iat")?;
            if exp - iat > max as f64 {
                return Err(TokenError::Constraint(
                    "the token lives longer than its provider's max_lifetime",
                ));
            }
        }
        for (name, allowed) in &self.claims {
            match claims.value(name)? {
                None => return Err(TokenError::MissingClaim(name.clone())),
                Some(v) if allowed.iter().any(|a| same(a, &v)) => {}
                Some(_) => {
                    return Err(TokenError::Constraint(
                        "a claim does not have a value its provider's claims constraint allows",
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = r#"{"kty":"oct","kid":"k","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0"}"#;

    fn list(text: &str) -> Result<Providers, String> {
        Providers::parse(text.as_bytes())
    }

    fn claims(text: &str) -> Json {
        Json::parse(text.as_bytes()).unwrap_or(Json::Null)
    }

    /// `p.check` of the claims `text`, read as a tree and as members (a token from the shared
    /// cache's record): both must give the same answer.
    fn checked(p: &Provider, text: &str) -> Result<(), TokenError> {
        let tree = p.check(&Body::Tree(claims(text)));
        let members = match crate::json::Members::parse(text.as_bytes().to_vec()) {
            Ok(Ok(m)) => p.check(&Body::Members(m, std::cell::OnceCell::new())),
            _ => panic!("not members: {text}"),
        };
        assert_eq!(tree, members, "{text}");
        tree
    }

    #[test]
    fn empty_and_invalid() {
        assert!(list("").is_ok_and(|p| p.is_empty()));
        assert!(list("[]").is_ok_and(|p| p.is_empty()));
        assert!(list("{}").is_err());
        assert!(list("[1]").is_err());
        assert!(list(r#"[{"name":"a"}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"x"}]"#).is_err(), "no keys");
        assert!(list(r#"[{"name":"A","issuer":"x","jwks_uri":"https://k"}]"#).is_err());
        assert!(list(r#"[{"name":"default","issuer":"x","jwks_uri":"https://k"}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"x","jwks_uri":"http://k"}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"x","jwks_uri":"https://k","audiense":"y"}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"x","jwks_uri":"https://k","algorithms":["none"]}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"x","jwks_uri":"https://k","leeway":-1}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"x","jwks":{"keys":[{"kty":"oct"}]}}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"x","jwks_uri":"https://k","claims":{"t":{}}}]"#).is_err());
        let ok = list(&format!(
            r#"[{{"name":"a","issuer":"x","jwks":{KEY},"audience":["p","q"],"algorithms":["HS256"],"leeway":5,"max_lifetime":900,"required_claims":["exp","sub"],"claims":{{"t":"1","n":[1,2]}}}}]"#
        ));
        assert!(ok.is_ok(), "{ok:?}");
        // typ: a string or a non-empty array of non-empty strings.
        let typ = |v: &str| {
            list(&format!(
                r#"[{{"name":"a","issuer":"x","jwks_uri":"https://k","typ":{v}}}]"#
            ))
        };
        assert_eq!(typ(r#""at+jwt""#).unwrap().list[0].typ, Some(vec!["at+jwt".to_owned()]));
        assert_eq!(
            typ(r#"["at+jwt","application/at+jwt"]"#).unwrap().list[0]
                .typ
                .as_ref()
                .map(Vec::len),
            Some(2)
        );
        for bad in ["[]", r#""""#, "1", r#"[1]"#, r#"{"a":1}"#] {
            assert!(typ(bad).is_err(), "typ {bad}");
        }
        // allowed_roles and role_claim: the provider's own; absent, no role at all.
        let roles = |v: &str| list(&format!(r#"[{{"name":"a","issuer":"x","jwks_uri":"https://k"{v}}}]"#));
        let none = roles("").unwrap();
        assert!(none.list[0].allowed_roles.is_empty());
        assert_eq!(none.list[0].role_claim, None);
        let some = roles(r#","allowed_roles":["reader","editor"],"role_claim":"/app/role""#).unwrap();
        assert_eq!(
            some.list[0].allowed_roles,
            vec!["reader".to_owned(), "editor".to_owned()]
        );
        assert_eq!(some.list[0].role_claim.as_deref(), Some("/app/role"));
        assert_eq!(
            roles(r#","allowed_roles":"reader""#).unwrap().list[0]
                .allowed_roles
                .len(),
            1
        );
        let long = "r".repeat(64);
        for bad in [
            r#","allowed_roles":[]"#.to_owned(),
            r#","allowed_roles":[""]"#.to_owned(),
            r#","allowed_roles":[1]"#.to_owned(),
            format!(r#","allowed_roles":["{long}"]"#),
            r#","role_claim":"""#.to_owned(),
            r#","role_claim":1"#.to_owned(),
        ] {
            assert!(roles(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            list(r#"[{"name":"a","issuer":"x","jwks_uri":"https://k"}]"#)
                .unwrap()
                .list[0]
                .typ,
            None
        );
    }

    #[test]
    fn ambiguous_lists_are_refused() {
        let dup_name =
            r#"[{"name":"a","issuer":"x","jwks_uri":"https://k"},{"name":"a","issuer":"y","jwks_uri":"https://k"}]"#;
        assert!(list(dup_name).is_err());
        let dup_iss =
            r#"[{"name":"a","issuer":"x","jwks_uri":"https://k"},{"name":"b","issuer":"x","jwks_uri":"https://k"}]"#;
        assert!(list(dup_iss).is_err());
        let overlap = r#"[{"name":"a","issuer":"https://h/{tid}/v2.0","jwks_uri":"https://k"},{"name":"b","issuer":"https://h/common/{x}","jwks_uri":"https://k"}]"#;
        assert!(list(overlap).is_err());
        let apart = r#"[{"name":"a","issuer":"https://h/{tid}/v2.0","jwks_uri":"https://k"},{"name":"b","issuer":"https://h/{x}/v1.0","jwks_uri":"https://k"}]"#;
        assert!(list(apart).is_ok());
        assert!(list(r#"[{"name":"a","issuer":"https://{h}/x","jwks_uri":"https://k"}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"https://h/{a}{b}","jwks_uri":"https://k"}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"https://h/{a}/{b}","jwks_uri":"https://k"}]"#).is_err());
        assert!(list(r#"[{"name":"a","issuer":"https://h/{a}","jwks_uri":"discover"}]"#).is_err());
    }

    #[test]
    fn choice_by_iss() {
        let p = list(
            r#"[{"name":"entra","issuer":"https://login.example/{tid}/v2.0","jwks_uri":"https://k"},
                {"name":"fixed","issuer":"https://login.example/common/v2.0","jwks_uri":"https://k"},
                {"name":"acme","issuer":"https://acme","jwks_uri":"discover"}]"#,
        )
        .unwrap_or_default();
        assert_eq!(p.choose("https://acme"), Some(Chosen(2)));
        assert_eq!(
            p.choose("https://login.example/common/v2.0"),
            Some(Chosen(1)),
            "exact first"
        );
        assert_eq!(p.choose("https://login.example/t1/v2.0"), Some(Chosen(0)));
        assert_eq!(p.choose("https://login.example//v2.0"), None);
        assert_eq!(p.choose("https://login.example/a/b/v2.0"), None);
        assert_eq!(p.choose("https://login.example/t1/v2.0/"), None);
        assert_eq!(p.choose("https://acme/"), None);
        assert_eq!(p.choose("https://other"), None);
    }

    /// The provider rules read a token's members (from the shared cache's record) as they read
    /// its tree: templates, lifetimes and constraints of every JSON type, escaped strings, absent
    /// and mistyped claims.
    #[test]
    fn provider_checks_read_members_as_the_tree() {
        let providers = list(
            r#"[{"name":"t","issuer":"https://l/{tid}/v2.0","jwks_uri":"https://k","max_lifetime":900},
                {"name":"c","issuer":"x","jwks_uri":"https://k","claims":{"s":["a","\u00e9"],"n":[1,2],"b":[true]}}]"#,
        )
        .unwrap_or_default();
        assert_eq!(providers.list.len(), 2);
        let texts = [
            r#"{"iss":"https://l/t1/v2.0","tid":"t1","iat":1000,"exp":1900}"#,
            r#"{"iss":"https://l/t\u0031/v2.0","tid":"t1","iat":1000,"exp":1900}"#,
            r#"{"iss":"https://l/t1/v2.0","tid":"t\u0031","iat":1000,"exp":1901}"#,
            r#"{"iss":"https://l/a\/b/v2.0","tid":"a/b","iat":1000,"exp":1900}"#,
            r#"{"iss":"https://l/t1/v2.0","tid":1,"iat":1000,"exp":1900}"#,
            r#"{"iss":"https://l/t1/v2.0","tid":"t1","iat":"1000","exp":1900}"#,
            r#"{"iss":"https://l/t1/v2.0","tid":"t1","iat":1000,"exp":1.9e3}"#,
            r#"{"iss":"https://l/t1/v2.0","tid":"t1","exp":1900}"#,
            r#"{"tid":"t1","iat":1000,"exp":1900}"#,
            r#"{"s":"a","n":1,"b":true,"z":null,"o":{"k":[1,"v"]},"a":["x",1]}"#,
            r#"{"s":"\u00e9","n":2,"b":true}"#,
            r#"{"s":"é","n":2.0,"b":true}"#,
            r#"{"s":"é","n":20,"b":true}"#,
            r#"{"s":"a","n":1,"b":false}"#,
            r#"{"s":"a","n":1,"b":"true"}"#,
            r#"{"s":"a","n":"1","b":true}"#,
            r#"{"s":null,"n":1,"b":true}"#,
            r#"{"s":{"a":1},"n":1,"b":true}"#,
            r#"{"s":["a"],"n":1,"b":true}"#,
            r#"{"s":"a","n":1}"#,
            r#"{"s":"b","n":1,"b":true}"#,
            r#"{"iss":"https:\/\/l\/t1\/v2.0","tid":"t1","iat":1000,"exp":1900}"#,
            r#"{"s":"\ud83d\ude00","n":1,"b":true}"#,
            r#"{"m01":1,"m02":2,"m03":3,"m04":4,"m05":5,"m06":6,"m07":7,"m08":8,"m09":9,"m10":10,"m11":11,"m12":12,"m13":13,"m14":14,"m15":15,"m16":16,"m17":17,"m18":18,"m19":19,"m20":20,"m21":21,"m22":22,"m23":23,"m24":24,"m25":25,"s":"a","n":1,"b":true}"#,
        ];
        let mut outcomes = std::collections::HashSet::new();
        for p in &providers.list {
            for text in texts {
                outcomes.insert(format!("{:?}", checked(p, text)));
            }
        }
        // Accepted, and refused for each reason: the cases reach every branch.
        for kind in [
            "Ok(",
            "IssuerMismatch",
            "Constraint",
            "MissingClaim",
            "InvalidClaimType",
        ] {
            assert!(
                outcomes
                    .iter()
                    .any(|o| o.starts_with(kind) || o.starts_with(&format!("Err({kind}"))),
                "{kind}: {outcomes:?}"
            );
        }
    }

    #[test]
    fn provider_checks() {
        let p = list(
            r#"[{"name":"e","issuer":"https://l/{tid}/v2.0","jwks_uri":"https://k","max_lifetime":900,"claims":{"tid":["t1","t2"],"n":1}}]"#,
        )
        .unwrap_or_default();
        let Some(e) = p.list.first() else { panic!("no provider") };
        assert_eq!(
            checked(
                e,
                r#"{"iss":"https://l/t1/v2.0","tid":"t1","iat":1000,"exp":1900,"n":1}"#
            ),
            Ok(())
        );
        // Integers compare exactly, never as floats; 1.0 is not the integer 1.
        assert!(matches!(
            checked(
                e,
                r#"{"iss":"https://l/t1/v2.0","tid":"t1","iat":1000,"exp":1900,"n":1.0}"#
            ),
            Err(TokenError::Constraint(_))
        ));
        let big = list(r#"[{"name":"b","issuer":"x","jwks_uri":"https://k","claims":{"t":9007199254740993}}]"#)
            .unwrap_or_default();
        assert!(big
            .list
            .first()
            .is_some_and(|b| checked(b, r#"{"t":9007199254740992}"#).is_err()));
        assert!(big
            .list
            .first()
            .is_some_and(|b| checked(b, r#"{"t":9007199254740993}"#).is_ok()));
        assert!(list(r#"[{"name":"b","issuer":"x","jwks_uri":"https://k","claims":{"t":1.5}}]"#).is_err());
        assert!(matches!(
            checked(
                e,
                r#"{"iss":"https://l/t1/v2.0","tid":"t2","iat":1000,"exp":1900,"n":1}"#
            ),
            Err(TokenError::IssuerMismatch(_))
        ));
        assert!(matches!(
            checked(
                e,
                r#"{"iss":"https://l/t3/v2.0","tid":"t3","iat":1000,"exp":1900,"n":1}"#
            ),
            Err(TokenError::Constraint(_))
        ));
        assert!(matches!(
            checked(
                e,
                r#"{"iss":"https://l/t1/v2.0","tid":"t1","iat":1000,"exp":1901,"n":1}"#
            ),
            Err(TokenError::Constraint(_))
        ));
        assert!(matches!(
            checked(e, r#"{"iss":"https://l/t1/v2.0","tid":"t1","exp":1900,"n":1}"#),
            Err(TokenError::MissingClaim(_))
        ));
        assert!(matches!(
            checked(e, r#"{"iss":"https://l/t1/v2.0","tid":"t1","iat":1000,"exp":1900}"#),
            Err(TokenError::MissingClaim(_))
        ));
    }
}
