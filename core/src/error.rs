//! Error types of the verification core.
//!
//! Messages name what is wrong and never include bytes of the token, its claims or any key:
//! they are shown to database clients and written to server logs.

use thiserror::Error;

/// Why a token was rejected. The `Display` text is the fixed reason (the SQL layer prefixes
/// `pg_jwt: `); [`TokenError::detail`] adds what is useful to locate the problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed(&'static str),
    #[error("unsupported token feature")]
    Unsupported(&'static str),
    #[error("token too large")]
    TooLarge(&'static str),
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed(&'static str),
    #[error("no matching key")]
    NoMatchingKey(&'static str),
    #[error("invalid signature")]
    InvalidSignature,
    #[error("token expired")]
    Expired { exp: i64 },
    #[error("token not yet valid")]
    NotYetValid { claim: &'static str, at: i64 },
    #[error("audience mismatch")]
    AudienceMismatch(&'static str),
    #[error("issuer mismatch")]
    IssuerMismatch(&'static str),
    /// The claim name comes from the validation settings, never from the token.
    #[error("missing required claim")]
    MissingClaim(String),
    /// The claim name is one the verifier checks (`exp`, `aud`, ...), never one from the token.
    #[error("invalid claim type")]
    InvalidClaimType(&'static str),
    /// A constraint of the token's provider (`max_lifetime`, `claims`) is not met.
    #[error("claim constraint not met")]
    Constraint(&'static str),
    /// No provider is configured for the token's `iss`: the issuer, made printable ASCII and
    /// cut short ([`printable`]), for the DETAIL (an issuer names a provider, not a person).
    #[error("issuer mismatch")]
    UnknownIssuer(String),
}

/// A text from a token made safe for a log line or an error's DETAIL: printable ASCII, other
/// characters and quotes as `\u{..}`, at most 200 characters.
pub fn printable(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i >= 200 {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

impl TokenError {
    /// A short explanation without token, claim or key bytes.
    pub fn detail(&self) -> String {
        match self {
            TokenError::Malformed(d)
            | TokenError::Unsupported(d)
            | TokenError::TooLarge(d)
            | TokenError::AlgorithmNotAllowed(d)
            | TokenError::NoMatchingKey(d)
            | TokenError::AudienceMismatch(d)
            | TokenError::IssuerMismatch(d)
            | TokenError::Constraint(d) => (*d).to_owned(),
            TokenError::UnknownIssuer(iss) => format!("no provider is configured for issuer \"{iss}\""),
            TokenError::InvalidSignature => "the signature does not match the token and key".to_owned(),
            TokenError::Expired { exp } => format!("the token expired at {} (exp = {exp})", unix_to_utc(*exp)),
            TokenError::NotYetValid { claim, at } => {
                format!(
                    "claim {claim} is {} (unix {at}), later than now plus leeway",
                    unix_to_utc(*at)
                )
            }
            TokenError::MissingClaim(name) => format!("claim \"{name}\" is required but absent"),
            TokenError::InvalidClaimType(name) => format!("claim \"{name}\" has the wrong JSON type or range"),
        }
    }
}

/// Why a key set, a key or another argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// A problem with the set as a whole.
    #[error("invalid key set: {0}")]
    Set(String),
    /// A problem with one key: its position in the set (from 0) and what is wrong.
    #[error("invalid key set: key {index}: {reason}")]
    Key { index: usize, reason: String },
    /// A problem with a single JWK argument (signing, key generation).
    #[error("invalid JWK: {0}")]
    Jwk(String),
    /// An argument outside what the function accepts.
    #[error("{0}")]
    Argument(String),
}

/// Formats a Unix time as an ISO 8601 UTC timestamp (proleptic Gregorian calendar).
pub fn unix_to_utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(unix_to_utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(unix_to_utc(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(unix_to_utc(253_402_300_799), "9999-12-31 23:59:59Z");
        assert_eq!(unix_to_utc(951_782_400), "2000-02-29 00:00:00Z");
    }
}
