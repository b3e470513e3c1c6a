//! # meshwire wire protocol, version 1
//!
//! The messages a meshwire relay and its clients exchange over one WebSocket at
//! `GET /ws`: one JSON object per text frame, discriminated by `"type"` (kebab-case
//! values), with camelCase fields. `docs/protocol.md` is the normative description;
//! this crate is the one place the types are declared, so the relay, the wasm SDK and
//! the tests all compile against the same contract.
//!
//! Payloads the relay never looks into (`signal.data`, `broadcast.data`, `join.meta`)
//! are a type parameter `D`: the relay uses `&serde_json::value::RawValue` so it
//! forwards the client's bytes without re-encoding them, the SDK uses its own
//! serialisable types, tests use `serde_json::Value`.
//!
//! ## Layout
//! - this file: the message types, error codes and limits;
//! - [`json`] (feature `json`, on by default): the relay's zero-copy decoder;
//! - [`peer`]: what meshwire peers send each other inside `signal.data`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// `no_std` (with `alloc`) so the wasm SDK can be built without the standard library,
// whose panic machinery costs the bundle kilobytes; the relay's `json` module needs std.
#![cfg_attr(not(feature = "json"), no_std)]

extern crate alloc;

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

#[cfg(feature = "json")]
pub mod json;
pub mod peer;

/// The protocol version this crate describes. Reported by the relay's `/health`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest room name the relay accepts, in bytes.
pub const MAX_ROOM_LEN: usize = 64;
/// Longest display name the relay accepts, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Largest `join.meta` the relay accepts, in bytes of JSON. It is repeated in every
/// `welcome.peers` entry, so it is kept small.
pub const MAX_META_BYTES: usize = 2048;

/// Whether `room` is a valid room name: 1–64 characters of `[A-Za-z0-9_.:-]`.
pub fn is_valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= MAX_ROOM_LEN
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// A client-chosen message id, echoed by the relay as `ref` in an error caused by that
/// message so the client can tell which request failed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum MessageId {
    /// `"id": 7`
    Number(i64),
    /// `"id": "a1"`
    Text(String),
}

/// A client message together with its optional `id`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ClientFrame<'a, D> {
    /// Echoed as `ref` in an error this message causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<MessageId>,
    /// The message itself.
    #[serde(flatten, borrow)]
    pub message: ClientMessage<'a, D>,
}

/// Client → relay.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage<'a, D> {
    /// Enter a room (one at a time per connection).
    Join(#[serde(borrow)] Join<'a, D>),
    /// Deliver `data` to one peer of the same room.
    Signal {
        /// The recipient's peer id.
        #[serde(borrow)]
        to: Cow<'a, str>,
        /// Opaque to the relay (SDP, ICE candidates, app data).
        data: D,
    },
    /// Deliver `data` to every other peer of the room.
    Broadcast {
        /// Opaque to the relay.
        data: D,
    },
    /// Leave the room; the connection stays open and may join again.
    Leave,
    /// Application-level round-trip probe; answered by [`ServerMessage::Pong`].
    Ping,
}

/// The body of a `join` message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Join<'a, D> {
    /// Room name, see [`is_valid_room`].
    #[serde(borrow)]
    pub room: Cow<'a, str>,
    /// Display name shown to the other peers (a verified token's `name` wins).
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub name: Option<Cow<'a, str>>,
    /// App data shown to the other peers; must be a JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<D>,
    /// A JWT when the relay requires one (may also be given as `?token=` on `/ws`).
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub token: Option<Cow<'a, str>>,
    /// A `resumeToken` from an earlier `welcome`: come back as the same peer.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub resume: Option<Cow<'a, str>>,
}

/// Relay → client.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage<'a, D> {
    /// The answer to a successful `join`.
    Welcome(#[serde(borrow)] Welcome<'a, D>),
    /// Another peer entered the room.
    #[serde(rename_all = "camelCase")]
    PeerJoined {
        /// Who.
        #[serde(borrow)]
        peer: PeerInfo<'a, D>,
    },
    /// A peer is gone from the room.
    #[serde(rename_all = "camelCase")]
    PeerLeft {
        /// Who.
        #[serde(borrow)]
        peer_id: Cow<'a, str>,
        /// Why: it left, or its connection was lost and not resumed in time.
        reason: LeaveReason,
    },
    /// A `signal` from another peer of the room.
    Signal {
        /// The sender, stamped by the relay (never taken from the client).
        #[serde(borrow)]
        from: Cow<'a, str>,
        /// The sender's payload, byte for byte.
        data: D,
    },
    /// A `broadcast` from another peer of the room.
    Broadcast {
        /// The sender, stamped by the relay.
        #[serde(borrow)]
        from: Cow<'a, str>,
        /// The sender's payload, byte for byte.
        data: D,
    },
    /// Something the client sent was refused (or, for `unauthorized`, the connection
    /// is about to close).
    Error {
        /// Stable, machine-readable.
        code: ErrorCode,
        /// For humans: what happened and what to do.
        #[serde(borrow)]
        message: Cow<'a, str>,
        /// The `id` of the message that caused it, when it had one.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<MessageId>,
    },
    /// The relay is shutting down; reconnect (and resume) after the given delay.
    #[serde(rename_all = "camelCase")]
    Shutdown {
        /// Suggested delay before reconnecting, in milliseconds.
        reconnect_in_ms: u64,
    },
    /// The answer to `ping`.
    Pong,
}

