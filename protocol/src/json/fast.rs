//! The fast path of [`decode_client`](super::decode_client): one validating scan over a
//! frame of the usual shape, without serde.
//!
//! It reads the top-level object's fields, keeps the strings it needs as slices of the
//! frame, and checks every other value against the JSON grammar without building
//! anything. It answers only when it is sure: anything unusual — an escape in a string
//! the relay reads, a duplicated field, a wrong type, deep nesting, a `\u` escape
//! anywhere, any syntax error — returns `None`, and the frame goes through serde, which
//! decides and words the error. So this path only has to be right about what it
//! accepts; the tests hold it to serde's reading on arbitrary input.
//!
//! Why it exists: decoding was the largest part of the relay's own CPU per relayed
//! message (serde ~140 ns for a 280-byte `signal`), and most of it was walking the
//! opaque `data` one byte at a time; here strings are scanned eight bytes at a time.

use super::{Flat, Raw};
use std::borrow::Cow;

/// Deeper nesting than this goes to serde (which skips it without recursion).
const MAX_DEPTH: usize = 64;

/// Reads `text` as a client frame, or `None` to let serde decide.
pub(super) fn flat(text: &str) -> Option<Flat<'_>> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut flat = Flat::default();
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.at += 1;
    } else {
        loop {
            let key = s.plain_string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            match key {
                "type" => set(&mut flat.kind, s.string_field()?)?,
                "to" => set(&mut flat.to, s.string_field()?)?,
                "room" => set(&mut flat.room, s.string_field()?)?,
                "name" => set(&mut flat.name, s.string_field()?)?,
                "token" => set(&mut flat.token, s.string_field()?)?,
                "resume" => set(&mut flat.resume, s.string_field()?)?,
                "id" => set(&mut flat.id, s.raw_field()?)?,
                "data" => set(&mut flat.data, s.raw_field()?)?,
                "meta" => set(&mut flat.meta, s.raw_field()?)?,
                _ => s.value()?,
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.at == s.bytes.len()).then_some(flat)
}

/// Stores a field seen for the first time; a repeated one is left to serde (an error).
fn set<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = value;
    Some(())
}

/// Marker that a field was present (`Some(None)` is JSON `null`).
type Field<T> = Option<Option<T>>;

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A string field the relay reads (`type`, `to`, …): a string without escapes, or
    /// `null` (absent, as serde reads `Option`).
    fn string_field(&mut self) -> Field<Cow<'a, str>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        self.plain_string().map(|s| Some(Cow::Borrowed(s)))
    }

    /// A raw field (`id`, `data`, `meta`): any value, or `null` (absent).
    fn raw_field(&mut self) -> Field<Raw<'a>> {
        let start = self.at;
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        self.value()?;
        Some(Some(Raw(self.text.get(start..self.at)?)))
    }

    /// A string without escapes, returned without its quotes.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let escaped = self.string_body()?;
        if escaped {
            return None;
        }
        self.text.get(start..self.at - 1)
    }

    /// Skips a string's body after its opening quote, through its closing quote.
    /// Returns whether it had escapes. `\u` escapes are left to serde.
    fn string_body(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.at += special_offset(&self.bytes[self.at..])?;
            match self.next()? {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        _ => return None,
                    }
                }
                // A control character: not allowed unescaped.
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            (self.digits() > 0).then_some(())?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            (self.digits() > 0).then_some(())?;
        }
        Some(())
    }

    /// Skips any value, checking it. Nesting is followed with a small explicit stack,
    /// not recursion.
    fn value(&mut self) -> Option<()> {
        // What each open bracket closes with; arrays and objects differ after a comma.
        let mut open = [0u8; MAX_DEPTH];
        let mut depth = 0;
        loop {
            // A value.
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    self.string_body()?;
                }
                b'{' | b'[' => {
                    let close = if self.next()? == b'{' { b'}' } else { b']' };
                    *open.get_mut(depth)? = close;
                    depth += 1;
                    self.ws();
                    if self.peek()? == close {
                        self.at += 1;
                        depth -= 1;
                    } else {
                        if close == b'}' {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // After a value: close what is complete, or move to the next element.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let close = open[depth - 1];
                match self.next()? {
                    b',' => {
                        self.ws();
                        if close == b'}' {
                            self.member_key()?;
                        }
                        break;
                    }
                    b if b == close => depth -= 1,
                    _ => return None,
                }
            }
        }
    }

    /// `"key" :` inside a skipped object, leaving the scanner at the member's value.
    fn member_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string_body()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(())
    }
}

/// Offset of the first `"`, `\` or control character in `bytes`, eight bytes at a time;
/// `None` if there is none (an unterminated string).
fn special_offset(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is flagged when it is zero; the lowest flagged byte is exact.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        // Bytes below 0x20 (control characters), `"` and `\`.
        let hits = (v.wrapping_sub(0x20 * ONES) & !v & HIGHS)
            | zero(v ^ (b'"' as u64 * ONES))
            | zero(v ^ (b'\\' as u64 * ONES));
        if hits != 0 {
            return Some(offset + hits.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_offset_finds_the_first_special_byte() {
        let specials = [b'"', b'\\', 0x00, 0x1f, b'\n'];
        for len in 0..40 {
            for at in 0..len {
                for &special in &specials {
                    let mut bytes = vec![b'a'; len];
                    // Bytes that look close to the specials, before it.
                    for (i, b) in bytes.iter_mut().enumerate().take(at) {
                        *b = [b' ', b'#', b'!', 0x7f, 0xc3, b']', b'[', 0x21][i % 8];
                    }
                    bytes[at] = special;
                    assert_eq!(special_offset(&bytes), Some(at), "len {len} at {at}");
                }
            }
            assert_eq!(special_offset(&vec![b'x'; len]), None);
        }
    }

    #[test]
    fn reads_the_usual_signal() {
        let frame = r#"{"type":"signal","to":"p1","data":{"sdp":"v=0\r\n","n":[1,-2.5e3,true,null,{}]},"id":7}"#;
        let f = flat(frame).expect("fast path");
        assert_eq!(f.kind.as_deref(), Some("signal"));
        assert_eq!(f.to.as_deref(), Some("p1"));
        assert_eq!(
            f.data.map(Raw::get),
            Some(r#"{"sdp":"v=0\r\n","n":[1,-2.5e3,true,null,{}]}"#)
        );
        assert_eq!(f.id.map(Raw::get), Some("7"));
    }

    #[test]
    fn leaves_the_unusual_to_serde() {
        for frame in [
            r#"{"type":"sig\u006eal"}"#,
            r#"{"type":"a","type":"b"}"#,
            r#"{"type":5}"#,
            r#"{"type":"signal","data":"\u00e9"}"#,
            r#"{"type":"signal"} x"#,
            r#"{"data":01}"#,
            r#"{"data":[1,]}"#,
            r#"{"data":{"a":1,}}"#,
            r#"{"data":{"a" 1}}"#,
            r#"{"data":[}"#,
            r#"{"data":tru}"#,
            r#"{"data":"a
b"}"#,
            "[]",
            "",
        ] {
            assert!(flat(frame).is_none(), "{frame}");
        }
        let deep = format!(r#"{{"data":{}{}}}"#, "[".repeat(65), "]".repeat(65));
        assert!(flat(&deep).is_none());
        let ok = format!(r#"{{"data":{}{}}}"#, "[".repeat(64), "]".repeat(64));
        assert!(flat(&ok).is_some());
    }
}
