"use client";
import { useEffect, useState, type FormEvent } from "react";
import {
  AudioTrack,
  MeshwireProvider,
  useChat,
  useConnectionQuality,
  useFileTransfer,
  useLocalMedia,
  useSpeaking,
  useRemoteTracks,
  useRoomContext,
  useScreenShare,
  VideoTrack,
  type Toggle,
} from "meshwire/react";

/** The granular hooks under a <MeshwireProvider>: each part reads only what it shows. */
export function Call({ relay }: { relay: string }) {
  const [joined, setJoined] = useState<{ room: string; name: string } | null>(null);
  if (!joined) {
    const submit = (e: FormEvent<HTMLFormElement>) => {
      e.preventDefault();
      const data = new FormData(e.currentTarget);
      setJoined({ room: String(data.get("room") || "lobby"), name: String(data.get("name") || "guest") });
    };
    return (
      <form data-testid="join" onSubmit={submit}>
        <h1>meshwire + Next.js</h1>
        <input name="room" placeholder="room" defaultValue="lobby" aria-label="Room" />
        <input name="name" placeholder="your name" aria-label="Name" />
        <button type="submit">Join</button>
      </form>
    );
  }
  return (
    <MeshwireProvider url={relay} room={joined.room} options={{ name: joined.name, audio: true, video: true }}>
      <Status />
      <Grid name={joined.name} />
      <Controls onLeave={() => setJoined(null)} />
      <Files />
      <Chat />
    </MeshwireProvider>
  );
}

function Status() {
  const { state, error: roomError, room } = useRoomContext();
  // A camera or microphone that could not be opened is the local media's error.
  const { error: mediaError } = useLocalMedia();
  const error = mediaError ?? roomError;
  return (
    <header>
      <strong>{room?.roomId}</strong> · {state}
      {state === "reconnecting" && <span data-testid="reconnecting"> reconnecting…</span>}
      {error && <span role="alert"> {error.message}</span>}
    </header>
  );
}

function Grid({ name }: { name: string }) {
  const { peers, localPeerId } = useRoomContext();
  const { stream } = useLocalMedia();
  return (
    <div className="grid">
      {localPeerId && (
        <figure data-peer-id={localPeerId} data-local="true">
          <VideoTrack stream={stream} local />
          <figcaption>{name} (you)</figcaption>
        </figure>
      )}
      {peers.map((p) => (
        <Tile key={p.id} id={p.id} label={p.name ?? p.id.slice(0, 6)} />
      ))}
    </div>
  );
}

function Tile({ id, label }: { id: string; label: string }) {
  const tracks = useRemoteTracks(id);
  const video = tracks.find((t) => t.track.kind === "video" && t.source !== "screen") ?? tracks.find((t) => t.track.kind === "video");
  const audio = tracks.find((t) => t.track.kind === "audio");
  const quality = useConnectionQuality(id);
  const speaking = useSpeaking(id);
  return (
    <figure data-peer-id={id} data-speaking={speaking}>
      <VideoTrack track={video?.track} />
      <AudioTrack track={audio?.track} />
      <figcaption>
        {label} <small data-testid="quality">{quality ?? "…"}</small>
      </figcaption>
    </figure>
  );
}

function ToggleButton({ testId, toggle, on, off }: { testId: string; toggle: Toggle; on: string; off: string }) {
  return (
    <button data-testid={testId} aria-pressed={toggle.enabled} disabled={toggle.pending} onClick={() => void toggle.toggle()}>
      {toggle.enabled ? on : off}
    </button>
  );
}

function Controls({ onLeave }: { onLeave: () => void }) {
  const { microphone, camera } = useLocalMedia();
  const screen = useScreenShare();
  return (
    <nav>
      <ToggleButton testId="toggle-mic" toggle={microphone} on="Mute" off="Unmute" />
      <ToggleButton testId="toggle-camera" toggle={camera} on="Camera off" off="Camera on" />
      <ToggleButton testId="screen-share" toggle={screen} on="Stop sharing" off="Share screen" />
      <button data-testid="leave" onClick={onLeave}>
        Leave
      </button>
    </nav>
  );
}

function Chat() {
  const { messages, send } = useChat();
  const [text, setText] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (text) send(text);
    setText("");
  };
  return (
    <form className="chat" onSubmit={submit}>
      <ul>
        {messages.map((m) => (
          <li key={m.id} data-testid="chat-message">
            <b>{m.local ? "you" : (m.name ?? m.from.slice(0, 6))}:</b> {m.text}
          </li>
        ))}
      </ul>
      <input data-testid="chat-input" value={text} onChange={(e) => setText(e.target.value)} aria-label="Message" />
      <button data-testid="chat-send" type="submit">
        Send
      </button>
    </form>
  );
}

/** Files: pick one and it goes to everyone; received files get a download link. */
function Files() {
  const { transfers, sendFileToAll } = useFileTransfer();
  return (
    <section className="files">
      <input
        type="file"
        data-testid="file-input"
        aria-label="Send a file to everyone"
        onChange={(e) => {
          const file = e.target.files?.[0];
          if (file) sendFileToAll(file);
          e.target.value = "";
        }}
      />
      <ul>
        {transfers.map((t) => (
          <li key={`${t.direction}:${t.id}`} data-testid="transfer" data-state={t.state} data-progress={String(t.progress)} data-direction={t.direction}>
            {t.name}: {Math.round(t.progress * 100)}% {t.state} {t.error?.message}
            {t.direction === "receive" && <Download blob={t.blob} name={t.name} />}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Download({ blob, name }: { blob: Blob | null; name: string }) {
  // Made and revoked in one effect (never during render, which React may repeat).
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!blob) return;
    const made = URL.createObjectURL(blob);
    setUrl(made);
    return () => {
      URL.revokeObjectURL(made);
      setUrl(null);
    };
  }, [blob]);
  return url ? (
    <a data-testid="download" href={url} download={name}>
      save
    </a>
  ) : null;
}
