//! The JWS algorithms pg_jwt verifies and signs (RFC 7518 §3, RFC 8037).

/// A supported JWS algorithm. ES512 and everything else are unsupported; `none` never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// What a name in an `alg` member means to pg_jwt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgName {
    Supported(Algorithm),
    /// A registered JWS algorithm pg_jwt does not implement (ES512 needs P-521, ES256K).
    Unsupported,
    /// `none` in any spelling: never acceptable.
    None,
    /// Not a JWS signature algorithm at all (encryption algorithms, typos).
    Unknown,
}

impl Algorithm {
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm's place in [`Algorithm::ALL`] (a compact code for caches).
    pub fn index(self) -> usize {
        // Exhaustive: a new variant must be given its place here and in `ALL`.
        match self {
            Algorithm::HS256 => 0,
            Algorithm::HS384 => 1,
            Algorithm::HS512 => 2,
            Algorithm::RS256 => 3,
            Algorithm::RS384 => 4,
            Algorithm::RS512 => 5,
            Algorithm::PS256 => 6,
            Algorithm::PS384 => 7,
            Algorithm::PS512 => 8,
            Algorithm::ES256 => 9,
            Algorithm::ES384 => 10,
            Algorithm::EdDSA => 11,
        }
    }

    /// The algorithm at `i` in [`Algorithm::ALL`]; `None` out of range.
    pub fn from_index(i: usize) -> Option<Algorithm> {
        Algorithm::ALL.get(i).copied()
    }

    /// Classifies an `alg` value. Matching is exact (JOSE names are case-sensitive), except
    /// that every spelling of `none` is recognised as `none`.
    pub fn classify(name: &str) -> AlgName {
        if let Some(a) = Algorithm::ALL.iter().find(|a| a.name() == name) {
            return AlgName::Supported(*a);
        }
        if name.eq_ignore_ascii_case("none") {
            return AlgName::None;
        }
        match name {
            "ES512" | "ES256K" | "Ed25519" | "Ed448" => AlgName::Unsupported,
            _ => AlgName::Unknown,
        }
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }

    /// The minimum HMAC key length in bytes (RFC 7518 §3.2: at least the hash output).
    pub fn hmac_min_key_len(self) -> usize {
        match self {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_is_the_place_in_all() {
        for (i, a) in super::Algorithm::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
            assert_eq!(super::Algorithm::from_index(i), Some(*a));
        }
    }

    use super::*;

    #[test]
    fn b1_none_in_every_case_is_none() {
        for n in ["none", "None", "NONE", "nOnE"] {
            assert_eq!(Algorithm::classify(n), AlgName::None);
        }
    }

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::classify(a.name()), AlgName::Supported(a));
        }
        assert_eq!(Algorithm::classify("hs256"), AlgName::Unknown);
        assert_eq!(Algorithm::classify("ES512"), AlgName::Unsupported);
        assert_eq!(Algorithm::classify("RSA-OAEP"), AlgName::Unknown);
    }

    #[test]
    fn indexes_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_index(a.index()), Some(a));
        }
        assert_eq!(Algorithm::from_index(Algorithm::ALL.len()), None);
    }
}