/// The body of a `welcome` message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Welcome<'a, D> {
    /// This connection's peer id, assigned by the relay (or kept, on resume).
    #[serde(borrow)]
    pub peer_id: Cow<'a, str>,
    /// The room joined.
    #[serde(borrow)]
    pub room: Cow<'a, str>,
    /// The other peers already in the room.
    #[serde(borrow)]
    pub peers: Vec<PeerInfo<'a, D>>,
    /// ICE servers to give `RTCPeerConnection`, with fresh TURN credentials.
    pub ice_servers: Vec<IceServer>,
    /// Pass as `join.resume` after a reconnect to keep this peer id.
    #[serde(borrow)]
    pub resume_token: Cow<'a, str>,
    /// True when this join resumed a held session: the other peers never saw this peer
    /// leave and messages queued meanwhile follow this `welcome`.
    #[serde(default)]
    pub resumed: bool,
    /// The relay's limits, so a client can stay inside them.
    pub limits: Limits,
}

/// A peer as the others see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo<'a, D> {
    /// Relay-assigned peer id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Display name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub name: Option<Cow<'a, str>>,
    /// The peer's `join.meta`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<D>,
    /// The `sub` claim of the peer's verified token; absent without auth.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub user_id: Option<Cow<'a, str>>,
}

/// Why a peer left, in `peer-left`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// It sent `leave`, or closed its WebSocket cleanly (a tab closing does this).
    Left,
    /// Its connection dropped (or stopped answering pings) and it did not come back
    /// within the resume grace.
    Lost,
}

/// One `RTCIceServer` entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username (`"<expiry unix seconds>:<peerId>"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential (`base64(HMAC-SHA1(secret, username))`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Limits the relay enforces, sent in `welcome`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Largest text frame accepted; larger ones get `too-large`.
    pub max_message_bytes: u32,
    /// Sustained messages per second per connection (0 = unlimited).
    pub rate_limit: u32,
    /// Burst allowance on top of the rate.
    pub rate_burst: u32,
    /// Most peers in one room.
    pub room_capacity: u32,
    /// How long a dropped connection's peer is held for resume, in milliseconds.
    pub resume_grace_ms: u64,
    /// How often the relay pings, in milliseconds.
    pub ping_interval_ms: u64,
}

/// The stable error codes of `error` messages.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown `type`, missing or mistyped field.
    BadMessage,
    /// `signal`/`broadcast`/`leave` before `join`.
    NotJoined,
    /// `join` while already in a room (send `leave` first).
    AlreadyJoined,
    /// Room name empty, too long, or with characters outside `[A-Za-z0-9_.:-]`.
    InvalidRoom,
    /// The room is at capacity.
    RoomFull,
    /// `signal.to` names no peer of the sender's room.
    UnknownPeer,
    /// Missing, invalid or expired token, or a token for another room.
    Unauthorized,
    /// Too many messages; slow down.
    RateLimited,
    /// Message above `limits.maxMessageBytes` (or meta/name above their limits).
    TooLarge,
    /// The `resume` token is invalid, expired, or for another room.
    ResumeFailed,
    /// A relay-side failure; retrying may help.
    Internal,
    /// A code this version of the crate does not know (from a newer relay).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code the relay sends, in documentation order.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadMessage,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::InvalidRoom,
        ErrorCode::RoomFull,
        ErrorCode::UnknownPeer,
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
        ErrorCode::ResumeFailed,
        ErrorCode::Internal,
    ];

    /// The wire spelling, e.g. `"room-full"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad-message",
            ErrorCode::NotJoined => "not-joined",
            ErrorCode::AlreadyJoined => "already-joined",
            ErrorCode::InvalidRoom => "invalid-room",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::UnknownPeer => "unknown-peer",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::ResumeFailed => "resume-failed",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// WebSocket close codes the relay uses, beside the standard ones (1001 going away on
/// shutdown, 1008 policy violation for sustained flooding, 1009 for frames over the
/// hard cap).
pub mod close_code {
    /// Authentication failed (`unauthorized` was sent just before).
    pub const UNAUTHORIZED: u16 = 4401;
    /// Another connection resumed this peer; this one is stale.
    pub const REPLACED: u16 = 4409;
    /// The client stopped reading and its outgoing queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4429;
    /// Sent by a client that gives up on this connection to resume on a new one (it
    /// stopped hearing from the relay): the peer is held for the resume grace, as after
    /// a drop, not reported left as after other close frames.
    pub const RESUMING: u16 = 4000;
}
