'use client';
import { useCallback } from "react";
import type { Room, ScreenShareOptions } from "../index.js";
import { useResolvedRoom, warnNotJoined, type Toggle } from "./internal.js";
import { localMedia } from "./localMedia.js";
import { useLocalMediaState } from "./useLocalMedia.js";

export interface UseScreenShareResult extends Toggle {
  /** Our screen share's stream while sharing. */
  stream: MediaStream | null;
  start: (options?: ScreenShareOptions) => Promise<void>;
  stop: () => Promise<void>;
}

/**
 * Our screen share: `toggle` opens the browser's picker or stops sharing. `enabled`
 * also turns false when the user stops from the browser's own button.
 */
export function useScreenShare(options?: ScreenShareOptions & { room?: Room | null }): UseScreenShareResult {
  const r = useResolvedRoom(options?.room);
  const s = useLocalMediaState(r);
  const store = r ? localMedia(r) : null;
  const replaceCamera = options?.replaceCamera;
  const audio = options?.audio;
  const start = useCallback(
    async (o?: ScreenShareOptions) => (store ? store.startScreenShare(o ?? { replaceCamera, audio }) : warnNotJoined("screen share")),
    [store, replaceCamera, audio],
  );
  const stop = useCallback(async () => (store ? store.stopScreenShare() : warnNotJoined("screen share")), [store]);
  const toggle = useCallback(async () => (store?.getSnapshot().screen ? stop() : start()), [store, start, stop]);
  return { enabled: s.screen !== null, pending: s.screenPending, toggle, stream: s.screen, start, stop };
}
