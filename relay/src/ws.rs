//! RFC 6455 framing for the relay's side of a WebSocket: reading the client's (masked)
//! frames and writing the relay's (unmasked) ones.
//!
//! Why the relay frames by hand instead of through tungstenite (which the tests' clients
//! and the handshake's accept key still use): a relayed message is the whole job, and
//! tungstenite gives each one out as its own allocation and copies each outgoing one
//! into a per-socket write buffer. Here a client frame is unmasked where it was read,
//! decoded in place, and its relayed form is written once, straight into the
//! recipient's [`Outbox`](crate::outbox::Outbox): no allocation per message. And an idle
//! socket holds no buffer at all ([`Reader`] frees it whenever it ends on a frame
//! boundary), where tungstenite keeps its read buffer for the socket's whole life.
//!
//! Scope: the server role of RFC 6455 without extensions (the upgrade never negotiates
//! any): text, binary, fragmentation, ping/pong, close codes, UTF-8 validation.

use crate::buffers;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Opcodes (RFC 6455 §5.2).
pub mod op {
    /// Continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close frame.
    pub const CLOSE: u8 = 0x8;
    /// Ping frame.
    pub const PING: u8 = 0x9;
    /// Pong frame.
    pub const PONG: u8 = 0xA;
}

/// Below this much free space, the buffer grows before a read.
const MIN_SPACE: usize = 512;
/// A buffer whose reads keep filling it doubles up to this size, no further: larger
/// reads save little, and a client flooding the socket must not grow it without end.
/// (A frame larger than this still gets room for the whole frame, up to the cap.)
pub const MAX_READ: usize = 64 * 1024;

