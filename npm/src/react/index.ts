'use client';
// meshwire/react — hooks and components over the core `Room` (docs/react.md).
export { MeshwireProvider, useRoomContext, type MeshwireProviderProps } from "./context.js";
export { useRoom, type RoomState, type UseRoomResult } from "./useRoom.js";
export { usePeers } from "./usePeers.js";
export { useRemoteTracks } from "./useRemoteTracks.js";
export { useLocalMedia, type UseLocalMediaResult } from "./useLocalMedia.js";
export { useScreenShare, type UseScreenShareResult } from "./useScreenShare.js";
export { useDataChannel, DEFAULT_CHANNEL, type UseDataChannelResult } from "./useDataChannel.js";
export { useChat, type UseChatResult } from "./useChat.js";
export { CHAT_CHANNEL, MAX_CHAT_TEXT, type ChatMessage } from "./chatStore.js";
export { useSignalingState, type SignalingConnectionState } from "./useSignalingState.js";
export { VideoTrack, AudioTrack, type VideoTrackProps, type AudioTrackProps } from "./components.js";
export type { Toggle } from "./internal.js";
export { useWebRTC, type UseWebRTCOptions, type UseWebRTCResult, type PeerWithStreams } from "./useWebRTC.js";
