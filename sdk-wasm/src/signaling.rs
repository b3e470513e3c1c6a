//! The relay socket: one `WebSocket` and the listener it owns. Reconnecting, joining
//! and resuming are the room's business (`room.rs`); this is only the transport.

use crate::error::{Code, Error};
use crate::js::{self, Listener};
use crate::prelude::*;
use meshwire_protocol::close_code;
use wasm_bindgen::JsValue;
use web_sys::WebSocket;

/// What the socket reports.
pub enum SocketEvent {
    Open,
    /// A text frame, still a JavaScript string (it is parsed there, see `wire`).
    Message(JsValue),
    /// The socket closed (or failed to open: browsers report that as a close, 1006).
    Closed {
        code: u16,
        reason: String,
    },
}

/// An open (or opening) relay socket. Dropping it removes its listener and closes it.
pub struct Socket {
    ws: WebSocket,
    _listener: Listener,
}

impl Socket {
    /// Opens `url`; `on_event` gets every event of this socket.
    pub fn open(url: &str, on_event: impl Fn(SocketEvent) + 'static) -> Result<Socket, Error> {
        let ws = WebSocket::new(url).map_err(|e| {
            Error::js(
                Code::InvalidArgument,
                &js::cat(&["cannot open a WebSocket to ", url]),
                &e,
            )
        })?;
        let listener = Listener::new(&ws, &["open", "message", "close"], move |e: JsValue| {
            match js::event_type(&e).as_str() {
                "open" => on_event(SocketEvent::Open),
                "message" => {
                    // The relay sends only text frames; anything else is ignored.
                    let text = js::get(&e, "data");
                    if text.is_string() {
                        on_event(SocketEvent::Message(text));
                    }
                }
                _ => {
                    let code = js::get_f64(&e, "code").map_or(1006, |c| c as u16);
                    let reason = js::get_string(&e, "reason").unwrap_or_default();
                    on_event(SocketEvent::Closed { code, reason });
                }
            }
        });
        Ok(Socket {
            ws,
            _listener: listener,
        })
    }

    /// Sends one text frame; a socket that is not open drops it (the room keeps frames
    /// in its outbox until it is welcomed, so this only happens while closing).
    pub fn send(&self, text: &str) {
        let _ = js::send(&self.ws, &JsValue::from_str(text));
    }

    /// Closes with 1000 (a clean close: the relay reports `peer-left` at once).
    pub fn close(&self) {
        js::close(&self.ws, Some(1000));
    }
}

impl Drop for Socket {
    /// A socket dropped without `close` is one the room gives up on to reconnect (no
    /// welcome in time, or silent): `RESUMING` tells the relay to hold this peer for
    /// its resume rather than report it left, as a bare close frame would.
    fn drop(&mut self) {
        // The listener goes with the struct; make sure the connection does too.
        js::close(&self.ws, Some(close_code::RESUMING));
    }
}
