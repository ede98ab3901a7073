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

/// Whether PostgreSQL's `numeric` can hold the JSON number `n` (valid JSON number syntax), as
/// `numeric_in` reads it: a display scale (digits after the point, after the exponent) of at
/// most 16,383, the first significant digit at most 131,071 places before the point (a weight of
/// 32,767 base-10,000 digits), and an exponent under 2^30 in size. `jwt_claims()` and
/// `jwt_verify()` build their jsonb with `numeric_in`, which raises an error for a number past
/// these; a signed claim may hold one (JSON sets no range), and this says so before the build.
pub fn fits_pg_numeric(n: &str) -> bool {
    const DSCALE_MAX: i64 = 0x3FFF;
    const DECIMAL_PLACES_MAX: i64 = 4 * 32_767 + 3;
    // PostgreSQL 15's limit (16 and later also accept exactly 2^30 - 1, which only a zero can
    // carry and stay in range: refused here, a value no one writes).
    const EXPONENT_LIMIT: i64 = (i32::MAX / 2) as i64;
    let body = n.strip_prefix('-').unwrap_or(n);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => {
            let (m, e) = body.split_at(at);
            let e = e.get(1..).unwrap_or("");
            let e = e.strip_prefix('+').unwrap_or(e);
            // More digits than an i64 holds is past the limit either way (strtol saturates).
            let magnitude = e.trim_start_matches('-').trim_start_matches('0');
            if magnitude.len() > 12 {
                return false;
            }
            match e.parse::<i64>() {
                Ok(x) if x.abs() < EXPONENT_LIMIT => (m, x),
                _ => return false,
            }
        }
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let frac_digits = i64::try_from(frac.len()).unwrap_or(i64::MAX);
    if frac_digits.saturating_sub(exponent) > DSCALE_MAX {
        return false;
    }
    // The decimal place of the first significant digit (0: units); a zero fits whatever it is.
    let int_digits = i64::try_from(int.len()).unwrap_or(i64::MAX);
    let first = match mantissa.bytes().filter(|b| *b != b'.').position(|b| b != b'0') {
        None => return true,
        Some(i) => i64::try_from(i).unwrap_or(i64::MAX),
    };
    int_digits
        .saturating_sub(1)
        .saturating_sub(first)
        .saturating_add(exponent)
        <= DECIMAL_PLACES_MAX
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

    /// The `:` between a member's name and its value, with the whitespace around it.
    fn colon(&mut self) -> Result<(), JsonError> {
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(JsonError::Syntax);
        }
        self.pos += 1;
        self.skip_ws();
        Ok(())
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
                       // A claim set (the top-level object) usually has 8 to 16 members: one allocation for
                       // most. Nested objects grow as needed: room for 16 in each would make `[{},{},...]`
                       // cost about 900 bytes per 3 bytes of input.
        let mut members: Vec<(Str, Json)> = if depth == 1 { Vec::with_capacity(16) } else { Vec::new() };
        self.sequence(b'}', |p| {
            if p.peek() != Some(b'"') {
                return Err(JsonError::Syntax);
            }
            let key = p.string()?;
            p.colon()?;
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
        self.number_end()?;
        let text = self.text.get(start..self.pos).ok_or(JsonError::Syntax)?;
        Ok(Json::Number(Str::from(text)))
    }

    /// Checks a number against the JSON grammar and moves past it.
    fn number_end(&mut self) -> Result<(), JsonError> {
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
        Ok(())
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

    /// Checks a string as `string` does and moves past it, without building it: the byte
    /// range of its contents (between the quotes) and whether it has escapes.
    #[inline(always)]
    fn string_span(&mut self) -> Result<(usize, usize, bool), JsonError> {
        let start = self.pos + 1;
        let rest = self.s.get(start..).unwrap_or_default();
        let end = plain_run(rest);
        if rest.get(end) == Some(&b'"') {
            self.pos = start + end + 1;
            return Ok((start, start + end, false));
        }
        // Escapes (rare in claims): checked by the decoder, the value dropped.
        self.string()?;
        Ok((start, self.pos.saturating_sub(1), true))
    }

    /// The members of the top-level object, checked byte for byte as `Json::parse` checks
    /// them, without building their values (nested arrays and objects are parsed, checked and
    /// dropped). `Ok(None)`: not an object, or a member name has escapes (the caller parses it
    /// with `Json::parse`, whose answer is then the answer).
    fn top_members(&mut self) -> Result<Option<(Vec<Span>, Vec<(usize, Str)>)>, JsonError> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            return Ok(None);
        }
        self.pos += 1;
        let mut spans: Vec<Span> = Vec::with_capacity(16);
        let mut decoded: Vec<(usize, Str)> = Vec::new();
        let mut escaped_name = false;
        self.sequence(b'}', |p| {
            if p.peek() != Some(b'"') {
                return Err(JsonError::Syntax);
            }
            let (name_start, name_end, escaped) = p.string_span()?;
            escaped_name |= escaped;
            p.colon()?;
            let start = p.pos;
            let kind = match p.peek() {
                Some(b'"') => {
                    if p.string_span()?.2 {
                        // Decoded again from its start (checked already): kept beside the spans.
                        let end = p.pos;
                        p.pos = start;
                        decoded.push((spans.len(), p.string()?));
                        p.pos = end;
                    }
                    Kind::String
                }
                Some(b'-' | b'0'..=b'9') => {
                    p.number_end()?;
                    Kind::Number
                }
                // The object is depth 1, as in `Json::parse`: its values are parsed at depth 1.
                _ => p.skip_value(1)?,
            };
            spans.push(Span {
                name: (name_start, name_end),
                key: name_key_at(p.s, name_start, name_end),
                value: (start, p.pos),
                kind,
            });
            Ok(())
        })?;
        // In `Json::parse`'s order: the object's duplicate names, then what follows it.
        if escaped_name {
            return Ok(None);
        }
        // Names without escapes are equal exactly when their bytes are.
        let names = spans.iter().map(|m| self.s.get(m.name.0..m.name.1).unwrap_or_default());
        if has_duplicate_slices(names, spans.len()) {
            return Err(JsonError::DuplicateMember);
        }
        self.skip_ws();
        if self.pos != self.s.len() {
            return Err(JsonError::Syntax);
        }
        Ok(Some((spans, decoded)))
    }

    /// Checks a value as `value` does (the same checks in the same order, so the same first
    /// error) and moves past it without building it: what kind of value it was.
    fn skip_value(&mut self, depth: usize) -> Result<Kind, JsonError> {
        match self.peek() {
            Some(b'{') => self.skip_object(depth + 1).map(|()| Kind::Object),
            Some(b'[') => {
                // As `array(depth + 1)`.
                if depth + 1 > MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                self.pos += 1;
                self.sequence(b']', |p| p.skip_value(depth + 1).map(|_| ()))?;
                Ok(Kind::Array)
            }
            Some(b'"') => self.string_span().map(|_| Kind::String),
            Some(b't') => self.expect_literal(b"true").map(|()| Kind::Literal),
            Some(b'f') => self.expect_literal(b"false").map(|()| Kind::Literal),
            Some(b'n') => self.expect_literal(b"null").map(|()| Kind::Literal),
            Some(b'-' | b'0'..=b'9') => self.number_end().map(|()| Kind::Number),
            _ => Err(JsonError::Syntax),
        }
    }

    /// As `object(depth)`, without building it: the same checks in the same order, the
    /// duplicate names last. Names are compared as bytes; names with escapes decoded first
    /// (only the names: each was checked already, so decoding it again cannot fail).
    fn skip_object(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.pos += 1; // '{'
        let mut names: Vec<(usize, usize, bool)> = Vec::new();
        self.sequence(b'}', |p| {
            if p.peek() != Some(b'"') {
                return Err(JsonError::Syntax);
            }
            names.push(p.string_span()?);
            p.colon()?;
            p.skip_value(depth).map(|_| ())
        })?;
        let end = self.pos;
        let mut decoded: Vec<Str> = Vec::new();
        for &(start, _, escaped) in &names {
            if escaped {
                self.pos = start.saturating_sub(1); // its opening quote
                decoded.push(self.string()?);
            }
        }
        self.pos = end;
        let mut escaped_names = decoded.iter();
        let slices = names.iter().map(|&(a, b, escaped)| {
            if escaped {
                escaped_names.next().map(|d| d.as_bytes()).unwrap_or_default()
            } else {
                self.s.get(a..b).unwrap_or_default()
            }
        });
        if has_duplicate_slices(slices, names.len()) {
            return Err(JsonError::DuplicateMember);
        }
        Ok(())
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
    // The names as byte slices (a slice compares its length before its bytes, where a
    // `CompactString` decodes its representation at every comparison).
    has_duplicate_slices(members.iter().map(|(k, _)| k.as_bytes()), members.len())
}

/// Whether two of the `n` names are equal.
fn has_duplicate_slices<'a>(names: impl Iterator<Item = &'a [u8]>, n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n <= 24 {
        // Small objects (every real header and claim set): pairwise, without allocating.
        let mut slots: [&[u8]; 24] = [&[]; 24];
        for (slot, name) in slots.iter_mut().zip(names) {
            *slot = name;
        }
        let names = slots.get(..n).unwrap_or_default();
        // Length and first byte before the bytes: most claim names are three letters long.
        let same = |a: &[u8], b: &[u8]| a.len() == b.len() && a.first() == b.first() && a == b;
        return names
            .iter()
            .enumerate()
            .any(|(i, a)| names.iter().skip(i + 1).any(|b| same(a, b)));
    }
    let mut names: Vec<&[u8]> = names.collect();
    names.sort_unstable();
    names.windows(2).any(|w| w[0] == w[1])
}

