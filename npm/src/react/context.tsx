'use client';
import { createContext, useContext, type ReactNode } from "react";
import type { JoinOptions } from "../index.js";
import { useRoom, type UseRoomResult } from "./useRoom.js";

/** The `<MeshwireProvider>`'s room, for every hook below it. */
export const RoomContext = createContext<UseRoomResult | null>(null);

export interface MeshwireProviderProps {
  /** The relay, e.g. `wss://relay.example.com`. */
  url: string | null | undefined;
  /** The room to join (nothing is joined while it is empty). */
  room: string | null | undefined;
  options?: JoinOptions;
  children?: ReactNode;
}

/** Joins `room` while mounted (as `useRoom`) and gives it to every hook below. */
export function MeshwireProvider({ url, room, options, children }: MeshwireProviderProps) {
  const value = useRoom(url, room, options);
  return <RoomContext.Provider value={value}>{children}</RoomContext.Provider>;
}

/** The surrounding `<MeshwireProvider>`'s room and state. Throws outside of one. */
export function useRoomContext(): UseRoomResult {
  const value = useContext(RoomContext);
  if (!value) {
    throw new Error("useRoomContext() needs a <MeshwireProvider> above this component (or pass a room to the hook)");
  }
  return value;
}
