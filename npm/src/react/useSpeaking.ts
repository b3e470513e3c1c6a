'use client';
import { useState } from "react";
import type { Room } from "../index.js";
import { useResolvedRoom, useRoomEvents } from "./internal.js";

/** Whether `peerId` (or we, with our own id) is speaking now. */
export function useSpeaking(peerId: string | null | undefined, room?: Room | null): boolean {
  const r = useResolvedRoom(room);
  const [speaking, setSpeaking] = useState<{ peerId: string; room: Room | null } | null>(null);
  useRoomEvents(r, ["speaking"], (e) => {
    if (e.peerId !== peerId) return;
    setSpeaking(e.speaking ? { peerId, room: r } : null);
  });
  return !!speaking && speaking.peerId === peerId && speaking.room === r;
}
