//! Small JavaScript helpers and the browser bindings web-sys lacks.

use js_sys::{Object, Reflect};
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

/// Logs a warning to the console (for failures in event handlers and background work
/// that have no caller to report to).
pub fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(&format!("meshwire: {message}")));
}
