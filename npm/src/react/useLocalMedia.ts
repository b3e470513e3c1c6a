'use client';
import { useCallback } from "react";
import type { MediaOptions, MeshwireErrorObject, Room } from "../index.js";
import { notJoined, useResolvedRoom, type Toggle } from "./internal.js";
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
  // Before the room is joined there is nothing to toggle: `not-joined`, as every call
  // of the hooks without a room.
  const toggleMic = useCallback(async () => (store ? store.setMicrophone(!store.getSnapshot().microphone) : Promise.reject(notJoined())), [store]);
  const toggleCam = useCallback(async () => (store ? store.setCamera(!store.getSnapshot().camera) : Promise.reject(notJoined())), [store]);
  const enable = useCallback(async (o?: MediaOptions) => (store ? store.enable(o) : Promise.reject(notJoined())), [store]);
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
