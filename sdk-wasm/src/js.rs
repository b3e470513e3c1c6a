//! Small JavaScript helpers, the browser bindings web-sys lacks, and the two pieces of
//! plumbing every module needs: an event [`Listener`] and a [`Timer`], both owned by
//! the struct they serve and undone on drop.
//!
//! Size notes (docs/benchmarks.md, "Reading the bundle number"): strings are built by
//! concatenation ([`cat`]) rather than `format!`, numbers are printed by [`num`], and
//! quoting goes through `JSON.stringify`, so the wasm carries no `core::fmt` float or
//! `Debug` machinery. Every closure handed to JavaScript has the one type
//! `Closure<dyn FnMut(JsValue)>`, so the glue has one invoke shim for all of them.

use crate::prelude::*;
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `RTCPeerConnection` methods missing from web-sys 0.3.107.
    #[wasm_bindgen(js_name = RTCPeerConnection)]
    pub type PeerConnectionExt;

    /// Parameterless `setLocalDescription()`: creates the right offer or answer for the
    /// current signaling state, or rolls back — what perfect negotiation relies on
    /// (<https://w3c.github.io/webrtc-pc/#dom-peerconnection-setlocaldescription>).
    #[wasm_bindgen(method, js_name = setLocalDescription)]
    pub fn set_local_description_auto(this: &PeerConnectionExt) -> js_sys::Promise;

    /// `restartIce()`: the next negotiation gathers new ICE credentials
    /// (<https://w3c.github.io/webrtc-pc/#dom-rtcpeerconnection-restartice>).
    #[wasm_bindgen(method, js_name = restartIce)]
    pub fn restart_ice(this: &PeerConnectionExt);

    /// `createDataChannel(label, init)`, with `catch`: it throws on bad options, a
    /// closed connection or no free channel ids
    /// (<https://w3c.github.io/webrtc-pc/#dom-peerconnection-createdatachannel>), and an
    /// exception that unwinds through wasm skips every destructor, leaving `RefCell`
    /// borrows held for good (web-sys binds it without `catch`).
    #[wasm_bindgen(method, catch, js_name = createDataChannel)]
    pub fn create_data_channel(
        this: &PeerConnectionExt,
        label: &str,
        init: &JsValue,
    ) -> Result<web_sys::RtcDataChannel, JsValue>;

    /// Any browser object. These few methods are bound once for every object that has
    /// them (WebSocket, RTCPeerConnection, RTCDataChannel, tracks), where web-sys binds
    /// one import per class and overload. `addEventListener` with a function argument
    /// cannot throw, so it has no try/catch wrapper.
    type Target;
    #[wasm_bindgen(method, js_name = addEventListener)]
    fn add_listener(this: &Target, name: &str, f: &Function);
    #[wasm_bindgen(method, js_name = removeEventListener)]
    fn remove_listener(this: &Target, name: &str, f: &Function);
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send_any(this: &Target, data: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_name = close)]
    fn close_any(this: &Target, code: Option<u16>) -> Result<(), JsValue>;

    #[wasm_bindgen(js_name = setTimeout)]
    pub fn set_timeout(f: &Function, ms: u32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);

    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(message: &str);

    /// The global object (`window` in a page).
    #[wasm_bindgen(thread_local_v2, js_name = globalThis)]
    static GLOBAL_THIS: JsValue;

    /// `JSON.parse` of a JavaScript string as is (js-sys takes a `&str`, which would
    /// copy every relay frame into wasm memory and back).
    #[wasm_bindgen(js_namespace = JSON, js_name = parse, catch)]
    pub fn parse(text: &JsValue) -> Result<JsValue, JsValue>;
}

/// The one closure type handed to JavaScript (event handlers and timers).
type Callback = Closure<dyn FnMut(JsValue)>;

/// Event listeners on one target, sharing one handler (which can tell the events apart
/// by [`event_type`]). Removed from the target when dropped.
pub struct Listener {
    target: JsValue,
    names: &'static [&'static str],
    callback: Callback,
}

