'use client';
import { useCallback, useEffect } from "react";
import type { ChannelOptions, Room } from "../index.js";
import { notJoined, useResolvedRoom, useRoomEvents } from "./internal.js";

/** The SDK's own channel (`room.send` without `channel`). */
export const DEFAULT_CHANNEL = "meshwire";

export interface UseDataChannelResult {
  /** Sends to everyone, or to `to`. Queued while the channel opens or is busy. */
  send: (data: string | ArrayBuffer | Uint8Array, to?: string) => void;
}

/**
 * A data channel `channel` to every peer (opened with `room.createChannel` unless it
 * is the default one). `onMessage` gets each message; the latest function is used.
 */
export function useDataChannel(
  channel: string,
  onMessage?: (data: string | ArrayBuffer, from: string) => void,
  options?: ChannelOptions & { room?: Room | null },
): UseDataChannelResult {
  const r = useResolvedRoom(options?.room);
  const { ordered, maxRetransmits, maxPacketLifeTime } = options ?? {};
  useEffect(() => {
    if (!r || channel === DEFAULT_CHANNEL) return;
    try {
      openChannel(r, channel, { ordered, maxRetransmits, maxPacketLifeTime });
    } catch (e) {
      // A room already left (or options the SDK refuses): `send` throws the same
      // error with its code; rendering goes on.
      console.warn(`meshwire: the channel "${channel}" could not be opened:`, e);
    }
  }, [r, channel, ordered, maxRetransmits, maxPacketLifeTime]);
  useRoomEvents(r, ["message"], (e) => {
    if (e.channel === channel) onMessage?.(e.data, e.from);
  });
  const send = useCallback(
    (data: string | ArrayBuffer | Uint8Array, to?: string) => {
      if (!r) throw notJoined();
      r.send(data, { to, channel });
    },
    [r, channel],
  );
  return { send };
}

const opened = new WeakMap<Room, Set<string>>();

/** `room.createChannel` once per room and label (channels stay open for the room's life). */
export function openChannel(room: Room, label: string, options?: ChannelOptions): void {
  let labels = opened.get(room);
  if (!labels) opened.set(room, (labels = new Set()));
  if (labels.has(label)) return;
  const clean: ChannelOptions = {};
  if (options?.ordered !== undefined) clean.ordered = options.ordered;
  if (options?.maxRetransmits !== undefined) clean.maxRetransmits = options.maxRetransmits;
  if (options?.maxPacketLifeTime !== undefined) clean.maxPacketLifeTime = options.maxPacketLifeTime;
  room.createChannel(label, clean);
  labels.add(label);
}
