//! The room's event emitter, kept in JavaScript: handlers are JS functions in a
//! `Map<event, Set<handler>>`, and `on` returns an unsubscribe function made in JS, so
//! no Rust closure is created per subscription and nothing can leak. A handler that
//! throws is logged and does not stop the others.

use wasm_bindgen::prelude::*;

/// Every event name a room emits (`RoomEvents` in the typings).
pub const EVENTS: [&str; 16] = [
    "peer-joined",
    "peer-left",
    "peer-connected",
    "peer-disconnected",
    "connection-state",
    "track",
    "track-removed",
    "mute",
    "message",
    "broadcast",
    "signaling",
    "error",
    "file",
    "quality",
    "speaking",
    "devices-changed",
];

#[wasm_bindgen(inline_js = r#"
export class Emitter {
  constructor() { this.handlers = new Map(); }
  on(event, handler) {
    let set = this.handlers.get(event);
    if (!set) { set = new Set(); this.handlers.set(event, set); }
    set.add(handler);
    return () => { set.delete(handler); };
  }
  off(event, handler) { const set = this.handlers.get(event); if (set) set.delete(handler); }
  has(event) { const set = this.handlers.get(event); return !!set && set.size > 0; }
  emit(event, payload) {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try { handler(payload); } catch (err) { console.warn(`meshwire: a '${event}' handler threw`, err); }
    }
  }
  clear() { this.handlers.clear(); }
}
"#)]
extern "C" {
    /// Handlers by event name.
    pub type Emitter;

    #[wasm_bindgen(constructor)]
    pub fn new() -> Emitter;

    /// Adds `handler` (once, like `addEventListener`); returns its unsubscribe function.
    #[wasm_bindgen(method)]
    pub fn on(this: &Emitter, event: &str, handler: &js_sys::Function) -> js_sys::Function;

    /// Removes `handler` from `event`.
    #[wasm_bindgen(method)]
    pub fn off(this: &Emitter, event: &str, handler: &js_sys::Function);

    /// Whether anyone listens to `event`.
    #[wasm_bindgen(method)]
    pub fn has(this: &Emitter, event: &str) -> bool;

    /// Calls every handler of `event` with `payload`.
    #[wasm_bindgen(method)]
    pub fn emit(this: &Emitter, event: &str, payload: &JsValue);

    /// Drops every handler.
    #[wasm_bindgen(method)]
    pub fn clear(this: &Emitter);
}
