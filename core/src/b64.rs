//! Strict base64url (RFC 4648 §5) without padding, as JWS compact serialization requires
//! (RFC 7515 §2, appendix C).
//!
//! Rejected: `=` padding, the standard alphabet's `+` and `/`, whitespace, any other byte,
//! a length of 1 (mod 4), and non-zero trailing bits (so every byte string has exactly one
//! accepted encoding, checklist A6–A11, C11).
//!
//! Decoding is written here, four characters to three bytes through tables of pre-shifted
//! sextets (one lookup and one OR per character; an invalid character sets a sentinel bit that
//! is tested once at the end), into one allocation. It replaced the `base64` crate's engine,
//! which reads the payload of a token from the shared cache's record in every next backend:
//! over the 403-character payload of a typical token, 103 ns against the crate's 140 ns
//! (median of 21 runs over 5,000 payloads, this machine). `tests/b64_differential.rs` holds it
//! to the crate's strict engine and to the project's first hand-written decoder on every string
//! of up to 4 characters over an alphabet with padding, `+`, `/`, whitespace and non-ASCII, and
//! on random longer strings. Encoding (keys, tests) stays with the crate.

use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::GeneralPurposeConfig;
use base64::{alphabet, Engine as _};

/// Why a segment is not strict base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B64Error {
    /// A byte outside `A-Z a-z 0-9 - _` (this includes `=`, `+`, `/`, whitespace, non-ASCII).
    InvalidCharacter,
    /// The length is 1 (mod 4): no byte string encodes to that.
    InvalidLength,
    /// The last character carries bits that are not zero (a non-canonical encoding).
    NonCanonical,
}

/// The `base64` crate's URL-safe engine for encoding: no padding written.
const URL_SAFE_NO_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false),
);

/// The sentinel of an invalid character: above the 24 bits a quad decodes to.
const BAD: u32 = 0xFF00_0000;

/// A character's sextet (`BAD` for a byte outside the URL-safe alphabet).
const fn sextet(c: u8) -> u32 {
    match c {
        b'A'..=b'Z' => (c - b'A') as u32,
        b'a'..=b'z' => (c - b'a') as u32 + 26,
        b'0'..=b'9' => (c - b'0') as u32 + 52,
        b'-' => 62,
        b'_' => 63,
        _ => BAD,
    }
}

/// Every byte's sextet shifted to its place in a quad's 24 bits (`BAD` stays `BAD`).
const fn shifted(shift: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let v = sextet(i as u8);
        t[i] = if v == BAD { BAD } else { v << shift };
        i += 1;
    }
    t
}

static FIRST: [u32; 256] = shifted(18);
static SECOND: [u32; 256] = shifted(12);
static THIRD: [u32; 256] = shifted(6);
static FOURTH: [u32; 256] = shifted(0);

/// Decodes strict, unpadded base64url.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, B64Error> {
    let whole = input.len() / 4;
    let tail_len = match input.len() % 4 {
        1 => return Err(B64Error::InvalidLength),
        0 => 0,
        r => r - 1,
    };
    let mut out = vec![0u8; whole * 3 + tail_len];
    let (quads, tail) = input.split_at(whole * 4);
    let (out_quads, out_tail) = out.split_at_mut(whole * 3);
    // Indexing a 256-entry table by a byte cannot go out of bounds.
    let mut seen = 0u32;
    for (q, o) in quads.chunks_exact(4).zip(out_quads.chunks_exact_mut(3)) {
        if let (&[a, b, c, d], [o0, o1, o2]) = (q, o) {
            let w = FIRST[usize::from(a)] | SECOND[usize::from(b)] | THIRD[usize::from(c)] | FOURTH[usize::from(d)];
            seen |= w;
            *o0 = (w >> 16) as u8;
            *o1 = (w >> 8) as u8;
            *o2 = w as u8;
        }
    }
    // Two characters carry one byte (and 4 bits that must be zero), three carry two (and 2).
    let (w, spare) = match (tail, &mut *out_tail) {
        (&[], _) => (0, 0),
        (&[a, b], [o0]) => {
            let w = FIRST[usize::from(a)] | SECOND[usize::from(b)];
            *o0 = (w >> 16) as u8;
            (w, 0xFFFF)
        }
        (&[a, b, c], [o0, o1]) => {
            let w = FIRST[usize::from(a)] | SECOND[usize::from(b)] | THIRD[usize::from(c)];
            *o0 = (w >> 16) as u8;
            *o1 = (w >> 8) as u8;
            (w, 0xFF)
        }
        _ => return Err(B64Error::InvalidLength),
    };
    if (seen | w) & BAD != 0 {
        return Err(B64Error::InvalidCharacter);
    }
    if w & spare != 0 {
        return Err(B64Error::NonCanonical);
    }
    Ok(out)
}

/// Encodes as unpadded base64url.
pub fn encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let enc = encode(&data[..len]);
            assert!(!enc.contains('='));
            assert_eq!(decode(enc.as_bytes()).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"fo"), "Zm8");
        assert_eq!(encode(b"f"), "Zg");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode(b"-_8").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn a6_padding_rejected() {
        assert_eq!(decode(b"Zg=="), Err(B64Error::InvalidCharacter));
        assert_eq!(decode(b"Zm8="), Err(B64Error::InvalidCharacter));
    }

    #[test]
    fn a7_standard_alphabet_rejected() {
        assert_eq!(decode(b"-_8+"), Err(B64Error::InvalidCharacter));
        assert_eq!(decode(b"ab/c"), Err(B64Error::InvalidCharacter));
    }

    #[test]
    fn a8_whitespace_rejected() {
        for s in [
            &b" Zm9v"[..],
            b"Zm9v ",
            b"Zm\n9v",
            b"Zm\t9v",
            b"Zm9v\r",
            b" Zm9",
            b"Zm 9",
        ] {
            assert!(decode(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn a9_other_characters_rejected() {
        for s in [
            &b"Zm9?"[..],
            b"Zm9#",
            b"Zm9!",
            b"Zm9%",
            "Zm9\u{e9}".as_bytes(),
            b"Zm9\0",
        ] {
            assert!(decode(s).is_err());
        }
    }

    #[test]
    fn a10_non_canonical_trailing_bits_rejected() {
        // "Zg" is canonical for "f"; "Zh" carries a non-zero trailing bit.
        assert_eq!(decode(b"Zh"), Err(B64Error::NonCanonical));
        assert_eq!(decode(b"Zm8"), Ok(b"fo".to_vec()));
        assert_eq!(decode(b"Zm9"), Err(B64Error::NonCanonical));
    }

    #[test]
    fn a11_length_one_mod_four_rejected() {
        assert_eq!(decode(b"Z"), Err(B64Error::InvalidLength));
        assert_eq!(decode(b"Zm9vZ"), Err(B64Error::InvalidLength));
    }
}
