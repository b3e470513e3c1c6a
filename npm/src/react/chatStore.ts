'use client';
// Chat history per room. Messages travel as JSON `{ text, at }` on the channel
// `meshwire.chat`; the sender is the SDK's `from` (the peer id, which peers cannot forge
// on their own connection), its display name comes from `room.peers`.
import type { Room } from "../index.js";
import { perRoom, Store } from "./store.js";
import { openChannel } from "./useDataChannel.js";

export const CHAT_CHANNEL = "meshwire.chat";
/** The most messages kept: a long call must not grow memory without end. */
const MAX_MESSAGES = 500;
/** The longest message accepted, in UTF-16 units. */
export const MAX_CHAT_TEXT = 16 * 1024;

export interface ChatMessage {
  /** Unique within this page. */
  id: string;
  /** The sender's peer id (ours for our own messages). */
  from: string;
  /** The sender's display name when known. */
  name?: string;
  text: string;
  /** The sender's clock, ms since the epoch. */
  at: number;
  /** Sent by us. */
  local: boolean;
}

export const NO_MESSAGES: readonly ChatMessage[] = Object.freeze([]);

let counter = 0;

class Chat extends Store<readonly ChatMessage[]> {
  private opened = false;

  constructor(private readonly room: Room) {
    super(NO_MESSAGES);
    // Listening needs no channel of our own: the SDK takes the channels other peers
    // open. So a room joined through the hooks records chat from the join on
    // (`useRoom`), and opens the channel only when something here uses chat.
    room.on("message", (e) => {
      if (e.channel !== CHAT_CHANNEL || typeof e.data !== "string") return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(e.data);
      } catch {
        return; // Not ours to show: a peer sent something that is not chat.
      }
      const { text, at } = (parsed ?? {}) as { text?: unknown; at?: unknown };
      if (typeof text !== "string" || text.length > MAX_CHAT_TEXT) return;
      const name = room.peers.find((p) => p.id === e.from)?.name;
      this.push({ id: `m${++counter}`, from: e.from, name, text, at: typeof at === "number" ? at : Date.now(), local: false });
    });
  }

  /** Opens the chat channel to every peer (once), so that we can send. */
  open(): void {
    if (this.opened) return;
    this.opened = true;
    try {
      openChannel(this.room, CHAT_CHANNEL);
    } catch (e) {
      // A room already left refuses new channels; the history stays readable, and
      // `send` reports the same error with its code.
      console.warn("meshwire: the chat channel could not be opened:", e);
    }
  }

  send(text: string): void {
    this.open();
    if (text.length > MAX_CHAT_TEXT) {
      throw Object.assign(new Error(`a chat message is at most ${MAX_CHAT_TEXT} characters; send long text as a file`), {
        code: "message-too-large",
      });
    }
    const at = Date.now();
    this.room.send(JSON.stringify({ text, at }), { channel: CHAT_CHANNEL });
    this.push({ id: `m${++counter}`, from: this.room.peerId, text, at, local: true });
  }

  private push(m: ChatMessage): void {
    const next = [...this.snapshot, m];
    this.publish(next.length > MAX_MESSAGES ? next.slice(next.length - MAX_MESSAGES) : next);
  }
}

/** The room's chat: made when `useRoom` joins (or on first use of a room joined elsewhere). */
export const chat = perRoom((room) => new Chat(room));
