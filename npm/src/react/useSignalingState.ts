'use client';
import type { Room, SignalingConnectionState } from "../index.js";
import { useResolvedRoom, useRoomValue } from "./internal.js";

export type { SignalingConnectionState };

/** The relay connection's state, kept current (`closed` without a room). */
export function useSignalingState(room?: Room | null): SignalingConnectionState {
  const r = useResolvedRoom(room);
  return useRoomValue(r, ["signaling"], (x) => x.signalingState, "closed");
}
