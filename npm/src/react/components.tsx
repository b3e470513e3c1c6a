'use client';
import { useEffect, useState, type AudioHTMLAttributes, type VideoHTMLAttributes } from "react";

type Source = { stream?: MediaStream | null; track?: MediaStreamTrack | null };

/** Puts `stream` (or a stream of just `track`) into the element's `srcObject`. */
function useSrcObject(el: HTMLMediaElement | null, { stream, track }: Source): void {
  useEffect(() => {
    if (!el) return;
    const src = stream ?? (track ? new MediaStream([track]) : null);
    if (el.srcObject !== src) el.srcObject = src;
    // Autoplay can be refused (sound before any user gesture): then the element plays
    // from the user's next click, key or touch on the page.
    // Not every event counts as a gesture everywhere (a touch's pointerdown, Escape),
    // so a retry that is refused again waits for the next one.
    const gestures = ["pointerdown", "pointerup", "keydown", "touchend", "click"] as const;
    let waiting = false;
    const stopWaiting = () => {
      if (waiting) gestures.forEach((g) => document.removeEventListener(g, retry, true));
      waiting = false;
    };
    const attempt = () => {
      el.play().catch((e: unknown) => {
        if ((e as { name?: string } | null)?.name === "NotAllowedError" && el.srcObject === src && !waiting) {
          waiting = true;
          gestures.forEach((g) => document.addEventListener(g, retry, true));
        }
      });
    };
    function retry() {
      stopWaiting();
      if (el?.srcObject === src && el.paused) attempt();
    }
    if (src) attempt();
    return () => {
      stopWaiting();
      if (el.srcObject === src) el.srcObject = null;
    };
  }, [el, stream, track]);
}

export interface VideoTrackProps extends Omit<VideoHTMLAttributes<HTMLVideoElement>, "src"> {
  /** The stream to show (a `TrackInfo`'s `stream`, `room.localStream`, …). */
  stream?: MediaStream | null;
  /** Or a single video track. */
  track?: MediaStreamTrack | null;
  /** Our own camera: always muted (no echo), and mirrored unless `mirror={false}`. */
  local?: boolean;
  mirror?: boolean;
}

/** A `<video>` that plays `stream` (or `track`): autoplay, inline on iOS, local muted. */
export function VideoTrack({ stream, track, local = false, mirror, style, muted, ...rest }: VideoTrackProps) {
  const [el, setEl] = useState<HTMLVideoElement | null>(null);
  useSrcObject(el, { stream, track });
  const flip = mirror ?? local;
  return (
    <video
      ref={setEl}
      autoPlay
      playsInline
      muted={local || muted}
      style={flip ? { transform: "scaleX(-1)", ...style } : style}
      {...rest}
    />
  );
}

export interface AudioTrackProps extends Omit<AudioHTMLAttributes<HTMLAudioElement>, "src"> {
  stream?: MediaStream | null;
  track?: MediaStreamTrack | null;
}

/** An `<audio>` without controls that plays a remote peer's audio. */
export function AudioTrack({ stream, track, ...rest }: AudioTrackProps) {
  const [el, setEl] = useState<HTMLAudioElement | null>(null);
  useSrcObject(el, { stream, track });
  return <audio ref={setEl} autoPlay {...rest} />;
}
