//! The base64url decoder against two references: the project's first hand-written strict
//! decoder (kept here) and the `base64` crate's engine configured as strictly (which decoded
//! tokens before): the same accept/reject decision and output on every string of up to 4
//! characters over an alphabet that includes padding, the standard alphabet's `+` and `/`,
//! whitespace and a non-ASCII byte, and on random longer strings.

use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::{alphabet, Engine as _};
use pg_jwt_core::b64;

/// The crate's URL-safe engine, strict: padding refused, non-zero trailing bits refused.
const CRATE_STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Both references agree with the decoder on `s`.
fn agree(s: &[u8]) {
    let ours = b64::decode(s).ok();
    assert_eq!(ours, reference_decode(s).ok(), "{s:?}");
    assert_eq!(ours, CRATE_STRICT.decode(s).ok(), "{s:?}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum B64Error {
    InvalidCharacter,
    InvalidLength,
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
fn reference_decode(input: &[u8]) -> Result<Vec<u8>, B64Error> {
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

const SYMBOLS: &[u8] = b"AQZgaz09-_+/= \n\xc3.";

#[test]
fn same_decisions_as_the_reference_on_every_short_string() {
    let n = SYMBOLS.len();
    let mut checked = 0;
    for len in 0..=4u32 {
        for mut i in 0..n.pow(len) {
            let mut s = Vec::with_capacity(len as usize);
            for _ in 0..len {
                s.push(SYMBOLS[i % n]);
                i /= n;
            }
            agree(&s);
            checked += 1;
        }
    }
    assert!(checked > 70_000);
}

#[test]
fn same_decisions_on_random_longer_strings() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let mut s = Vec::with_capacity(len);
        let mut y = x;
        for _ in 0..len {
            y = y.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Mostly valid symbols, sometimes anything.
            let pick = (y >> 33) as usize;
            s.push(if pick % 16 == 0 {
                SYMBOLS[pick % SYMBOLS.len()]
            } else {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[pick % 64]
            });
        }
        agree(&s);
    }
}
