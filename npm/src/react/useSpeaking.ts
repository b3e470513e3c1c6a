'use client';
import { useSyncExternalStore } from "react";
import type { Room } from "../index.js";
import { useResolvedRoom } from "./internal.js";
import { NOBODY, speakers } from "./speakingStore.js";

const none = () => NOBODY;
const noSubscribe = () => () => undefined;

/**
 * Whether `peerId` (or we, with our own id) is speaking now. Every `useSpeaking` of a
 * room shares what the room has said so far, so one mounted mid-sentence is right at once.
 */
export function useSpeaking(peerId: string | null | undefined, room?: Room | null): boolean {
  const r = useResolvedRoom(room);
  const store = r ? speakers(r) : null;
  const now = useSyncExternalStore(store?.watch ?? noSubscribe, store?.getSnapshot ?? none, none);
  return !!peerId && now.has(peerId);
}
