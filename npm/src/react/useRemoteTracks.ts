'use client';
import type { Room, TrackInfo } from "../index.js";
import { useResolvedRoom, useRoomValue } from "./internal.js";

const NONE: TrackInfo[] = [];
// `signaling`: a `room.leave()` made outside the hooks ("closed") empties the list.
const EVENTS = ["track", "track-removed", "mute", "peer-left", "signaling"] as const;

/**
 * The room's tracks (`room.tracks`: the other peers', then our own screen share), or
 * only `peerId`'s. A component mounted late still sees tracks that arrived before it.
 */
export function useRemoteTracks(peerId?: string, room?: Room | null): TrackInfo[] {
  const r = useResolvedRoom(room);
  const all = useRoomValue(r, EVENTS, (x) => x.tracks, NONE);
  return peerId === undefined ? all : all.filter((t) => t.peerId === peerId);
}
