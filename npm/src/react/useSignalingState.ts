'use client';
import type { Room } from "../index.js";
import { useResolvedRoom, useRoomValue } from "./internal.js";

/** The relay connection: `connecting`, `connected`, `reconnecting` or `closed`. */
export type SignalingConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** The relay connection's state, kept current (`closed` without a room). */
export function useSignalingState(room?: Room | null): SignalingConnectionState {
  const r = useResolvedRoom(room);
  return useRoomValue(r, ["signaling"], (x) => x.signalingState, "closed");
}
