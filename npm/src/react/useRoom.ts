'use client';
import { useEffect, useMemo, useRef, useState } from "react";
import { Room, type JoinOptions, type MeshwireErrorObject, type PeerInfo, isMeshwireError } from "../index.js";
import { useRoomEvents } from "./internal.js";
import { usePeers } from "./usePeers.js";
import { chat } from "./chatStore.js";
import { transfers } from "./transferStore.js";
import { localMedia } from "./localMedia.js";

/**
 * Where a room is: `idle` (no url or room name yet), `connecting` (joining),
 * `connected`, `reconnecting` (the relay dropped; calls carry on), `closed` (left, or
 * reconnecting gave up) or `error` (the join failed: see `error`).
 */
export type RoomState = "idle" | "connecting" | "connected" | "reconnecting" | "closed" | "error";

export interface UseRoomResult {
  /** The joined room, or null until joined (and after leaving). */
  room: Room | null;
  state: RoomState;
  /** Why joining failed, or the last `error` event of the room. */
  error: MeshwireErrorObject | null;
  /** The other peers. */
  peers: PeerInfo[];
  /** Our relay-assigned id once joined. */
  localPeerId: string | null;
}

/** One join, kept across React StrictMode's unmount/remount of the same component. */
interface Lease {
  key: string;
  joined: Promise<Room>;
  /** Set while an unmount's leave waits a tick, in case the component comes back. */
  leaving?: ReturnType<typeof setTimeout>;
}

function asError(e: unknown): MeshwireErrorObject {
  return isMeshwireError(e) ? e : Object.assign(new Error(String(e)), { code: "signaling-failed" });
}

/**
 * What decides whether a render joins anew: `url`, `room` and the options compared by
 * value, except `token`, of which only its presence counts. A token that an auth
 * library refreshes must not end the call; the SDK asks for it again on each reconnect
 * (see `joinOptions`).
 */
function joinKey(url: string, room: string, options: JoinOptions | undefined): string {
  const { token, audio: _audio, video: _video, ...rest } = options ?? {};
  return JSON.stringify([url, room, rest, token !== undefined]);
}

/**
 * The options `Room.join` gets: a `token` becomes a function that reads the latest
 * render's token (a string, or what the latest function returns), so every reconnect
 * sends the current one.
 */
function joinOptions(latest: { current: JoinOptions | undefined }): JoinOptions | undefined {
  if (!latest.current) return undefined;
  // Media opens once joined (`LocalMedia.start`), not as part of the join.
  const { audio: _audio, video: _video, ...options } = latest.current;
  if (options.token === undefined) return options;
  return {
    ...options,
    token: () => {
      const token = latest.current?.token;
      return typeof token === "function" ? token() : (token ?? "");
    },
  };
}

/**
 * Joins `room` on the relay at `url` while the component is mounted, and leaves on
 * unmount. Changing `url`, `room` or `options` (compared by value) joins anew, except
 * for `token`: a new token is used from the next reconnect on, without leaving. Passing
 * an empty `url` or `room` waits. Safe under StrictMode: the simulated remount reuses
 * the first join instead of joining twice.
 *
 * `audio`/`video` open once the room is joined (read then), not as part of the join:
 * a camera that cannot be opened must not keep the user out of the call. If both at
 * once fail, each is tried alone; what failed is `useLocalMedia`'s `error`.
 */
export function useRoom(url: string | null | undefined, room: string | null | undefined, options?: JoinOptions): UseRoomResult {
  const [joined, setJoined] = useState<Room | null>(null);
  const [state, setState] = useState<RoomState>("idle");
  const [error, setError] = useState<MeshwireErrorObject | null>(null);
  const lease = useRef<Lease | null>(null);
  const optionsRef = useRef(options);
  optionsRef.current = options;
  // A join refused (an expired token, or "" while auth loads) is tried again when the
  // token changes; a joined room only takes the new token for its next reconnect.
  const [retry, setRetry] = useState(0);
  const tokenText = typeof options?.token === "string" ? options.token : undefined;
  const failed = state === "error";
  const lastToken = useRef(tokenText);
  useEffect(() => {
    if (lastToken.current === tokenText) return;
    lastToken.current = tokenText;
    if (failed) setRetry((n) => n + 1);
  }, [tokenText, failed]);
  const key = url && room ? `${joinKey(url, room, options)}#${retry}` : "";

  useEffect(() => {
    if (!key || !url || !room) {
      setState("idle");
      setError(null);
      return;
    }
    let current = lease.current;
    if (current && current.key === key && current.leaving !== undefined) {
      clearTimeout(current.leaving);
      current.leaving = undefined;
    } else {
      current = { key, joined: Room.join(url, room, joinOptions(optionsRef)) };
      lease.current = current;
    }
    const mine = current;
    let active = true;
    setState("connecting");
    setError(null);
    mine.joined.then(
      (r) => {
        // Chat and transfers are recorded from the join on, so a panel that mounts
        // later shows what came before it.
        chat(r);
        transfers(r);
        if (!active) return;
        // Once per room (`start` is guarded), for a join still wanted.
        const media = optionsRef.current;
        if (media?.audio || media?.video) void localMedia(r).start(media.audio, media.video);
        setJoined(r);
        setState(r.signalingState === "reconnecting" ? "reconnecting" : r.signalingState === "closed" ? "closed" : "connected");
      },
      (e: unknown) => {
        if (!active) return;
        setError(asError(e));
        setState("error");
      },
    );
    return () => {
      active = false;
      setJoined(null);
      // A StrictMode remount comes back before this fires and cancels it.
      mine.leaving = setTimeout(() => {
        if (lease.current === mine) lease.current = null;
        mine.joined.then(
          (r) => r.leave().catch(() => undefined),
          () => undefined,
        );
      }, 0);
    };
  }, [key, url, room]);

  useRoomEvents(joined, ["signaling", "error"], (event, name) => {
    if (name === "error") {
      const e = event as { code: string; message: string };
      setError(Object.assign(new Error(e.message), { code: e.code }));
    } else if (event === "reconnecting") setState("reconnecting");
    else if (event === "closed") setState("closed");
    else setState("connected");
  });

  const peers = usePeers(joined);
  const localPeerId = joined?.peerId ?? null;
  // One object per change, so a provider's consumers re-render only when it changed.
  return useMemo(() => ({ room: joined, state, error, peers, localPeerId }), [joined, state, error, peers, localPeerId]);
}
