//! A strict JSON (RFC 8259) parser for token headers, claims and key sets.
//!
//! Stricter than general-purpose parsers on purpose (checklist B14, B16, E1–E6):
//! input must be valid UTF-8 without a BOM; duplicate member names are rejected at every
//! depth; `\u0000` and lone surrogates are rejected (PostgreSQL `text`/`jsonb` cannot hold
//! them, and they are a classic source of parser differentials); nesting depth is capped.
//! Numbers are kept as their exact source text, so large integers are never rounded.
//!
//! Why not serde_json: measured on the project's 2-core machine, serde_json with a visitor that
//! rejects duplicate members is about 1.5x slower than this parser on a typical header and
//! payload, which would push a full HS256 verification past its 3 µs target (BENCHMARKS.md),
//! and it still needs the `\u0000`/lone-surrogate/depth checks added around it. Keep this
//! parser; it is small, fuzzable and covered by the checklist tests.

use std::fmt::Write as _;

/// Strings of up to 24 bytes are stored inline (no allocation): most claim names and values.
pub type Str = compact_str::CompactString;

/// Maximum nesting depth of arrays and objects.
pub const MAX_DEPTH: usize = 32;

/// A parsed JSON value. Objects keep member order; numbers keep their source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number exactly as written in the input (validated against the JSON grammar).
    Number(Str),
    String(Str),
    Array(Vec<Json>),
    Object(Vec<(Str, Json)>),
}

/// Why a text is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// Not UTF-8 (includes lone surrogates encoded as bytes).
    InvalidUtf8,
    /// Not valid JSON syntax (includes a BOM, trailing data, control characters in strings).
    Syntax,
    /// The same member name twice in one object.
    DuplicateMember,
    /// A `\u0000` escape in a string.
    NulCharacter,
    /// A `\uD800`-style escape that is not part of a surrogate pair.
    LoneSurrogate,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl Json {
    /// Parses a complete JSON text.
    pub fn parse(input: &[u8]) -> Result<Json, JsonError> {
        let text = std::str::from_utf8(input).map_err(|_| JsonError::InvalidUtf8)?;
        let mut p = Parser {
            text,
            s: text.as_bytes(),
            pos: 0,
        };
        p.skip_ws();
        let v = p.value(0)?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(JsonError::Syntax);
        }
        Ok(v)
    }

    /// Member `name` of an object; `None` for a missing member or a non-object.
    pub fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(Str, Json)]> {
        match self {
            Json::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Compact JSON text of this value (numbers as received, strings minimally escaped).
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    pub fn write_json(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_json_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    /// The whole input, already validated as UTF-8; `s` is the same bytes.
    text: &'a str,
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, lit: &[u8]) -> Result<(), JsonError> {
        match self.s.get(self.pos..self.pos + lit.len()) {
            Some(found) if found == lit => {
                self.pos += lit.len();
                Ok(())
            }
            _ => Err(JsonError::Syntax),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.expect_literal(b"true").map(|_| Json::Bool(true)),
            Some(b'f') => self.expect_literal(b"false").map(|_| Json::Bool(false)),
            Some(b'n') => self.expect_literal(b"null").map(|_| Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(JsonError::Syntax),
        }
    }

    /// The elements of an object or array, after its opening byte, up to and including
    /// `close`: `element` parses one (leading whitespace already skipped); elements are
    /// separated by commas, with no trailing comma.
    fn sequence(
        &mut self,
        close: u8,
        mut element: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            element(self)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(JsonError::Syntax),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.pos += 1; // '{'
                       // Claim sets usually have 8 to 16 members: one allocation for most.
        let mut members: Vec<(Str, Json)> = Vec::with_capacity(16);
        self.sequence(b'}', |p| {
            if p.peek() != Some(b'"') {
                return Err(JsonError::Syntax);
            }
            let key = p.string()?;
            p.skip_ws();
            if p.peek() != Some(b':') {
                return Err(JsonError::Syntax);
            }
            p.pos += 1;
            p.skip_ws();
            let v = p.value(depth)?;
            members.push((key, v));
            Ok(())
        })?;
        if has_duplicate_names(&members) {
            return Err(JsonError::DuplicateMember);
        }
        Ok(Json::Object(members))
    }

    fn array(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.sequence(b']', |p| {
            items.push(p.value(depth)?);
            Ok(())
        })?;
        Ok(Json::Array(items))
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(JsonError::Syntax),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(JsonError::Syntax);
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(JsonError::Syntax);
            }
            self.digits();
        }
        let text = self.text.get(start..self.pos).ok_or(JsonError::Syntax)?;
        Ok(Json::Number(Str::from(text)))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self.s.get(self.pos..self.pos + 4).ok_or(JsonError::Syntax)?;
        let mut v = 0u32;
        for &c in h {
            let d = (c as char).to_digit(16).ok_or(JsonError::Syntax)?;
            v = (v << 4) | d;
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<Str, JsonError> {
        self.pos += 1; // opening quote
                       // The common case: no escapes. Copy the run up to the closing quote in one allocation.
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let end = plain_run(rest);
        if rest.get(end) == Some(&b'"') {
            // Runs end at ASCII bytes, so these are character boundaries of the valid input.
            let text = self.text.get(self.pos..self.pos + end).ok_or(JsonError::InvalidUtf8)?;
            self.pos += end + 1;
            return Ok(Str::from(text));
        }
        let mut out = Str::default();
        loop {
            // Copy a run of plain characters at once. The input is valid UTF-8 and the run
            // stops only at ASCII bytes, so the slice boundaries are character boundaries.
            let rest = self.s.get(self.pos..).unwrap_or_default();
            let run_len = plain_run(rest);
            if run_len > 0 {
                out.push_str(
                    self.text
                        .get(self.pos..self.pos + run_len)
                        .ok_or(JsonError::InvalidUtf8)?,
                );
                self.pos += run_len;
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or(JsonError::Syntax)?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(JsonError::Syntax),
                    }
                }
                // A raw control character or the end of the input inside a string.
                _ => return Err(JsonError::Syntax),
            }
        }
    }

    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = match first {
            0 => return Err(JsonError::NulCharacter),
            0xD800..=0xDBFF => {
                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(JsonError::LoneSurrogate);
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(JsonError::LoneSurrogate);
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(JsonError::LoneSurrogate),
            c => c,
        };
        char::from_u32(code).ok_or(JsonError::LoneSurrogate)
    }
}

