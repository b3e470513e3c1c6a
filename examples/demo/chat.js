// Chat over the data channel `meshwire.chat`, in the same format as the React hooks
// (npm/src/react/chatStore.ts): JSON `{ text, at }`, sender = the SDK's `from`.
import { el, toastError } from "./ui.js";

export const CHAT_CHANNEL = "meshwire.chat";
/** Same limit as the React store, so both sides accept what either sends. */
const MAX_TEXT = 16 * 1024;

export class Chat {
  /**
   * @param {object} o
   * @param {HTMLOListElement} o.feed   where messages, notices and transfers go
   * @param {(id: string) => string} o.nameOf
   * @param {() => void} o.onIncoming  called for each message from someone else (unread badge)
   */
  constructor({ feed, nameOf, onIncoming }) {
    this.feed = feed;
    this.nameOf = nameOf;
    this.onIncoming = onIncoming;
    this.room = null;
    this.off = null;
  }

  attach(room) {
    this.room = room;
    // Both sides may create the same label; the SDK opens it to every current and future peer.
    room.createChannel(CHAT_CHANNEL);
    this.off = room.on("message", ({ from, channel, data }) => {
      if (channel !== CHAT_CHANNEL || typeof data !== "string") return;
      let msg;
      try { msg = JSON.parse(data); } catch { return; } // not chat: ignore rather than show garbage
      if (typeof msg?.text !== "string" || msg.text.length > MAX_TEXT) return;
      this.show({ from, text: msg.text, at: typeof msg.at === "number" ? msg.at : Date.now(), mine: false });
      this.onIncoming?.();
    });
  }

  detach() {
    this.off?.();
    this.off = null;
    this.room = null;
  }

  /** Sends to everyone connected; returns false (and says why) when it could not. */
  send(text) {
    text = text.trim();
    if (!text || !this.room) return false;
    if (text.length > MAX_TEXT) {
      this.notice(`Messages are at most ${MAX_TEXT} characters — send long text as a file.`, "warn");
      return false;
    }
    const at = Date.now();
    try {
      this.room.send(JSON.stringify({ text, at }), { channel: CHAT_CHANNEL });
    } catch (err) {
      toastError("Message not sent", err);
      return false;
    }
    this.show({ from: this.room.peerId, text, at, mine: true });
    if (!this.room.peers.some((p) => p.connectionState === "connected")) {
      this.notice("Nobody else is connected yet — share the invite link.", "warn");
    }
    return true;
  }

  show({ from, text, at, mine }) {
    const time = new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    this.append(el("li", { class: `msg${mine ? " mine" : ""}`, "data-testid": "chat-message" },
      el("div", { class: "meta" }, el("b", { text: mine ? "You" : this.nameOf(from) }), el("time", { datetime: new Date(at).toISOString(), text: time })),
      el("div", { class: "bubble", text })));
  }

  /** A system line: joins, leaves, warnings. */
  notice(text, kind = "") {
    this.append(el("li", { class: `notice ${kind}`, text }));
  }

  /** Appends and keeps the newest in view unless the reader scrolled up to read history. */
  append(node) {
    const f = this.feed;
    const atBottom = f.scrollHeight - f.scrollTop - f.clientHeight < 40;
    document.getElementById("feed-empty")?.remove();
    f.append(node);
    if (atBottom) f.scrollTop = f.scrollHeight;
  }

  clear() {
    this.feed.replaceChildren();
  }
}
