'use client';
import { useState } from "react";
import type { ConnectionQuality, Room } from "../index.js";
import { useResolvedRoom, useRoomEvents } from "./internal.js";

/**
 * `peerId`'s connection quality (`excellent`, `good`, `poor`, `lost`), or null until
 * the first measurement. The SDK polls stats only while something listens.
 */
export function useConnectionQuality(peerId: string, room?: Room | null): ConnectionQuality | null {
  const r = useResolvedRoom(room);
  const [quality, setQuality] = useState<{ peerId: string; room: Room | null; quality: ConnectionQuality } | null>(null);
  useRoomEvents(r, ["quality"], (e) => {
    if (e.peerId === peerId) setQuality({ peerId, room: r, quality: e.quality });
  });
  return quality && quality.peerId === peerId && quality.room === r ? quality.quality : null;
}
