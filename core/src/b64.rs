//! Strict base64url (RFC 4648 §5) without padding, as JWS compact serialization requires
//! (RFC 7515 §2, appendix C).
//!
//! Rejected: `=` padding, the standard alphabet's `+` and `/`, whitespace, any other byte,
//! a length of 1 (mod 4), and non-zero trailing bits (so every byte string has exactly one
//! accepted encoding, checklist A6–A11, C11).

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

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const INVALID: u8 = 0xFF;

const fn decode_table() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
}

static DECODE: [u8; 256] = decode_table();

/// Decodes strict, unpadded base64url.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, B64Error> {
    if input.len() % 4 == 1 {
        return Err(B64Error::InvalidLength);
    }
    let whole = input.len() / 4;
    let mut out = vec![0u8; whole * 3];
    let mut chunks = input.chunks_exact(4);
    for (chunk, dst) in chunks.by_ref().zip(out.chunks_exact_mut(3)) {
        let mut acc: u32 = 0;
        let mut bad = 0u8;
        for &c in chunk {
            let v = DECODE[c as usize];
            bad |= v;
            acc = (acc << 6) | u32::from(v & 0x3F);
        }
        if bad == INVALID || bad & 0xC0 != 0 {
            return Err(B64Error::InvalidCharacter);
        }
        dst.copy_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
    }
    decode_tail(chunks.remainder(), &mut out)?;
    Ok(out)
}

/// The last 0, 2 or 3 characters.
fn decode_tail(rest: &[u8], out: &mut Vec<u8>) -> Result<(), B64Error> {
    let mut acc: u32 = 0;
    for &c in rest {
        acc = (acc << 6) | u32::from(sextet(c)?);
    }
    match rest.len() {
        0 => {}
        2 => {
            // 12 bits: one byte and 4 trailing bits that must be zero.
            if acc & 0x0F != 0 {
                return Err(B64Error::NonCanonical);
            }
            out.push((acc >> 4) as u8);
        }
        3 => {
            // 18 bits: two bytes and 2 trailing bits that must be zero.
            if acc & 0x03 != 0 {
                return Err(B64Error::NonCanonical);
            }
            out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]);
        }
        _ => return Err(B64Error::InvalidLength),
    }
    Ok(())
}

fn sextet(c: u8) -> Result<u8, B64Error> {
    match DECODE[c as usize] {
        INVALID => Err(B64Error::InvalidCharacter),
        v => Ok(v),
    }
}

/// Encodes as unpadded base64url.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for chunk in chunks.by_ref() {
        let acc = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[((acc >> shift) & 0x3F) as usize] as char);
        }
    }
    match *chunks.remainder() {
        [a] => {
            let acc = u32::from(a) << 16;
            out.push(ALPHABET[((acc >> 18) & 0x3F) as usize] as char);
            out.push(ALPHABET[((acc >> 12) & 0x3F) as usize] as char);
        }
        [a, b] => {
            let acc = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.push(ALPHABET[((acc >> 18) & 0x3F) as usize] as char);
            out.push(ALPHABET[((acc >> 12) & 0x3F) as usize] as char);
            out.push(ALPHABET[((acc >> 6) & 0x3F) as usize] as char);
        }
        _ => {}
    }
    out
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
