'use client';
// Internal helpers shared by the hooks: which room a hook talks to, and subscribing to
// its events from an effect (never during render, so server rendering stays inert).
import { useContext, useEffect, useRef, useState } from "react";
import type { Room, RoomEventName, RoomEvents } from "../index.js";
import { RoomContext } from "./context.js";

/** The explicit `room` if one was passed, else the `<MeshwireProvider>`'s (or null). */
export function useResolvedRoom(room?: Room | null): Room | null {
  const context = useContext(RoomContext);
  return room !== undefined ? room : (context?.room ?? null);
}

/**
 * Calls `handler` for each of `events` while `room` is set. The latest `handler` is
 * used without resubscribing, so callers may pass an inline function.
 */
export function useRoomEvents<K extends RoomEventName>(
  room: Room | null,
  events: readonly K[],
  handler: (event: RoomEvents[K], name: K) => void,
): void {
  const latest = useRef(handler);
  latest.current = handler;
  const key = events.join(" ");
  useEffect(() => {
    if (!room) return;
    const offs = (key.split(" ") as K[]).map((name) =>
      room.on(name, (event) => latest.current(event, name)),
    );
    return () => offs.forEach((off) => off());
  }, [room, key]);
}

/**
 * A value read from `room` (`read(room)`), read again whenever one of `events` fires;
 * `fallback` without a room and during server rendering.
 */
export function useRoomValue<T, K extends RoomEventName>(
  room: Room | null,
  events: readonly K[],
  read: (room: Room) => T,
  fallback: T,
): T {
  const [value, setValue] = useState<{ room: Room | null; value: T }>({ room: null, value: fallback });
  const readRef = useRef(read);
  readRef.current = read;
  useEffect(() => {
    setValue({ room, value: room ? readRef.current(room) : fallback });
    // `fallback` is a constant of each caller.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [room]);
  useRoomEvents(room, events, () => {
    if (room) setValue({ room, value: readRef.current(room) });
  });
  // Until the effect has run for a new room, its value is not known yet.
  return value.room === room ? value.value : fallback;
}

/** Shape of every on/off control: `{ enabled, pending, toggle }`. */
export interface Toggle {
  /** Whether it is on. */
  enabled: boolean;
  /** A change is in progress (a device or picker is opening). */
  pending: boolean;
  /**
   * Turns it on if off, off if on. Resolves when done; errors land in `error`. Before
   * the room is joined it does nothing (and warns).
   */
  toggle: () => Promise<void>;
}

/** What a toggle does before its room is joined: nothing, and says so. */
export function warnNotJoined(what: string): void {
  console.warn(`meshwire: ${what} before the room is joined does nothing (${notJoined().message})`);
}

/** What a hook's call throws before its room is joined. */
export function notJoined(): Error & { code: "not-joined" } {
  return Object.assign(new Error("not in a room yet: wait until useRoom's state is connected"), {
    code: "not-joined" as const,
  });
}
