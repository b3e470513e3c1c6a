'use client';
import { useCallback, useMemo, useState } from "react";
import type { FileTransfer, JoinOptions, MeshwireErrorObject, PeerInfo, PeerStats, TrackInfo } from "../index.js";
import { useFileTransfer } from "./useFileTransfer.js";
import type { TransferView } from "./transferStore.js";
import { useChat } from "./useChat.js";
import { useLocalMedia } from "./useLocalMedia.js";
import { useRemoteTracks } from "./useRemoteTracks.js";
import { useRoom, type RoomState } from "./useRoom.js";
import { useScreenShare } from "./useScreenShare.js";
import type { ChatMessage } from "./chatStore.js";

export interface UseWebRTCOptions extends JoinOptions {
  /** The relay, e.g. `wss://relay.example.com` (nothing is joined while empty). */
  url: string | null | undefined;
  /** The room to join (nothing is joined while empty). */
  room: string | null | undefined;
}

/** A peer with what it sends us. */
export interface PeerWithStreams extends PeerInfo {
  /** Its camera (or the screen it shares in the camera's place) and microphone. */
  stream: MediaStream | null;
  /** An extra screen-share stream (`startScreenShare({ replaceCamera: false })`). */
  screenStream: MediaStream | null;
  tracks: TrackInfo[];
}

export interface UseWebRTCResult {
  state: RoomState;
  localPeerId: string | null;
  localStream: MediaStream | null;
  peers: PeerWithStreams[];
  isAudioEnabled: boolean;
  isVideoEnabled: boolean;
  isScreenSharing: boolean;
  toggleAudio: () => Promise<void>;
  toggleVideo: () => Promise<void>;
  startScreenShare: () => Promise<void>;
  stopScreenShare: () => Promise<void>;
  /** Sends a chat message to everyone. */
  sendMessage: (text: string) => void;
  messages: readonly ChatMessage[];
  /** Sends a file to one peer, or to every peer without `to`. */
  sendFile: (file: Blob, to?: string) => FileTransfer[];
  /** Every file transfer, both directions, with progress. */
  transfers: readonly TransferView[];
  /** Drops finished transfers (and the received files they hold) from `transfers`. */
  clearFinishedTransfers: () => void;
  /** Each peer connection's stats (`room.getStats()`), empty before joining. */
  getStats: () => Promise<PeerStats[]>;
  /** The join's failure, a media call's, or the room's last `error` event. */
  error: MeshwireErrorObject | null;
  clearError: () => void;
}

/**
 * A whole call in one hook: joins `room` on `url`, then opens the camera and microphone
 * (unless `audio`/`video` say otherwise; read once per room), and returns everything a
 * call screen shows. A device that cannot be opened is an `error`, not a failed join:
 * the call goes on with what did open.
 */
export function useWebRTC(options: UseWebRTCOptions): UseWebRTCResult {
  const { url, room: roomName, ...join } = options;
  // Media opens once joined (useRoom): a camera that fails does not keep the user out.
  const { room, state, error: roomError, peers, localPeerId } = useRoom(url, roomName, { audio: true, video: true, ...join });
  const media = useLocalMedia(room);
  const screen = useScreenShare({ room });
  const chat = useChat(room);
  const tracks = useRemoteTracks(undefined, room);
  const files = useFileTransfer(room);

  const withStreams = useMemo(
    () =>
      peers.map((p): PeerWithStreams => {
        const mine = tracks.filter((t) => t.peerId === p.id);
        // A screen shared in the camera's place arrives on the camera's stream.
        const main =
          mine.find((t) => t.source === "camera" || t.source === "microphone") ?? mine.find((t) => t.source === "screen");
        const extra = mine.find((t) => t.source === "screen" && t.stream !== main?.stream);
        return { ...p, stream: main?.stream ?? null, screenStream: extra?.stream ?? null, tracks: mine };
      }),
    [peers, tracks],
  );

  // The room's error stays in useRoom; "clearing" it hides that one until another comes.
  const [dismissed, setDismissed] = useState<MeshwireErrorObject | null>(null);
  const { sendFile: sendOne, sendFileToAll } = files;
  const sendFile = useCallback(
    (file: Blob, to?: string) => (to === undefined ? sendFileToAll(file) : [sendOne(file, to)]),
    [sendOne, sendFileToAll],
  );
  // Wrapped so that an onClick handler's event never reaches the SDK as options.
  const { start: startShare, stop: stopShare } = screen;
  const startScreenShare = useCallback(() => startShare(), [startShare]);
  const stopScreenShare = useCallback(() => stopShare(), [stopShare]);
  const getStats = useCallback(async () => (room ? room.getStats() : []), [room]);

  const clearError = useCallback(() => {
    media.clearError();
    setDismissed(roomError);
  }, [media.clearError, roomError]);
  return {
    state,
    localPeerId,
    localStream: media.stream,
    peers: withStreams,
    isAudioEnabled: media.microphone.enabled,
    isVideoEnabled: media.camera.enabled,
    isScreenSharing: screen.enabled,
    toggleAudio: media.microphone.toggle,
    toggleVideo: media.camera.toggle,
    startScreenShare,
    stopScreenShare,
    sendMessage: chat.send,
    messages: chat.messages,
    sendFile,
    transfers: files.transfers,
    clearFinishedTransfers: files.clearFinished,
    getStats,
    error: media.error ?? (roomError === dismissed ? null : roomError),
    clearError,
  };
}
