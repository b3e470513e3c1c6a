//! Errors the SDK reports to JavaScript: a stable `code` and a message that says what
//! happened and what to do. Thrown errors are real `Error` objects with a `code`
//! property; `error` events carry `{ code, message }`.

use crate::prelude::*;
use wasm_bindgen::JsValue;

/// Stable error codes (documented in docs/sdk.md). Relay error codes (`room-full`,
/// `unauthorized`, …) are passed through unchanged.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// The relay could not be reached or closed the connection during `join`.
    SignalingFailed,
    /// An argument was missing or of the wrong shape.
    InvalidArgument,
    /// The room was left; the call needs a joined room.
    NotJoined,
    /// No peer with that id is in the room.
    UnknownPeer,
    /// The data channel to that peer is not open (yet).
    ChannelNotOpen,
    /// The message is larger than the connection's negotiated maximum.
    MessageTooLarge,
    /// Camera, microphone or screen could not be opened (denied, missing, in use).
    MediaFailed,
    /// A peer connection could not be re-established within the reconnect timeout.
    PeerConnectionFailed,
    /// The browser has no WebRTC (or the code runs outside a browser, e.g. during SSR).
    Unsupported,
    /// A browser API failed unexpectedly.
    Internal,
    /// A received file's SHA-256 differs from the sender's (the file is not delivered).
    IntegrityFailed,
    /// A file transfer was cancelled (by either side: the message says which).
    TransferCancelled,
    /// The receiver rejected a file transfer.
    TransferRejected,
    /// A file transfer stopped: its channel closed, the peer left, or the file could
    /// not be read.
    TransferFailed,
}

impl Code {
    /// The code's wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::SignalingFailed => "signaling-failed",
            Code::InvalidArgument => "invalid-argument",
            Code::NotJoined => "not-joined",
            Code::UnknownPeer => "unknown-peer",
            Code::ChannelNotOpen => "channel-not-open",
            Code::MessageTooLarge => "message-too-large",
            Code::MediaFailed => "media-failed",
            Code::PeerConnectionFailed => "peer-connection-failed",
            Code::Unsupported => "unsupported",
            Code::Internal => "internal",
            Code::IntegrityFailed => "integrity-failed",
            Code::TransferCancelled => "transfer-cancelled",
            Code::TransferRejected => "transfer-rejected",
            Code::TransferFailed => "transfer-failed",
        }
    }
}

/// An SDK error: a code (ours or the relay's) and a human message.
#[derive(Clone)]
pub struct Error {
    /// Stable, machine-readable.
    pub code: &'static str,
    /// What happened and what to do.
    pub message: String,
}

impl Error {
    /// An error with one of the SDK's own codes.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code: code.as_str(),
            message: message.into(),
        }
    }

    /// An error whose code came from the relay (`code` is one of
    /// [`ErrorCode::as_str`](meshwire_protocol::ErrorCode::as_str)).
    pub fn relay(code: &'static str, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// A failed browser call, keeping the browser's own message.
    pub fn js(code: Code, context: &str, err: &JsValue) -> Self {
        Error::new(code, crate::js::cat(&[context, ": ", &describe(err)]))
    }

    /// `{ code, message }` for an `error` event.
    pub fn to_event(&self) -> JsValue {
        crate::js::object(&[
            ("code", JsValue::from_str(self.code)),
            ("message", JsValue::from_str(&self.message)),
        ])
    }
}

impl From<Error> for JsValue {
    /// A JavaScript `Error` with a `code` property, for throwing.
    fn from(e: Error) -> JsValue {
        let err = js_sys::Error::new(&e.message);
        crate::js::set(&err, "code", &JsValue::from_str(e.code));
        err.into()
    }
}

/// The message of a thrown JavaScript value (an `Error`'s message, or its string form).
pub fn describe(err: &JsValue) -> String {
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        let name = crate::js::get_string(e, "name").unwrap_or_default();
        let message = crate::js::get_string(e, "message").unwrap_or_default();
        return crate::js::cat(&[&name, ": ", &message]);
    }
    err.as_string()
        .unwrap_or_else(|| String::from("unknown error"))
}

use wasm_bindgen::JsCast as _;

/// Shorthand for SDK results.
pub type Result<T> = core::result::Result<T, Error>;
