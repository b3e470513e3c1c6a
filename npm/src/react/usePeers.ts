'use client';
import type { PeerInfo, Room } from "../index.js";
import { useResolvedRoom, useRoomValue } from "./internal.js";

const NONE: PeerInfo[] = [];
// `signaling`: a `room.leave()` made outside the hooks ("closed") empties the list.
const EVENTS = ["peer-joined", "peer-left", "connection-state", "peer-connected", "peer-disconnected", "mute", "signaling"] as const;

/** The room's other peers (`room.peers`), kept current. */
export function usePeers(room?: Room | null): PeerInfo[] {
  const r = useResolvedRoom(room);
  return useRoomValue(r, EVENTS, (x) => x.peers, NONE);
}
