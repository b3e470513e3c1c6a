//! Data channels: one owned `RTCDataChannel` with its listeners and a send queue.
//!
//! Backpressure: Chrome closes a channel whose send buffer passes ~16 MiB, so a
//! message is handed to the browser only while `bufferedAmount` is under
//! [`HIGH_WATER`]; the rest waits here and drains on `bufferedamountlow`
//! (<https://developer.mozilla.org/en-US/docs/Web/API/RTCDataChannel/bufferedamountlow_event>).
//! Messages sent before the channel opens wait here too.
//!
//! A stalled count: Chromium can leave `bufferedAmount` at the value of a burst sent
//! just after a channel the *remote* side created opened. The count does not fall,
//! `bufferedamountlow` never fires, and sometimes the bytes have not even left, until
//! the next `send` (`tests/chromium/stuck-buffered-amount.mjs` shows it without the
//! SDK). Measured on Chromium 156 with both cores loaded: 12 of 110 bursts of 40 MiB
//! stuck at exactly the first 4 MiB for as long as we waited (15 s); none of 40 after
//! a 200 ms pause; none of 110 on the sender's own channel. So while messages wait, a
//! [`STALL_MS`] watchdog looks at the count: each time it has not moved at all, the
//! next message is sent anyway (one send sets the count right), up to
//! [`FORCE_LIMIT`], far below Chrome's limit.

use crate::cell::RefCell;
use crate::error::{Code, Error};
use crate::js::{self, Listener, Timer};
use crate::prelude::*;
use crate::room::Inner;
use alloc::collections::VecDeque;
use alloc::rc::{Rc, Weak};
use core::cell::Cell;
use wasm_bindgen::JsValue;
use web_sys::RtcDataChannel;

/// Hand no more to the browser while this much is buffered.
pub const HIGH_WATER: u32 = 4 * 1024 * 1024;
/// `bufferedamountlow` fires when the buffer falls to this.
pub const LOW_WATER: u32 = 1024 * 1024;
/// Most bytes waiting in the SDK's own queue per channel before `send` refuses.
pub const MAX_QUEUED: usize = 64 * 1024 * 1024;
/// How long a full buffer may show no progress at all before the watchdog acts.
pub const STALL_MS: u32 = 500;
/// The watchdog never sends past this much buffered (Chrome closes a channel at ~16 MiB).
pub const FORCE_LIMIT: u32 = HIGH_WATER + 1024 * 1024;

/// Options of `createChannel`.
#[derive(Clone, Default)]
pub struct ChannelOptions {
    /// Deliver in order (default true).
    pub ordered: Option<bool>,
    /// Give up on a message after this many retransmissions (unreliable mode).
    pub max_retransmits: Option<u16>,
    /// Give up on a message after this many milliseconds (unreliable mode).
    pub max_packet_life_time: Option<u16>,
}

impl ChannelOptions {
    /// The `RTCDataChannelInit` for these options (a plain object).
    pub fn to_init(&self) -> JsValue {
        let init = js::object(&[]);
        if let Some(o) = self.ordered {
            js::set(&init, "ordered", &o.into());
        }
        if let Some(n) = self.max_retransmits {
            js::set(&init, "maxRetransmits", &n.into());
        }
        if let Some(ms) = self.max_packet_life_time {
            js::set(&init, "maxPacketLifeTime", &ms.into());
        }
        init
    }
}

/// A message waiting to be sent.
pub enum Payload {
    Text(String),
    Binary(js_sys::Uint8Array),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Text(s) => s.len(),
            Payload::Binary(b) => b.length() as usize,
        }
    }
}

struct State {
    dc: RtcDataChannel,
    queue: RefCell<VecDeque<Payload>>,
    queued_bytes: Cell<usize>,
    /// Armed while messages wait for the buffer to drain (see the module's doc).
    watchdog: RefCell<Option<Timer>>,
}

impl State {
    /// Hands queued messages to the browser while under the high-water mark. `stalled`:
    /// the watchdog saw the count stay at this value, so one message goes regardless.
    fn drain(self: &Rc<Self>, stalled: Option<f64>) {
        if js::get_string(&self.dc, "readyState").as_deref() != Some("open") {
            return;
        }
        let mut force = stalled;
        let mut sent = false;
        loop {
            let buffered = self.buffered();
            let len = match self.queue.borrow().front() {
                Some(next) => next.len() as f64,
                None => {
                    self.watchdog.borrow_mut().take();
                    return;
                }
            };
            let forced = force == Some(buffered) && buffered + len <= f64::from(FORCE_LIMIT);
            if buffered >= f64::from(HIGH_WATER) && !forced {
                // A new watchdog once the count has moved; a `send` into a full buffer
                // keeps the one already waiting.
                if sent || self.watchdog.borrow().is_none() {
                    self.arm_watchdog(buffered);
                }
                return;
            }
            force = None;
            sent = true;
            let Some(next) = self.queue.borrow_mut().pop_front() else {
                return;
            };
            self.queued_bytes.set(self.queued_bytes.get() - next.len());
            let result = match &next {
                Payload::Text(s) => js::send(&self.dc, &JsValue::from_str(s)),
                Payload::Binary(b) => js::send(&self.dc, b),
            };
            if let Err(e) = result {
                js::warn(&js::cat(&[
                    "data channel '",
                    &label(&self.dc),
                    "' refused a message: ",
                    &crate::error::describe(&e),
                ]));
            }
        }
    }

    fn buffered(&self) -> f64 {
        js::get_f64(&self.dc, "bufferedAmount").unwrap_or(0.0)
    }

