//! What waits to be written to one connection.
//!
//! An [`Outbox`] is shared by a connection and the room it is in. Whoever has a frame
//! for the client — another member's connection relaying a `signal`, the room
//! announcing presence, the connection answering its own client — appends the encoded
//! WebSocket frame to the outbox's byte buffer and wakes the connection, which takes the
//! whole buffer and writes it with one `write` call. So a relayed message costs one copy
//! into the buffer and no allocation, and a burst of messages costs one system call.
//!
//! Frames from other peers count against [`OUTBOX_LIMIT`]; when a client stops reading
//! and its outbox fills, the room holds the peer as if its connection had dropped and
//! the connection closes with 4429 (`close_code::SLOW_CONSUMER`) once it has written
//! what it has. The relay's own replies to the client are never refused, and need no
//! limit of their own: a connection reads nothing while a write of its outbox is
//! blocked, so a client that sends without reading (a ping flood, say) can add at most
//! one read's worth of replies before it stalls, and a write stalled for
//! `--ping-timeout` ends the connection.

use crate::{buffers, ws};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Bytes of frames from other peers an outbox holds before its client counts as too
/// slow. Signaling is small (an SDP offer is a few KiB), so this is hundreds of
/// messages.
pub const OUTBOX_LIMIT: usize = 1 << 20;

/// When a message was read, in microseconds since the relay started (wrapping every
/// ~71 minutes): 4 bytes instead of an `Instant`'s 16.
#[derive(Clone, Copy, Debug)]
pub struct ReadAt(u32);

impl ReadAt {
    fn epoch() -> Instant {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    /// The stamp of `at`.
    pub fn new(at: Instant) -> Self {
        // Truncation is the wrap-around; `elapsed` subtracts with wrapping.
        ReadAt(at.saturating_duration_since(Self::epoch()).as_micros() as u32)
    }

    /// Time since the stamp (valid for gaps under ~71 minutes).
    pub fn elapsed(self) -> Duration {
        let now = ReadAt::new(Instant::now()).0;
        Duration::from_micros(u64::from(now.wrapping_sub(self.0)))
    }
}

/// Why a frame from another peer was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The client is not reading fast enough: [`OUTBOX_LIMIT`] is reached.
    Full,
    /// The connection has ended or is ending.
    Closed,
}

#[derive(Default)]
struct State {
    /// Encoded frames not yet taken by the connection.
    bytes: Vec<u8>,
    /// How many of `bytes` are frames from other peers (counted against the limit).
    relayed: usize,
    /// When the oldest relayed message in `bytes` was read (for the latency histogram).
    oldest: Option<ReadAt>,
    /// Close the connection with this code once `bytes` is written (set by the room
    /// when it gives the peer to another connection or finds the client too slow).
    close: Option<(u16, &'static str)>,
    /// No more frames from other peers are accepted.
    closed: bool,
}

/// The frames waiting for one connection, and the wake-up for its task.
#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
}