/// A complete message from the client. Borrows the reader's buffer until the next call
/// to [`Reader::message`].
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8).
    Text(&'a str),
    /// A binary message (not part of the meshwire protocol; only its size matters).
    Binary(usize),
    /// A ping, whose payload the pong must echo.
    Ping(&'a [u8]),
    /// A pong (it only proves liveness).
    Pong,
    /// A close frame, with its status code if it had one.
    Close(Option<u16>),
}

/// Why the client's byte stream is not acceptable. Each maps to the close code the
/// relay ends the connection with.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// A frame or message larger than the reader's cap: close 1009.
    TooBig,
    /// A text message that is not UTF-8: close 1007.
    Utf8,
    /// Anything else RFC 6455 forbids (reserved bits, unmasked client frames, bad
    /// opcodes, fragmented or oversized control frames, bad close codes): close 1002.
    Protocol(&'static str),
}

impl ReadError {
    /// The close code for this error.
    pub fn close_code(&self) -> u16 {
        match self {
            ReadError::TooBig => 1009,
            ReadError::Utf8 => 1007,
            ReadError::Protocol(_) => 1002,
        }
    }
}

/// A fragmented message being assembled.
struct Fragments {
    opcode: u8,
    payload: Vec<u8>,
}

/// Reads client frames from a socket.
pub struct Reader {
    /// Bytes read and not yet consumed, from `pos` on. Taken from [`buffers`] for a read
    /// and given back whenever everything in it has been consumed, so an idle
    /// connection holds no buffer.
    buf: Vec<u8>,
    /// How much of `buf` has been consumed.
    pos: usize,
    /// A fragmented message in progress (rare: browsers send whole frames).
    fragments: Option<Fragments>,
    /// The last fragmented message completed, kept so [`Message`] can borrow it.
    assembled: Vec<u8>,
    /// Largest frame or message accepted.
    cap: usize,
    /// The last read filled all the room it had: more is probably waiting, so the next
    /// read gets a larger buffer (a busy socket then drains in fewer system calls).
    was_full: bool,
}

impl Reader {
    /// A reader starting with `early` (bytes read past the HTTP request by the server
    /// that did the upgrade), accepting messages up to `cap` bytes.
    pub fn new(early: Vec<u8>, cap: usize) -> Self {
        Reader {
            buf: early,
            pos: 0,
            fragments: None,
            assembled: Vec::new(),
            cap,
            was_full: false,
        }
    }

    /// Reads more bytes from `io`. Returns 0 at the end of the stream. Cancel-safe: if
    /// the future is dropped before it completes, nothing was read.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> std::io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() == 0 {
            self.buf = buffers::take(0);
        }
        let capacity = self.buf.capacity();
        let spare = capacity - self.buf.len();
        let grow = if self.was_full && capacity < MAX_READ {
            capacity.max(MIN_SPACE)
        } else if spare < MIN_SPACE {
            MIN_SPACE
        } else {
            0
        };
        // Exact, or Vec's own doubling would outgrow MAX_READ.
        self.buf.reserve_exact(grow);
        let n = io.read_buf(&mut self.buf).await?;
        self.was_full = self.buf.len() == self.buf.capacity();
        Ok(n)
    }

    /// Bytes buffered but not yet consumed (a partial frame).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete message in what has been read, or `None` when more bytes are
    /// needed. After an error the stream is unusable: close the connection.
    pub fn message(&mut self) -> Result<Option<Message<'_>>, ReadError> {
        if self.assembled.capacity() > 0 {
            // The fragmented message returned last time has been handled.
            self.assembled = Vec::new();
        }
        loop {
            let Some(header) = Header::parse(&self.buf[self.pos..], self.cap)? else {
                if self.pos == self.buf.len() {
                    // Everything consumed: give the memory back while the socket idles.
                    buffers::give(std::mem::take(&mut self.buf));
                    self.pos = 0;
                }
                return Ok(None);
            };
            let start = self.pos + header.len;
            let end = start + header.payload_len;
            if end > self.buf.len() {
                // Move the partial frame to the front, and make sure the whole of a large
                // frame fits, so the rest arrives without regrowing per read. Exact:
                // Vec's doubling would let a flood grow the buffer without end.
                self.buf.drain(..self.pos);
                let frame_len = end - self.pos;
                self.pos = 0;
                if frame_len > self.buf.capacity() {
                    self.buf.reserve_exact(frame_len - self.buf.len());
                }
                return Ok(None);
            }
            self.pos = end;
            unmask(&mut self.buf[start..end], header.mask);
            let fin = header.fin;
            match header.opcode {
                op::TEXT | op::BINARY if self.fragments.is_some() => {
                    return Err(ReadError::Protocol(
                        "new message before the fragmented one ended",
                    ))
                }
                op::TEXT | op::BINARY if fin => {
                    let payload = &self.buf[start..end];
                    return message(header.opcode, payload).map(Some);
                }
                op::TEXT | op::BINARY => {
                    self.fragments = Some(Fragments {
                        opcode: header.opcode,
                        payload: self.buf[start..end].to_vec(),
                    });
                }
                op::CONTINUATION => {
                    let Some(fragments) = &mut self.fragments else {
                        return Err(ReadError::Protocol("continuation frame without a message"));
                    };
                    if fragments.payload.len() + (end - start) > self.cap {
                        return Err(ReadError::TooBig);
                    }
                    fragments.payload.extend_from_slice(&self.buf[start..end]);
                    if fin {
                        let Some(done) = self.fragments.take() else {
                            continue;
                        };
                        self.assembled = done.payload;
                        return message(done.opcode, &self.assembled).map(Some);
                    }
                }
                op::PING => return Ok(Some(Message::Ping(&self.buf[start..end]))),
                op::PONG => return Ok(Some(Message::Pong)),
                op::CLOSE => return close(&self.buf[start..end]).map(Some),
                _ => return Err(ReadError::Protocol("unknown opcode")),
            }
        }
    }
}

fn message(opcode: u8, payload: &[u8]) -> Result<Message<'_>, ReadError> {
    if opcode == op::BINARY {
        return Ok(Message::Binary(payload.len()));
    }
    std::str::from_utf8(payload)
        .map(Message::Text)
        .map_err(|_| ReadError::Utf8)
}