impl Listener {
    /// Listens to each of `names` on `target` with `f`.
    pub fn new(
        target: &JsValue,
        names: &'static [&'static str],
        f: impl FnMut(JsValue) + 'static,
    ) -> Listener {
        let callback: Callback = Closure::new(f);
        let t: &Target = target.unchecked_ref();
        for name in names {
            t.add_listener(name, callback.as_ref().unchecked_ref());
        }
        Listener {
            target: target.clone(),
            names,
            callback,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let t: &Target = self.target.unchecked_ref();
        for name in self.names {
            t.remove_listener(name, self.callback.as_ref().unchecked_ref());
        }
    }
}

/// A pending `setTimeout`; dropping it cancels it.
pub struct Timer {
    id: JsValue,
    _callback: Callback,
}

impl Timer {
    /// Runs `f` once after `ms` milliseconds, unless the timer is dropped first.
    pub fn new(ms: u32, f: impl FnMut(JsValue) + 'static) -> Timer {
        let callback: Callback = Closure::new(f);
        let id = set_timeout(callback.as_ref().unchecked_ref(), ms);
        Timer {
            id,
            _callback: callback,
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // Clearing a timer that already fired is a no-op.
        clear_timeout(&self.id);
    }
}

/// `target.send(data)` (a WebSocket or a data channel).
pub fn send(target: &JsValue, data: &JsValue) -> Result<(), JsValue> {
    target.unchecked_ref::<Target>().send_any(data)
}

/// `target.close()`, or `close(code)` for a WebSocket; a failure is ignored (closing
/// what is closed is a no-op).
pub fn close(target: &JsValue, code: Option<u16>) {
    let _ = target.unchecked_ref::<Target>().close_any(code);
}

/// `globalThis[key]`.
pub fn global(key: &str) -> JsValue {
    GLOBAL_THIS.with(|g| get(g, key))
}

/// An event's `type`.
pub fn event_type(event: &JsValue) -> String {
    get_string(event, "type").unwrap_or_default()
}

/// A plain object from key/value pairs.
pub fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        set(&o, k, v);
    }
    o.into()
}

/// `target[key] = value`, ignoring failure (only frozen objects refuse, and ours are not).
pub fn set(target: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// `target[key]`, or `undefined`.
pub fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `target[key]` as a string, if it is one.
pub fn get_string(target: &JsValue, key: &str) -> Option<String> {
    get(target, key).as_string()
}

/// `target[key]` as a boolean, if it is one.
pub fn get_bool(target: &JsValue, key: &str) -> Option<bool> {
    get(target, key).as_bool()
}

/// `target[key]` as a number, if it is one.
pub fn get_f64(target: &JsValue, key: &str) -> Option<f64> {
    get(target, key).as_f64()
}

/// The parts, concatenated (what `format!` would do, without `core::fmt`).
pub fn cat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// `s` as a quoted string literal (`JSON.stringify`), for messages that name a value.
pub fn quote(s: &str) -> String {
    stringify(&JsValue::from_str(s)).unwrap_or_default()
}

/// A non-negative whole number in decimal (fractions are dropped: the SDK only prints
/// counts, sizes and milliseconds).
pub fn num(n: f64) -> String {
    let mut n = if n.is_finite() && n > 0.0 {
        n as u64
    } else {
        0
    };
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    digits
        .get(i..)
        .map(|d| d.iter().map(|&b| char::from(b)).collect())
        .unwrap_or_default()
}

/// `JSON.stringify(value)`, if it yields a string (not for `undefined`, functions,
/// cycles or BigInts).
pub fn stringify(value: &JsValue) -> Option<String> {
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
}

/// Logs a warning to the console (for failures in event handlers and background work
/// that have no caller to report to).
pub fn warn(message: &str) {
    console_warn(&cat(&["meshwire: ", message]));
}