/// What the connection takes out of its outbox at once.
pub struct Batch {
    /// Encoded frames to write, in order.
    pub bytes: Vec<u8>,
    /// When the oldest relayed message among them was read.
    pub oldest: Option<ReadAt>,
    /// Close with this code after writing them.
    pub close: Option<(u16, &'static str)>,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Appending bytes cannot leave the state inconsistent, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a text frame from another peer whose payload is `parts` concatenated.
    pub fn relay(&self, parts: &[&str], read_at: ReadAt) -> Result<(), Refused> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let size = ws::header_len(len) + len;
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.relayed + size > OUTBOX_LIMIT {
            return Err(Refused::Full);
        }
        state.relayed += size;
        state.oldest.get_or_insert(read_at);
        let wake = append(&mut state.bytes, len, parts);
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Appends a frame of the relay's own (a reply, `welcome`, a ping), whatever the
    /// limit (the connection is the only one that writes these, and it stops reading
    /// while its writes are blocked, so they stay bounded: see the module doc).
    pub fn reply(&self, opcode: u8, payload: &[u8]) {
        let mut state = self.lock();
        let wake = state.bytes.is_empty();
        if state.bytes.capacity() == 0 {
            state.bytes = buffers::take(ws::header_len(payload.len()) + payload.len());
        }
        ws::write_frame(&mut state.bytes, opcode, payload);
        drop(state);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Asks the connection to close with `code` after writing what is queued, and
    /// refuses frames from other peers from now on.
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut state = self.lock();
        state.closed = true;
        state.close.get_or_insert((code, reason));
        drop(state);
        self.ready.notify_one();
    }

    /// Ends the outbox: refuses further frames and returns the relayed text frames
    /// that were never taken, oldest first (for the room to replay on resume).
    pub fn shut(&self) -> Vec<Box<str>> {
        let mut state = self.lock();
        state.closed = true;
        let bytes = std::mem::take(&mut state.bytes);
        drop(state);
        let unsent = ws::frames(&bytes)
            .filter(|(opcode, _)| *opcode == ws::op::TEXT)
            .filter_map(|(_, payload)| std::str::from_utf8(payload).ok())
            .filter(|text| is_relayed(text))
            .map(Box::from)
            .collect();
        buffers::give(bytes);
        unsent
    }

    /// Waits until there is something to take.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Takes everything queued. `bytes` is empty when there is nothing; give it back to
    /// [`buffers`] once written.
    pub fn take(&self) -> Batch {
        let mut state = self.lock();
        state.relayed = 0;
        Batch {
            bytes: std::mem::take(&mut state.bytes),
            oldest: state.oldest.take(),
            close: state.close,
        }
    }
}

/// Appends a text frame made of `parts` (`len` bytes in all); true if the buffer was
/// empty, so the connection needs waking.
fn append(bytes: &mut Vec<u8>, len: usize, parts: &[&str]) -> bool {
    let wake = bytes.is_empty();
    if bytes.capacity() == 0 {
        *bytes = buffers::take(ws::header_len(len) + len);
    }
    ws::write_header(bytes, ws::op::TEXT, len);
    for part in parts {
        bytes.extend_from_slice(part.as_bytes());
    }
    wake
}

/// Whether an encoded relay frame carries another peer's message (`signal` or
/// `broadcast`), as opposed to the relay's own (`welcome`, errors, presence, `pong`).
/// The relay writes the `type` tag first, so the prefix decides.
pub fn is_relayed(frame: &str) -> bool {
    frame.starts_with(r#"{"type":"signal""#) || frame.starts_with(r#"{"type":"broadcast""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> ReadAt {
        ReadAt::new(Instant::now())
    }

    fn texts(bytes: &[u8]) -> Vec<String> {
        ws::frames(bytes)
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    #[test]
    fn frames_come_out_in_order_in_one_batch() {
        let outbox = Outbox::default();
        outbox
            .relay(&[r#"{"type":"signal","from":"a","data":"#, "1", "}"], now())
            .unwrap();
        outbox.reply(ws::op::TEXT, br#"{"type":"pong"}"#);
        outbox
            .relay(&[r#"{"type":"broadcast","from":"b","data":2}"#], now())
            .unwrap();
        let batch = outbox.take();
        assert_eq!(
            texts(&batch.bytes),
            [
                r#"{"type":"signal","from":"a","data":1}"#,
                r#"{"type":"pong"}"#,
                r#"{"type":"broadcast","from":"b","data":2}"#
            ]
        );
        assert!(batch.oldest.is_some());
        assert!(batch.close.is_none());
        assert!(outbox.take().bytes.is_empty());
    }

    #[test]
    fn a_full_outbox_refuses_relayed_frames_but_not_replies() {
        let outbox = Outbox::default();
        let chunk = "x".repeat(60_000);
        let mut accepted = 0;
        while outbox.relay(&[&chunk], now()).is_ok() {
            accepted += 1;
        }
        assert_eq!(accepted, OUTBOX_LIMIT / (chunk.len() + 4));
        assert_eq!(outbox.relay(&[&chunk], now()), Err(Refused::Full));
        outbox.reply(ws::op::TEXT, b"still answered");
        assert_eq!(ws::frames(&outbox.take().bytes).count(), accepted + 1);
        // Taken bytes no longer count.
        assert_eq!(outbox.relay(&[&chunk], now()), Ok(()));
    }

    #[test]
    fn shut_returns_untaken_relayed_frames_and_refuses_more() {
        let outbox = Outbox::default();
        outbox.reply(ws::op::TEXT, br#"{"type":"welcome","peerId":"p"}"#);
        outbox
            .relay(&[r#"{"type":"signal","from":"a","data":1}"#], now())
            .unwrap();
        outbox.reply(ws::op::PING, b"");
        outbox
            .relay(&[r#"{"type":"broadcast","from":"a","data":2}"#], now())
            .unwrap();
        let unsent = outbox.shut();
        assert_eq!(
            unsent.iter().map(|s| &**s).collect::<Vec<_>>(),
            [
                r#"{"type":"signal","from":"a","data":1}"#,
                r#"{"type":"broadcast","from":"a","data":2}"#
            ]
        );
        assert_eq!(outbox.relay(&["late"], now()), Err(Refused::Closed));
    }

    #[test]
    fn close_is_delivered_after_what_is_queued() {
        let outbox = Outbox::default();
        outbox.relay(&["before"], now()).unwrap();
        outbox.close(4409, "replaced");
        assert_eq!(outbox.relay(&["after"], now()), Err(Refused::Closed));
        let batch = outbox.take();
        assert_eq!(texts(&batch.bytes), ["before"]);
        assert_eq!(batch.close, Some((4409, "replaced")));
    }

    #[tokio::test]
    async fn the_first_frame_wakes_the_connection() {
        let outbox = std::sync::Arc::new(Outbox::default());
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                outbox.ready().await;
                outbox.take().bytes.len()
            }
        });
        tokio::task::yield_now().await;
        outbox.relay(&["hello"], now()).unwrap();
        let len = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(len, 2 + 5);
    }

    #[test]
    fn read_at_measures_time() {
        ReadAt::new(Instant::now()); // starts the epoch, as the relay's first message does
        std::thread::sleep(Duration::from_millis(40));
        let at = ReadAt::new(Instant::now() - Duration::from_millis(30));
        let elapsed = at.elapsed();
        assert!(
            elapsed >= Duration::from_millis(29) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
    }
}
