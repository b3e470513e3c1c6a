//! What instances send each other on their Redis channels (`mw:to:{instance}`).
//!
//! One message per PUBLISH, text, fields separated by `\n`. Room names, peer ids and
//! instance ids cannot contain one; the last field runs to the end of the message, so
//! a relayed frame (whose client `data` may hold any JSON whitespace) is carried byte
//! for byte:
//!
//! | kind | fields | meaning |
//! |---|---|---|
//! | `S` | room, to, frame | deliver the stamped `signal` frame to local peer `to` |
//! | `B` | room, from, frame | deliver the stamped `broadcast` frame to every local member but `from` |
//! | `J` | room, peer, instance, info | `peer` (PeerInfo JSON) joined on `instance` |
//! | `L` | room, peer, reason | `peer` is gone (`left` or `lost`) |
//! | `M` | room, peer, instance | `peer` resumed on `instance`: whoever held it forwards what it queued |
//!
//! Frames are already what the recipient's client gets (`from` stamped by the sender's
//! relay), so the receiving instance copies them into outboxes without decoding them.

use meshwire_protocol::LeaveReason;

/// A decoded channel message, borrowing from the payload.
#[derive(Debug, PartialEq, Eq)]
pub enum Wire<'a> {
    /// A `signal` for one local peer.
    Signal {
        /// Room name.
        room: &'a str,
        /// The recipient.
        to: &'a str,
        /// The frame its client gets.
        frame: &'a str,
    },
    /// A `broadcast` for the local members of a room.
    Broadcast {
        /// Room name.
        room: &'a str,
        /// The sender (excluded).
        from: &'a str,
        /// The frame the clients get.
        frame: &'a str,
    },
    /// A peer joined on another instance.
    Joined {
        /// Room name.
        room: &'a str,
        /// Its id.
        peer: &'a str,
        /// Where it is connected.
        instance: &'a str,
        /// Its `PeerInfo` as JSON.
        info: &'a str,
    },
    /// A peer of another instance is gone.
    Left {
        /// Room name.
        room: &'a str,
        /// Its id.
        peer: &'a str,
        /// Why.
        reason: LeaveReason,
    },
    /// A peer resumed on `instance`.
    Moved {
        /// Room name.
        room: &'a str,
        /// Its id.
        peer: &'a str,
        /// Its new instance.
        instance: &'a str,
    },
}

fn build(kind: u8, fields: &[&str]) -> Vec<u8> {
    let len = 1 + fields.iter().map(|f| f.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(kind);
    for f in fields {
        out.push(b'\n');
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// `S` with the frame given as the pieces it is made of (no intermediate string).
pub fn signal(room: &str, to: &str, frame: &[&str]) -> Vec<u8> {
    let len = 3 + room.len() + to.len() + 2 + frame.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"S\n");
    out.extend_from_slice(room.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(to.as_bytes());
    out.push(b'\n');
    for p in frame {
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// `B` with the frame given as its pieces.
pub fn broadcast(room: &str, from: &str, frame: &[&str]) -> Vec<u8> {
    let mut out = signal(room, from, frame);
    out[0] = b'B';
    out
}

/// `J`.
pub fn joined(room: &str, peer: &str, instance: &str, info: &str) -> Vec<u8> {
    build(b'J', &[room, peer, instance, info])
}

/// `L`.
pub fn left(room: &str, peer: &str, reason: LeaveReason) -> Vec<u8> {
    let reason = match reason {
        LeaveReason::Left => "left",
        LeaveReason::Lost => "lost",
    };
    build(b'L', &[room, peer, reason])
}

/// `M`.
pub fn moved(room: &str, peer: &str, instance: &str) -> Vec<u8> {
    build(b'M', &[room, peer, instance])
}

/// Reads a channel message; `None` for anything malformed (logged by the caller).
pub fn decode(payload: &[u8]) -> Option<Wire<'_>> {
    let text = std::str::from_utf8(payload).ok()?;
    let (kind, rest) = text.split_once('\n')?;
    let mut it = rest.splitn(
        match kind {
            "J" => 4,
            _ => 3,
        },
        '\n',
    );
    let (a, b, c) = (it.next()?, it.next()?, it.next()?);
    Some(match kind {
        "S" => Wire::Signal {
            room: a,
            to: b,
            frame: c,
        },
        "B" => Wire::Broadcast {
            room: a,
            from: b,
            frame: c,
        },
        "J" => Wire::Joined {
            room: a,
            peer: b,
            instance: c,
            info: it.next()?,
        },
        "L" => Wire::Left {
            room: a,
            peer: b,
            reason: match c {
                "left" => LeaveReason::Left,
                "lost" => LeaveReason::Lost,
                _ => return None,
            },
        },
        "M" => Wire::Moved {
            room: a,
            peer: b,
            instance: c,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let frame = [
            r#"{"type":"signal","from":"x","data":"#,
            r#"{"a":"b\nc"}"#,
            "}",
        ];
        let s = signal("r", "p", &frame);
        assert_eq!(
            decode(&s),
            Some(Wire::Signal {
                room: "r",
                to: "p",
                frame: r#"{"type":"signal","from":"x","data":{"a":"b\nc"}}"#
            })
        );
        let b = broadcast("r", "p", &frame);
        assert!(matches!(
            decode(&b),
            Some(Wire::Broadcast { from: "p", .. })
        ));
        let j = joined("r", "p", "i", r#"{"id":"p"}"#);
        assert_eq!(
            decode(&j),
            Some(Wire::Joined {
                room: "r",
                peer: "p",
                instance: "i",
                info: r#"{"id":"p"}"#
            })
        );
        let l = left("r", "p", LeaveReason::Lost);
        assert_eq!(
            decode(&l),
            Some(Wire::Left {
                room: "r",
                peer: "p",
                reason: LeaveReason::Lost
            })
        );
        let m = moved("r", "p", "i2");
        assert!(matches!(
            decode(&m),
            Some(Wire::Moved { instance: "i2", .. })
        ));
        assert_eq!(decode(b"X\na\nb\nc"), None);
        assert_eq!(decode(b"S\na"), None);
        assert_eq!(decode(b"L\na\nb\nmaybe"), None);
    }
}
