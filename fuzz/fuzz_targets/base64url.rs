//! Strict base64url: decode(encode(x)) == x for any bytes, and anything decode accepts is the
//! canonical encoding of what it decodes to (no padding, no other alphabet, canonical trailing
//! bits).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pg_jwt_core::b64;

fuzz_target!(|data: &[u8]| {
    let encoded = b64::encode(data);
    assert_eq!(b64::decode(encoded.as_bytes()).expect("own encoding decodes"), data);
    if let Ok(decoded) = b64::decode(data) {
        assert_eq!(b64::encode(&decoded).as_bytes(), data, "accepted a non-canonical encoding");
    }
});
