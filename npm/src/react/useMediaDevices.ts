'use client';
import { useCallback, useEffect, useState } from "react";
import { isMeshwireError, type MeshwireErrorObject, type Room } from "../index.js";
import { notJoined, useResolvedRoom, useRoomEvents } from "./internal.js";
import { localMedia } from "./localMedia.js";

export interface UseMediaDevicesResult {
  /** The cameras, microphones and speakers (`kind` filters). Labels are empty until a device was allowed. */
  devices: MediaDeviceInfo[];
  /** Switches the microphone or camera in the call (no renegotiation); a failure goes to `error`. */
  switchDevice: (kind: "audioinput" | "videoinput", deviceId: string) => Promise<void>;
  error: MeshwireErrorObject | null;
}

/**
 * The media devices, kept current (`devicechange`). Works before joining (for a device
 * picker); `switchDevice` needs a room.
 */
export function useMediaDevices(options?: { kind?: MediaDeviceKind; room?: Room | null }): UseMediaDevicesResult {
  const r = useResolvedRoom(options?.room);
  const kind = options?.kind;
  const [devices, setDevices] = useState<MediaDeviceInfo[]>([]);
  const [error, setError] = useState<MeshwireErrorObject | null>(null);
  useEffect(() => {
    const media = typeof navigator === "undefined" ? undefined : navigator.mediaDevices;
    if (!media) return;
    let live = true;
    const read = () =>
      media.enumerateDevices().then(
        (list) => live && setDevices(list),
        () => undefined,
      );
    void read();
    media.addEventListener("devicechange", read);
    return () => {
      live = false;
      media.removeEventListener("devicechange", read);
    };
  }, []);
  useRoomEvents(r, ["devices-changed"], (e) => setDevices(e.devices));
  const switchDevice = useCallback(
    async (k: "audioinput" | "videoinput", deviceId: string) => {
      if (!r) throw notJoined();
      setError(null);
      try {
        await r.switchDevice(k, deviceId);
      } catch (e) {
        // In `error`, as every hook's failures: an onClick handler gets no rejection.
        setError(isMeshwireError(e) ? e : Object.assign(new Error(String(e)), { code: "media-failed" }));
      }
      // The local media state every hook shares follows (a switch may have started
      // the microphone).
      localMedia(r).refresh();
    },
    [r],
  );
  return { devices: kind ? devices.filter((d) => d.kind === kind) : devices, switchDevice, error };
}
