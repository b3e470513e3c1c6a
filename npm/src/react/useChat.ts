'use client';
import { useCallback, useEffect } from "react";
import type { Room } from "../index.js";
import { notJoined, useResolvedRoom } from "./internal.js";
import { chat, NO_MESSAGES, type ChatMessage } from "./chatStore.js";
import { useStore } from "./store.js";

export interface UseChatResult {
  /** Every message since joining, ours included, oldest first. */
  messages: readonly ChatMessage[];
  /** Sends `text` to everyone in the room. */
  send: (text: string) => void;
}

/**
 * Room chat over its own data channel (peer to peer, encrypted like the media). The
 * history is kept per room from the join on (for a room joined through `useRoom`,
 * `useWebRTC` or `<MeshwireProvider>`), so components that mount later see it too.
 */
export function useChat(room?: Room | null): UseChatResult {
  const r = useResolvedRoom(room);
  const store = r ? chat(r) : null;
  const messages = useStore(store, NO_MESSAGES);
  useEffect(() => store?.open(), [store]);
  const send = useCallback(
    (text: string) => {
      if (!store) throw notJoined();
      store.send(text);
    },
    [store],
  );
  return { messages, send };
}