    /// After [`STALL_MS`], drains again, forcing one message if the count is still
    /// `buffered`. `bufferedamountlow` disarms it (the count moved).
    fn arm_watchdog(self: &Rc<Self>, buffered: f64) {
        let weak = Rc::downgrade(self);
        let timer = Timer::new(STALL_MS, move |_| {
            if let Some(s) = weak.upgrade() {
                let stalled = s.buffered() == buffered;
                s.watchdog.borrow_mut().take();
                s.drain(stalled.then_some(buffered));
            }
        });
        *self.watchdog.borrow_mut() = Some(timer);
    }
}

/// One data channel to one peer.
pub struct Channel {
    /// Its label.
    pub label: String,
    /// We opened it (rather than adopting the remote's).
    pub ours: bool,
    state: Rc<State>,
    _listener: Listener,
}

impl Channel {
    /// Wraps `dc` (ours or adopted from the remote side); its messages are emitted as
    /// `message` events from `peer`, and `on_open` runs when it opens.
    pub fn new(
        dc: RtcDataChannel,
        ours: bool,
        peer: &str,
        room: Weak<Inner>,
        on_open: impl Fn() + 'static,
    ) -> Channel {
        js::set(&dc, "binaryType", &"arraybuffer".into());
        js::set(&dc, "bufferedAmountLowThreshold", &LOW_WATER.into());
        let state = Rc::new(State {
            dc,
            queue: RefCell::default(),
            queued_bytes: Cell::new(0),
            watchdog: RefCell::default(),
        });
        let name = label(&state.dc);
        let from = peer.to_owned();
        let weak = Rc::downgrade(&state);
        let listener = Listener::new(
            &state.dc,
            &["message", "open", "bufferedamountlow"],
            move |e| {
                let kind = js::event_type(&e);
                if kind != "message" {
                    // Open, or the buffer drained: send what waits.
                    if let Some(s) = weak.upgrade() {
                        s.watchdog.borrow_mut().take();
                        s.drain(None);
                    }
                    if kind == "open" {
                        on_open();
                    }
                    return;
                }
                let Some(room) = room.upgrade() else { return };
                room.emit(
                    "message",
                    &js::object(&[
                        ("from", JsValue::from_str(&from)),
                        ("channel", JsValue::from_str(&name)),
                        ("data", js::get(&e, "data")),
                    ]),
                );
            },
        );
        Channel {
            label: label(&state.dc),
            ours,
            state,
            _listener: listener,
        }
    }

    /// Whether the channel is open.
    pub fn is_open(&self) -> bool {
        js::get_string(&self.state.dc, "readyState").as_deref() == Some("open")
    }

    /// Whether the channel is closing or closed (it will never carry a message again).
    pub fn is_closed(&self) -> bool {
        matches!(
            js::get_string(&self.state.dc, "readyState").as_deref(),
            Some("closing" | "closed")
        )
    }

    /// Queues `payload` and sends what the buffer allows. Fails only when the SDK's
    /// own queue is full (the receiver is far slower than the sender).
    pub fn send(&self, payload: Payload) -> Result<(), usize> {
        let queued = self.state.queued_bytes.get() + payload.len();
        if queued > MAX_QUEUED {
            return Err(self.state.queued_bytes.get());
        }
        self.state.queued_bytes.set(queued);
        self.state.queue.borrow_mut().push_back(payload);
        self.state.drain(None);
        Ok(())
    }

    /// Closes the channel.
    pub fn close(&self) {
        js::close(&self.state.dc, None);
    }
}

fn label(dc: &RtcDataChannel) -> String {
    js::get_string(dc, "label").unwrap_or_default()
}

/// Parses `createChannel` options from JavaScript, refusing what `createDataChannel`
/// would throw on (a `TypeError` by
/// <https://w3c.github.io/webrtc-pc/#dom-peerconnection-createdatachannel>): the
/// options are stored and used for every future peer, so a bad value must be caught
/// here, once, with a message, rather than by the browser on each peer.
pub fn parse_options(options: &JsValue) -> Result<ChannelOptions, Error> {
    if !options.is_undefined() && !options.is_null() && !options.is_object() {
        return Err(invalid(
            "the options must be an object (ChannelOptions) or left out",
        ));
    }
    let ordered = js::get(options, "ordered");
    if !ordered.is_undefined() && ordered.as_bool().is_none() {
        return Err(invalid("ordered must be true or false"));
    }
    let max_retransmits = whole_u16(options, "maxRetransmits")?;
    let max_packet_life_time = whole_u16(options, "maxPacketLifeTime")?;
    if max_retransmits.is_some() && max_packet_life_time.is_some() {
        return Err(invalid(
            "maxRetransmits and maxPacketLifeTime cannot both be set (a channel gives up on a \
             message either after a number of retransmissions or after a time); pass only one",
        ));
    }
    Ok(ChannelOptions {
        ordered: ordered.as_bool(),
        max_retransmits,
        max_packet_life_time,
    })
}

/// `options[key]` as WebIDL's `[EnforceRange] unsigned short`: absent, or a whole
/// number from 0 to 65535.
fn whole_u16(options: &JsValue, key: &'static str) -> Result<Option<u16>, Error> {
    let v = js::get(options, key);
    if v.is_undefined() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if (0.0..=65535.0).contains(&n) && n == f64::from(n as u16) => Ok(Some(n as u16)),
        _ => Err(invalid(js::cat(&[
            key,
            " must be a whole number from 0 to 65535, or left out; got ",
            &js::stringify(&v).unwrap_or_else(|| String::from("a value of another type")),
        ]))),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Code::InvalidArgument, message)
}
