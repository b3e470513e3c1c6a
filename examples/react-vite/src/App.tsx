import { useEffect, useState, type FormEvent } from "react";
import { useWebRTC, VideoTrack, AudioTrack, type TransferView } from "meshwire/react";

// The relay: `?relay=ws://host:port`, else VITE_MESHWIRE_URL, else a local one
// (`cargo run -p meshwire-relay -- --port 8080`).
const relay =
  new URLSearchParams(location.search).get("relay") ?? import.meta.env.VITE_MESHWIRE_URL ?? "ws://localhost:8080";

export function App() {
  const [joined, setJoined] = useState<{ room: string; name: string } | null>(null);
  if (!joined) return <JoinForm onJoin={setJoined} />;
  return <Call room={joined.room} name={joined.name} onLeave={() => setJoined(null)} />;
}

function JoinForm({ onJoin }: { onJoin: (j: { room: string; name: string }) => void }) {
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget);
    onJoin({ room: String(data.get("room") || "lobby"), name: String(data.get("name") || "guest") });
  };
  return (
    <form data-testid="join" onSubmit={submit}>
      <h1>meshwire + Vite</h1>
      <input name="room" placeholder="room" defaultValue="lobby" aria-label="Room" />
      <input name="name" placeholder="your name" aria-label="Name" />
      <button type="submit">Join</button>
    </form>
  );
}

function Call({ room, name, onLeave }: { room: string; name: string; onLeave: () => void }) {
  const call = useWebRTC({ url: relay, room, name });
  const [text, setText] = useState("");
  const send = (e: FormEvent) => {
    e.preventDefault();
    if (text) call.sendMessage(text);
    setText("");
  };
  return (
    <div className="call">
      <header>
        <strong>{room}</strong> · {call.state}
        {call.state === "reconnecting" && <span data-testid="reconnecting"> reconnecting…</span>}
        {call.error && (
          <span role="alert" onClick={call.clearError}>
            {" "}
            {call.error.message}
          </span>
        )}
      </header>
      <div className="grid">
        {call.localPeerId && (
          <figure data-peer-id={call.localPeerId} data-local="true">
            <VideoTrack stream={call.localStream} local />
            <figcaption>{name} (you)</figcaption>
          </figure>
        )}
        {call.peers.map((p) => (
          <figure key={p.id} data-peer-id={p.id}>
            <VideoTrack stream={p.stream} />
            <AudioTrack stream={p.stream} />
            <figcaption>{p.name ?? p.id.slice(0, 6)}</figcaption>
          </figure>
        ))}
      </div>
      <nav>
        <button data-testid="toggle-mic" aria-pressed={call.isAudioEnabled} onClick={call.toggleAudio}>
          {call.isAudioEnabled ? "Mute" : "Unmute"}
        </button>
        <button data-testid="toggle-camera" aria-pressed={call.isVideoEnabled} onClick={call.toggleVideo}>
          {call.isVideoEnabled ? "Camera off" : "Camera on"}
        </button>
        <button
          data-testid="screen-share"
          aria-pressed={call.isScreenSharing}
          onClick={() => void (call.isScreenSharing ? call.stopScreenShare() : call.startScreenShare())}
        >
          {call.isScreenSharing ? "Stop sharing" : "Share screen"}
        </button>
        <button data-testid="leave" onClick={onLeave}>
          Leave
        </button>
      </nav>
      <section className="files">
        <label>
          Send a file to everyone{" "}
          <input
            type="file"
            data-testid="file-input"
            onChange={(e) => {
              const file = e.target.files?.[0];
              if (file) call.sendFile(file);
              e.target.value = "";
            }}
          />
        </label>
        {call.transfers.map((t) => (
          <Transfer key={t.id + t.direction} t={t} />
        ))}
      </section>
      <form className="chat" onSubmit={send}>
        <ul>
          {call.messages.map((m) => (
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
    </div>
  );
}

function Transfer({ t }: { t: TransferView }) {
  // A blob URL for the received file, revoked when the row goes away.
  const [href, setHref] = useState<string | null>(null);
  useEffect(() => {
    if (!t.blob) return;
    const url = URL.createObjectURL(t.blob);
    setHref(url);
    return () => URL.revokeObjectURL(url);
  }, [t.blob]);
  return (
    <div data-testid="transfer" data-state={t.state} data-progress={String(t.progress)} data-direction={t.direction}>
      {t.direction === "send" ? "↑" : "↓"} {t.name} <progress max={1} value={t.progress} /> {t.state}
      {t.error && <em> {t.error.message}</em>}
      {href && t.direction === "receive" && (
        <a data-testid="download" href={href} download={t.name}>
          Download
        </a>
      )}
    </div>
  );
}