/// A name's first 8 bytes (zero-padded) as one word: names of up to 8 bytes with the same
/// length are equal exactly when their words are.
fn name_key(name: &[u8]) -> u64 {
    // In registers, byte by byte: a copy into a word-sized buffer read back at once as a word
    // stalls the CPU (the store cannot be forwarded to the load).
    name.iter()
        .take(8)
        .enumerate()
        .fold(0, |key, (i, &b)| key | u64::from(b) << (8 * i))
}

/// `name_key` of the name at `s[start..end]`, read as one word where `s` has 8 bytes from
/// `start` (a member name is always followed by more of the text).
fn name_key_at(s: &[u8], start: usize, end: usize) -> u64 {
    let len = end.saturating_sub(start);
    match s.get(start..start + 8) {
        Some(word) if len < 8 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            u64::from_le_bytes(bytes) & ((1u64 << (8 * len)) - 1)
        }
        _ => name_key(s.get(start..end).unwrap_or_default()),
    }
}

/// Where a top-level member is in its object's text.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// The name's contents (between the quotes; never escaped).
    name: (usize, usize),
    /// `name_key` of the name: a lookup compares one word before any bytes.
    key: u64,
    /// The value's JSON text.
    value: (usize, usize),
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Array,
    Object,
    /// true, false or null.
    Literal,
}

