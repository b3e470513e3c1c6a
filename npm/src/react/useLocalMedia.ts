'use client';
import { useCallback } from "react";
import type { MediaOptions, MeshwireErrorObject, Room } from "../index.js";
import { useResolvedRoom, warnNotJoined, type Toggle } from "./internal.js";
import { localMedia, NO_LOCAL_MEDIA, type LocalMediaState } from "./localMedia.js";
import { useStore } from "./store.js";

export interface UseLocalMediaResult {
  /** Our microphone/camera stream, once started. */
  stream: MediaStream | null;
  microphone: Toggle;
  camera: Toggle;
  /** Starts the microphone and/or camera (both by default). */
  enable: (options?: MediaOptions) => Promise<void>;
  error: MeshwireErrorObject | null;
  clearError: () => void;
}

/** The room's local media state, shared by every hook of that room. */
export function useLocalMediaState(room: Room | null): LocalMediaState {
  return useStore(room ? localMedia(room) : null, NO_LOCAL_MEDIA);
}

/** Our microphone and camera: `{ microphone: { enabled, pending, toggle }, camera, … }`. */
export function useLocalMedia(room?: Room | null): UseLocalMediaResult {
  const r = useResolvedRoom(room);
  const s = useLocalMediaState(r);
  const store = r ? localMedia(r) : null;
  // Before the room is joined there is nothing to toggle: a warning that says so (the
  // calls resolve, as every failure of the hooks lands somewhere other than a rejection).
  const toggleMic = useCallback(async () => (store ? store.setMicrophone(!store.getSnapshot().microphone) : warnNotJoined("microphone.toggle")), [store]);
  const toggleCam = useCallback(async () => (store ? store.setCamera(!store.getSnapshot().camera) : warnNotJoined("camera.toggle")), [store]);
  const enable = useCallback(async (o?: MediaOptions) => (store ? store.enable(o) : warnNotJoined("enable")), [store]);
  const clearError = useCallback(() => store?.clearError(), [store]);
  return {
    stream: s.stream,
    microphone: { enabled: s.microphone, pending: s.microphonePending, toggle: toggleMic },
    camera: { enabled: s.camera, pending: s.cameraPending, toggle: toggleCam },
    enable,
    error: s.error,
    clearError,
  };
}
