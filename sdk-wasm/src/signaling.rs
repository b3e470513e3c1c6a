//! The relay socket: one `WebSocket` and the listeners it owns. Reconnecting, joining
//! and resuming are the room's business (`room.rs`); this is only the transport.

use crate::error::{Code, Error};
use gloo_events::EventListener;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// What the socket reports.
pub enum SocketEvent {
    Open,
    Message(String),
    /// The socket closed (or failed to open: browsers report that as a close, 1006).
    Closed {
        code: u16,
        reason: String,
    },
}

/// An open (or opening) relay socket. Dropping it removes its listeners and closes it.
pub struct Socket {
    ws: WebSocket,
    _listeners: [EventListener; 3],
}

impl Socket {
    /// Opens `url`; `on_event` gets every event of this socket.
    pub fn open(url: &str, on_event: impl Fn(SocketEvent) + 'static) -> Result<Socket, Error> {
        let ws = WebSocket::new(url).map_err(|e| {
            Error::js(
                Code::InvalidArgument,
                &format!("cannot open a WebSocket to {url}"),
                &e,
            )
        })?;
        let on_event = std::rc::Rc::new(on_event);
        let f = on_event.clone();
        let open = EventListener::new(&ws, "open", move |_| f(SocketEvent::Open));
        let f = on_event.clone();
        let message = EventListener::new(&ws, "message", move |e| {
            let text = e
                .dyn_ref::<MessageEvent>()
                .and_then(|e| e.data().as_string());
            // The relay sends only text frames; anything else is ignored.
            if let Some(text) = text {
                f(SocketEvent::Message(text));
            }
        });
        let f = on_event;
        let close = EventListener::new(&ws, "close", move |e| {
            let (code, reason) = e
                .dyn_ref::<CloseEvent>()
                .map_or((1006, String::new()), |c| (c.code(), c.reason()));
            f(SocketEvent::Closed { code, reason });
        });
        Ok(Socket {
            ws,
            _listeners: [open, message, close],
        })
    }

    /// Sends one text frame; a socket that is not open drops it (the room keeps frames
    /// in its outbox until it is welcomed, so this only happens while closing).
    pub fn send(&self, text: &str) {
        let _ = self.ws.send_with_str(text);
    }

    /// Closes with 1000 (a clean close: the relay reports `peer-left` at once).
    pub fn close(&self) {
        let _ = self.ws.close_with_code(1000);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Listeners go with the struct; make sure the connection does too.
        let _ = self.ws.close();
    }
}