/// A JSON object's top-level members, found by the strict parser without building their values:
/// the object's text, where each member's name and value are, and what kind of value it is.
///
/// Why: a backend that meets a token another backend verified (the shared cache's record)
/// still parses and checks its claims; building the whole tree of values was most of that (in
/// Rust, about 0.54 µs of a typical claim set's 0.8 µs record path), while validation, the
/// revocation check and a policy's accessor read a handful of top-level members. Every byte is
/// checked as [`Json::parse`] checks it (the same parser: UTF-8, grammar, escapes, `\u0000`,
/// surrogates, depth, duplicate names); only the building is left out. [`Members::tree`] builds
/// the tree when something needs the whole value.
#[derive(Debug, Clone)]
pub struct Members {
    text: String,
    spans: Vec<Span>,
    /// The string values with escapes, decoded, by their member's index in `spans`.
    decoded: Vec<(usize, Str)>,
}

/// A top-level member's value, as read from [`Members`].
#[derive(Debug, Clone, PartialEq)]
pub enum Member<'a> {
    /// A string: its value.
    Str(&'a str),
    /// A number: its text as written.
    Number(&'a str),
    /// Anything else (true, false, null, an array, an object): its JSON text, which
    /// [`Json::parse`] turns into the value.
    Json(&'a str),
}

impl Members {
    /// The top-level members of the JSON object `input`. `Ok(Err(input))`: not an object, or
    /// a member name has escapes (valid JSON or not): give `input` to [`Json::parse`], whose
    /// answer is then the answer. An error is the error [`Json::parse`] gives.
    pub fn parse(input: Vec<u8>) -> Result<Result<Members, Vec<u8>>, JsonError> {
        let text = String::from_utf8(input).map_err(|_| JsonError::InvalidUtf8)?;
        let mut p = Parser {
            text: &text,
            s: text.as_bytes(),
            pos: 0,
        };
        match p.top_members()? {
            Some((spans, decoded)) => Ok(Ok(Members { text, spans, decoded })),
            None => Ok(Err(text.into_bytes())),
        }
    }

    /// The value of member `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<Member<'_>> {
        let name = name.as_bytes();
        let key = name_key(name);
        let (i, m) = self.spans.iter().enumerate().find(|(_, m)| {
            m.key == key
                && m.name.1.saturating_sub(m.name.0) == name.len()
                && (name.len() <= 8 || self.text.as_bytes().get(m.name.0..m.name.1) == Some(name))
        })?;
        Some(match m.kind {
            Kind::String => match self.decoded.iter().find(|(at, _)| *at == i) {
                Some((_, decoded)) => Member::Str(decoded),
                // Between the quotes.
                None => Member::Str(self.text.get(m.value.0 + 1..m.value.1.saturating_sub(1))?),
            },
            Kind::Number => Member::Number(self.text.get(m.value.0..m.value.1)?),
            _ => Member::Json(self.text.get(m.value.0..m.value.1)?),
        })
    }

    /// How many members the object has.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The whole object as a tree.
    pub fn tree(&self) -> Result<Json, JsonError> {
        Json::parse(self.text.as_bytes())
    }
}

impl Member<'_> {
    /// The member as a tree value.
    pub fn to_json(&self) -> Result<Json, JsonError> {
        match self {
            Member::Str(s) => Ok(Json::String(Str::from(*s))),
            Member::Number(n) => Ok(Json::Number(Str::from(*n))),
            Member::Json(text) => Json::parse(text.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Json, JsonError> {
        Json::parse(s.as_bytes())
    }

    #[test]
    fn pg_numeric_range() {
        // Each checked against PostgreSQL 15's numeric_in ('...'::numeric).
        for n in [
            "0",
            "-0",
            "1",
            "1.5",
            "-2.5e10",
            "1e131071",
            "9.99e131071",
            "0.1e131072",
            "1e-16383",
            "12e-16383",
            "1.5e-16382",
            "0e1073741822",
            "0.0",
            "123456789012345678901234567890e-400",
            "100000e131066",
            "-1E+131071",
        ] {
            assert!(fits_pg_numeric(n), "{n}");
        }
        for n in [
            "1e131072",
            "10e131071",
            "1e999999",
            "-1e131072",
            "1e-16384",
            "0e-16384",
            "1e-999999",
            "0e1073741823",
            "1e99999999999999999999",
            "1.00000e-16379",
            "100000e131067",
        ] {
            assert!(!fits_pg_numeric(n), "{n}");
        }
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

    /// `Members::parse` against `Json::parse` on one input: the same error; or the input back
    /// (not an object, or an escaped name); or every member as the tree has it.
    fn members_agree(input: &[u8]) {
        let tree = Json::parse(input);
        match Members::parse(input.to_vec()) {
            Err(e) => assert_eq!(tree, Err(e), "{:?}", String::from_utf8_lossy(input)),
            Ok(Err(back)) => assert_eq!(back, input),
            Ok(Ok(m)) => {
                let Ok(Json::Object(members)) = &tree else {
                    panic!("members of a non-object: {:?}", String::from_utf8_lossy(input))
                };
                // Every member of the tree, and no other (names are unique).
                assert_eq!(m.len(), members.len());
                for (name, value) in members {
                    assert_eq!(m.get(name).map(|v| v.to_json()), Some(Ok(value.clone())), "{name}");
                }
                assert_eq!(m.get("no such member"), None);
                assert_eq!(m.tree().as_ref(), tree.as_ref());
            }
        }
    }

    #[test]
    fn members_agree_with_the_tree_on_mutated_claim_sets() {
        let seeds: [&[u8]; 9] = [
            br#"{"n":{"b":1,"\u0062":2},"m":[{"k":1,"k":2}]}"#,
            br#"{"n":{"\u006b":[true,false,null,{"z":{}}]},"o":{"p":"\"","q":-1.0e-2}}"#,
            br#"{"n":[{"a":[{"b":[{"c":[{"d":[{"e":[{"f":[{"g":[{"h":[{"i":[{"j":[{"k":[{"l":[{"m":[{"o":[{"p":1}]}]}]}]}]}]}]}]}]}]}]}]}]}]}]}"#,
            br#"{"iss":"https://id.example.com/realms/prod","sub":"user-1","aud":["a","b"],"exp":1765000000,"iat":1.5e9,"tenant_id":"00000000-0000-4000-8000-000000000001","roles":["member"],"app":{"x":[1,{"y":null}]},"ok":true,"no":false,"nil":null}"#,
            br#" { "a" : "\u00e9\n\"" , "b\u0061" : -0.5E+3 , "c" : [ ] , "d" : { } } "#,
            br#"{"a":"x\ud83d\ude00y","e":"\u0000","f":"\ud800"}"#,
            br#"{"a":1,"a":2}"#,
            br#"[{"a":1}]"#,
            br#"{"deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
        ];
        let alphabet = b"{}[]:,\" \\u0aZ9-.eE+\t\ntfn\x00\x1f\xc3\xa9\xff";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for base in seeds {
            members_agree(base);
            for _ in 0..4000 {
                let mut input = base.to_vec();
                for _ in 0..1 + next() % 3 {
                    let at = (next() as usize) % (input.len() + 1);
                    let byte = alphabet[(next() as usize) % alphabet.len()];
                    match next() % 3 {
                        0 if at < input.len() => input[at] = byte,
                        1 if at < input.len() => {
                            input.remove(at);
                        }
                        _ => input.insert(at, byte),
                    }
                }
                members_agree(&input);
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
