'use client';
import { useEffect, useState } from "react";
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
  // The SDK reports a change only: a component that mounts mid-call asks once for
  // where things are (unless an event came first).
  useEffect(() => {
    if (!r) return;
    let live = true;
    r.getStats().then(
      (all) => {
        const mine = all.find((s) => s.peerId === peerId);
        if (live && mine) setQuality((q) => (q && q.peerId === peerId && q.room === r ? q : { peerId, room: r, quality: mine.quality }));
      },
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [r, peerId]);
  return quality && quality.peerId === peerId && quality.room === r ? quality.quality : null;
}