/// The length of the run of plain string bytes at the start of `s`: up to the first `"`, `\`
/// or control character (below 0x20), or all of `s`. Eight bytes per step (the classic "has a
/// zero byte" bit trick, applied to the byte XOR `"`, XOR `\`, and minus 0x20): a string's
/// bytes are most of a claim set's, and the byte-at-a-time scan was a fifth of parsing it.
/// Exact: a flag can be set spuriously only in a byte above one truly flagged (by the borrow of
/// the subtraction), so the lowest flag is always the first byte that ends the run.
fn plain_run(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    for chunk in s.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let flags = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGHS;
        if flags != 0 {
            return at + (flags.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let tail = s.get(at..).unwrap_or_default();
    at + tail
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(tail.len())
}

fn has_duplicate_names(members: &[(Str, Json)]) -> bool {
    if members.len() < 2 {
        return false;
    }
    if members.len() <= 24 {
        // Small objects (every real header and claim set): pairwise, without allocating; the
        // names as byte slices first (a slice compares its length before its bytes, where a
        // `CompactString` decodes its representation at every comparison).
        let mut names: [&[u8]; 24] = [&[]; 24];
        for (slot, (k, _)) in names.iter_mut().zip(members) {
            *slot = k.as_bytes();
        }
        let names = names.get(..members.len()).unwrap_or_default();
        return names
            .iter()
            .enumerate()
            .any(|(i, a)| names.iter().skip(i + 1).any(|b| a == b));
    }
    let mut names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    names.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Json, JsonError> {
        Json::parse(s.as_bytes())
    }

    #[test]
    fn parses_and_reserializes() {
        let text = r#"{"a":[1,-2.5e10,true,false,null],"b":{"c":"d\"\\\n\u00e9"},"e":12345678901234567890123}"#;
        let v = p(text).unwrap();
        assert_eq!(v.get("e"), Some(&Json::Number("12345678901234567890123".into())));
        assert_eq!(p(&v.to_json_string()).unwrap(), v);
    }

    #[test]
    fn whitespace_between_tokens_is_accepted() {
        // Checklist A13: whitespace inside the header JSON is fine.
        assert!(p(" {\n\t\"alg\" : \"HS256\" \r\n} ").is_ok());
    }

    #[test]
    fn e3_duplicate_names_rejected_at_any_depth() {
        assert_eq!(p(r#"{"a":1,"a":2}"#), Err(JsonError::DuplicateMember));
        assert_eq!(
            p(r#"{"x":{"a":1,"b":{"c":[{"d":1,"d":1}]}}}"#),
            Err(JsonError::DuplicateMember)
        );
        // An escaped spelling of the same name is the same name.
        assert_eq!(p(r#"{"alg":1,"\u0061lg":2}"#), Err(JsonError::DuplicateMember));
    }

    #[test]
    fn e4_nul_rejected() {
        assert_eq!(p(r#"{"a":"x\u0000y"}"#), Err(JsonError::NulCharacter));
        assert_eq!(p("{\"a\":\"x\0y\"}"), Err(JsonError::Syntax));
    }

    #[test]
    fn e2_lone_surrogates_bom_and_bad_utf8_rejected() {
        assert_eq!(p(r#"{"a":"\ud800"}"#), Err(JsonError::LoneSurrogate));
        assert_eq!(p(r#"{"a":"\udc00"}"#), Err(JsonError::LoneSurrogate));
        assert_eq!(p(r#"{"a":"\ud800\u0041"}"#), Err(JsonError::LoneSurrogate));
        assert_eq!(
            p(r#"{"a":"\ud83d\ude00"}"#).unwrap().get("a").unwrap().as_str(),
            Some("\u{1F600}")
        );
        assert_eq!(p("\u{feff}{}"), Err(JsonError::Syntax));
        assert_eq!(Json::parse(b"{\"a\":\"\xff\"}"), Err(JsonError::InvalidUtf8));
        assert_eq!(Json::parse(b"{\"a\":\"\xed\xa0\x80\"}"), Err(JsonError::InvalidUtf8));
    }

    #[test]
    fn e6_depth_capped() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(p(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(p(&deep), Err(JsonError::TooDeep));
        let very_deep = "{\"a\":".repeat(100_000);
        assert_eq!(p(&very_deep), Err(JsonError::TooDeep));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            " ",
            "{",
            "}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "NaN",
            "Infinity",
            "tru",
            "nul",
            "\"abc",
            "'a'",
            "{a:1}",
            "[1] [2]",
            "\"\t\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\uZZZZ\"",
        ] {
            assert!(p(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn plain_run_matches_the_byte_scan() {
        let naive = |s: &[u8]| {
            s.iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(s.len())
        };
        // Bytes at and around every boundary of the three conditions, and above 0x7f.
        let alphabet = [
            0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x61, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..40 {
            for _ in 0..400 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly plain bytes, so runs are long enough to cross words.
                        if seed % 5 == 0 {
                            alphabet[(seed >> 8) as usize % alphabet.len()]
                        } else {
                            b'a' + (seed >> 16) as u8 % 26
                        }
                    })
                    .collect();
                assert_eq!(plain_run(&s), naive(&s), "{s:?}");
            }
        }
    }

    #[test]
    fn string_escaping_round_trip() {
        let s = "a\"b\\c\u{1}\u{1f}\n\t/é";
        let mut out = String::new();
        write_json_string(s, &mut out);
        assert_eq!(p(&out).unwrap(), Json::String(s.into()));
    }
}
