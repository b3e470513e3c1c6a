'use client';
import { useCallback, useSyncExternalStore } from "react";
import type { Room } from "../index.js";
import { useResolvedRoom } from "./internal.js";
import { chat, NO_MESSAGES, type ChatMessage } from "./chatStore.js";

export interface UseChatResult {
  /** Every message since joining, ours included, oldest first. */
  messages: readonly ChatMessage[];
  /** Sends `text` to everyone in the room. */
  send: (text: string) => void;
}

const noSubscribe = () => () => undefined;
const none = () => NO_MESSAGES;

/**
 * Room chat over its own data channel (peer to peer, encrypted like the media). The
 * history is kept per room, so components that mount later see it too.
 */
export function useChat(room?: Room | null): UseChatResult {
  const r = useResolvedRoom(room);
  const store = r ? chat(r) : null;
  const messages = useSyncExternalStore(store?.subscribe ?? noSubscribe, store?.getSnapshot ?? none, none);
  const send = useCallback(
    (text: string) => {
      if (!store) throw Object.assign(new Error("not in a room yet: wait for useRoom's state to be connected"), { code: "not-joined" });
      store.send(text);
    },
    [store],
  );
  return { messages, send };
}