fn close(payload: &[u8]) -> Result<Message<'_>, ReadError> {
    match payload {
        [] => Ok(Message::Close(None)),
        [_] => Err(ReadError::Protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // RFC 6455 §7.4: codes a peer may send.
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(ReadError::Protocol("invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(ReadError::Utf8);
            }
            Ok(Message::Close(Some(code)))
        }
    }
}

/// A parsed frame header.
#[derive(Debug)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header length in bytes.
    len: usize,
    payload_len: usize,
}

impl Header {
    /// Parses the header at the start of `buf`: `None` if incomplete.
    fn parse(buf: &[u8], cap: usize) -> Result<Option<Header>, ReadError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(ReadError::Protocol(
                "reserved bits set (no extension was negotiated)",
            ));
        }
        if b1 & 0x80 == 0 {
            return Err(ReadError::Protocol("client frames must be masked"));
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        let (payload_len, ext) = match b1 & 0x7F {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.get(..8) {
                Some(bytes) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(bytes);
                    (u64::from_be_bytes(be), 8)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 0),
        };
        if opcode >= op::CLOSE && (!fin || payload_len > 125) {
            return Err(ReadError::Protocol(
                "control frames must be whole and at most 125 bytes",
            ));
        }
        if payload_len > cap as u64 {
            return Err(ReadError::TooBig);
        }
        let Some(mask) = rest.get(ext..ext + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            len: 2 + ext + 4,
            payload_len: payload_len as usize,
        }))
    }
}

/// XORs `payload` with the frame's masking key, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key lines up from its first byte.
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

/// Appends the header of an unmasked, unfragmented frame with a payload of `len` bytes.
pub fn write_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Size of the header [`write_header`] writes for a payload of `len` bytes.
pub fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= usize::from(u16::MAX) {
        4
    } else {
        10
    }
}

/// Appends a whole frame.
pub fn write_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    write_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (cut to fit a control frame).
pub fn write_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    write_header(out, op::CLOSE, 2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

/// The frames in `bytes` (written by this module, so unmasked and whole), as
/// `(opcode, payload)`. Stops at anything that is not a whole frame.
pub fn frames(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let [b0, b1, tail @ ..] = rest else {
            return None;
        };
        let (len, ext): (usize, usize) = match b1 & 0x7F {
            126 => (
                usize::from(u16::from_be_bytes([*tail.first()?, *tail.get(1)?])),
                2,
            ),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(tail.get(..8)?);
                (usize::try_from(u64::from_be_bytes(be)).ok()?, 8)
            }
            n => (usize::from(n), 0),
        };
        let payload = tail.get(ext..ext.checked_add(len)?)?;
        let opcode = b0 & 0x0F;
        rest = &tail[ext + len..];
        Some((opcode, payload))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a browser would send it.
    fn masked(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, opcode, payload.len());
        if !fin {
            out[0] &= 0x7F;
        }
        out[1] |= 0x80;
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, k)| b ^ k));
        out
    }

    fn text(payload: &str) -> Vec<u8> {
        masked(true, op::TEXT, payload.as_bytes(), [0x37, 0xfa, 0x21, 0x3d])
    }

    fn reader(bytes: Vec<u8>) -> Reader {
        Reader::new(bytes, 1 << 20)
    }

    #[test]
    fn reads_text_of_every_length_encoding() {
        for len in [0, 5, 125, 126, 1000, 65535, 65536, 200_000] {
            let payload = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let mut r = reader(text(&payload));
            assert_eq!(r.message(), Ok(Some(Message::Text(&payload))), "len {len}");
            assert_eq!(r.message(), Ok(None));
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn reads_several_frames_and_waits_for_partial_ones() {
        let mut bytes = text("one");
        bytes.extend(text("two"));
        let third = text(&"3".repeat(300));
        bytes.extend_from_slice(&third[..10]);
        let mut r = reader(bytes);
        assert_eq!(r.message(), Ok(Some(Message::Text("one"))));
        assert_eq!(r.message(), Ok(Some(Message::Text("two"))));
        assert_eq!(r.message(), Ok(None));
        assert_eq!(r.buffered(), 10);
        // Byte by byte, as a slow network delivers it.
        for b in &third[10..] {
            r.buf.push(*b);
        }
        assert_eq!(r.message(), Ok(Some(Message::Text(&"3".repeat(300)))));
    }

    #[test]
    fn any_split_of_the_stream_reads_the_same_messages() {
        let mut stream = text("hello");
        stream.extend(masked(true, op::PING, b"hb", [1, 2, 3, 4]));
        stream.extend(masked(false, op::TEXT, b"frag", [9, 8, 7, 6]));
        stream.extend(masked(true, op::PONG, b"", [1, 1, 1, 1]));
        stream.extend(masked(true, op::CONTINUATION, b"mented", [5, 5, 5, 5]));
        stream.extend(masked(
            true,
            op::CLOSE,
            &1000u16.to_be_bytes(),
            [0, 1, 0, 1],
        ));
        for split in 0..stream.len() {
            let mut r = reader(stream[..split].to_vec());
            let mut seen = Vec::new();
            let mut take = |r: &mut Reader| {
                while let Some(m) = r.message().expect("valid stream") {
                    seen.push(format!("{m:?}"));
                }
            };
            take(&mut r);
            r.buf.extend_from_slice(&stream[split..]);
            take(&mut r);
            assert_eq!(
                seen,
                [
                    r#"Text("hello")"#,
                    "Ping([104, 98])",
                    "Pong",
                    r#"Text("fragmented")"#,
                    "Close(Some(1000))"
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn rejects_what_rfc_6455_forbids() {
        let mut unmasked = Vec::new();
        write_frame(&mut unmasked, op::TEXT, b"hi");
        let mut rsv = text("hi");
        rsv[0] |= 0x40;
        let cases: Vec<(Vec<u8>, ReadError)> = vec![
            (
                unmasked,
                ReadError::Protocol("client frames must be masked"),
            ),
            (
                rsv,
                ReadError::Protocol("reserved bits set (no extension was negotiated)"),
            ),
            (
                masked(true, 0x3, b"", [0; 4]),
                ReadError::Protocol("unknown opcode"),
            ),
            (
                masked(false, op::PING, b"", [0; 4]),
                ReadError::Protocol("control frames must be whole and at most 125 bytes"),
            ),
            (
                masked(true, op::PING, &[0; 126], [0; 4]),
                ReadError::Protocol("control frames must be whole and at most 125 bytes"),
            ),
            (
                masked(true, op::CONTINUATION, b"x", [0; 4]),
                ReadError::Protocol("continuation frame without a message"),
            ),
            (
                masked(true, op::TEXT, &[0xff, 0xfe], [0; 4]),
                ReadError::Utf8,
            ),
            (
                masked(true, op::CLOSE, &[3], [0; 4]),
                ReadError::Protocol("close frame with a 1-byte payload"),
            ),
            (
                masked(true, op::CLOSE, &1005u16.to_be_bytes(), [0; 4]),
                ReadError::Protocol("invalid close code"),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(reader(bytes).message(), Err(want));
        }
        let mut two_starts = masked(false, op::TEXT, b"a", [0; 4]);
        two_starts.extend(masked(true, op::TEXT, b"b", [0; 4]));
        let mut r = reader(two_starts);
        assert_eq!(
            r.message(),
            Err(ReadError::Protocol(
                "new message before the fragmented one ended"
            ))
        );
    }

    #[test]
    fn caps_frames_and_assembled_messages() {
        let mut r = Reader::new(text(&"x".repeat(101)), 100);
        assert_eq!(r.message(), Err(ReadError::TooBig));
        // Known from the header alone: a huge frame is refused before it is read.
        let mut r = Reader::new(masked(true, op::TEXT, &[], [0; 4]), 100);
        r.buf[1] = 0x80 | 127;
        r.buf.truncate(2);
        r.buf.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(r.message(), Err(ReadError::TooBig));
        let mut frags = masked(false, op::TEXT, &[b'a'; 60], [0; 4]);
        frags.extend(masked(true, op::CONTINUATION, &[b'a'; 60], [0; 4]));
        assert_eq!(Reader::new(frags, 100).message(), Err(ReadError::TooBig));
    }

    #[tokio::test]
    async fn a_flood_grows_the_read_buffer_only_so_far() {
        // Back-to-back frames that never line up with the reads' ends, from a source
        // that always fills whatever room the reader offers.
        let frame = text(&"f".repeat(997));
        let stream: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(50 * 1024 * 1024)
            .collect();
        let mut source: &[u8] = &stream;
        let mut r = reader(Vec::new());
        let mut largest = 0;
        let mut messages = 0;
        while r.fill(&mut source).await.expect("in-memory read") > 0 {
            largest = largest.max(r.buf.capacity());
            while let Some(m) = r.message().expect("valid frames") {
                assert!(matches!(m, Message::Text(t) if t.len() == 997));
                messages += 1;
            }
        }
        assert!(messages > 40_000, "{messages}");
        assert!(largest <= MAX_READ + 2 * MIN_SPACE, "grew to {largest}");
        assert!(largest >= MAX_READ / 2, "never grew: {largest}");
    }

    #[test]
    fn buffer_is_freed_when_consumed() {
        let mut r = reader(text("hi"));
        assert!(r.buf.capacity() > 0);
        assert_eq!(r.message(), Ok(Some(Message::Text("hi"))));
        assert_eq!(r.message(), Ok(None));
        assert_eq!(r.buf.capacity(), 0);
    }

    proptest::proptest! {
        /// Whatever a client sends, the reader returns messages or an error; it never
        /// panics, and it never hands out more than it was given.
        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>, cap in 0usize..2000) {
            let len = bytes.len();
            let mut r = Reader::new(bytes, cap);
            let mut seen = 0;
            while let Ok(Some(m)) = r.message() {
                seen += match m {
                    Message::Text(t) => t.len(),
                    Message::Binary(n) => n,
                    Message::Ping(p) => p.len(),
                    Message::Pong | Message::Close(_) => 0,
                };
            }
            proptest::prop_assert!(seen <= len);
        }

        /// Valid frames with arbitrary masks and sizes read back as sent, wherever
        /// the stream is cut.
        #[test]
        fn masked_text_round_trips(
            texts in proptest::collection::vec(".{0,300}", 1..6),
            mask: [u8; 4],
            cut in 0usize..2000,
        ) {
            let stream: Vec<u8> = texts
                .iter()
                .flat_map(|t| masked(true, op::TEXT, t.as_bytes(), mask))
                .collect();
            let cut = cut.min(stream.len());
            let mut r = reader(stream[..cut].to_vec());
            let mut got = Vec::new();
            while let Some(Message::Text(t)) = r.message().expect("valid") {
                got.push(t.to_owned());
            }
            r.buf.extend_from_slice(&stream[cut..]);
            while let Some(Message::Text(t)) = r.message().expect("valid") {
                got.push(t.to_owned());
            }
            proptest::prop_assert_eq!(got, texts);
        }
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        for len in 0..40 {
            let original: Vec<u8> = (0..len as u8).collect();
            let mut fast = original.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = original
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn written_frames_read_back() {
        let mut out = Vec::new();
        let big = vec![b'z'; 70_000];
        write_frame(&mut out, op::TEXT, b"short");
        write_frame(&mut out, op::TEXT, &big[..300]);
        write_frame(&mut out, op::TEXT, &big);
        write_close(&mut out, 4409, &"é".repeat(100));
        let found: Vec<(u8, usize)> = frames(&out).map(|(o, p)| (o, p.len())).collect();
        assert_eq!(
            found,
            [
                (op::TEXT, 5),
                (op::TEXT, 300),
                (op::TEXT, 70_000),
                (op::CLOSE, 124)
            ]
        );
        for len in [0, 125, 126, 65535, 65536] {
            let mut out = Vec::new();
            write_header(&mut out, op::TEXT, len);
            assert_eq!(out.len(), header_len(len), "len {len}");
        }
        // A cut-off frame is not reported.
        assert_eq!(frames(&out[..out.len() - 1]).count(), 3);
    }
}
