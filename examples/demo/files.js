// File transfer UI over the SDK's `room.sendFile` and its `"file"` event.
// One transfer per peer; each is a card in the chat feed with a progress bar, and on the
// receiving side a download link once the Blob is complete.
import { el, icon, formatBytes, toast, toastError } from "./ui.js";

export class Files {
  constructor({ chat, nameOf }) {
    this.chat = chat;
    this.nameOf = nameOf;
    this.room = null;
    this.urls = [];
    this.offs = [];
  }

  attach(room) {
    this.room = room;
    this.offs.push(room.on("file", ({ transfer }) => this.receive(transfer)));
  }

  detach() {
    this.offs.forEach((off) => off());
    this.offs = [];
    // Blob URLs keep the file in memory until revoked.
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = [];
    this.room = null;
  }

  /** Sends `file` to every peer in the room: one transfer each, so progress is per person. */
  sendToAll(file) {
    if (!this.room) return;
    // Everyone, not only the connected: a peer still connecting gets its transfer when
    // its connection is up (or the transfer fails and its card says so).
    const targets = this.room.peers;
    if (!targets.length) {
      toast("Nobody to send to yet — share the invite link first.", { kind: "warn" });
      return;
    }
    for (const peer of targets) {
      try {
        const transfer = this.room.sendFile(file, { to: peer.id, name: file.name });
        this.track(transfer, "send", { who: peer.id, size: file.size, name: file.name });
      } catch (err) {
        toastError(`Could not send ${file.name} to ${this.nameOf(peer.id)}`, err);
      }
    }
  }

  receive(transfer) {
    this.track(transfer, "receive", { who: transfer.from });
    // There is no separate accept dialog: the card itself shows the offer, and a
    // Cancel button stops it. Accepting at once keeps the flow to one click for the sender.
    if (transfer.state === "pending") {
      try { transfer.accept(); } catch (err) { toastError("Could not accept the file", err); }
    }
  }

  /** Renders one transfer and keeps its card in step with its events. */
  track(transfer, direction, { who, size, name }) {
    const total = transfer.size ?? size ?? 0;
    const fileName = transfer.name ?? name ?? "file";
    const bar = el("i");
    const sub = el("span", { class: "transfer-sub" });
    const actions = el("div", { class: "transfer-actions" });
    const card = el("li", {
      class: "transfer", "data-testid": "transfer",
      dataset: { direction, state: transfer.state ?? "pending", progress: "0" },
      "aria-label": `${direction === "send" ? "Sending" : "Receiving"} ${fileName}`,
    },
      el("div", { class: "transfer-top" }, icon("i-file"),
        el("div", { class: "transfer-info" }, el("span", { class: "transfer-name", text: fileName }), sub)),
      el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" }, bar),
      actions);
    const progressEl = card.querySelector(".progress");
    const peer = direction === "send" ? `to ${this.nameOf(who)}` : `from ${this.nameOf(who)}`;
    let speed = 0;

    const cancel = el("button", { type: "button", text: "Cancel", onclick: () => { try { transfer.cancel(); } catch (err) { toastError("Cancel failed", err); } update(); } });
    actions.append(cancel);

    const update = (bytes = transfer.bytes ?? 0) => {
      const state = transfer.state ?? "active";
      const fraction = state === "done" ? 1 : total > 0 ? Math.min(1, bytes / total) : 0;
      card.dataset.state = state;
      card.dataset.progress = String(fraction);
      bar.style.setProperty("--p", String(fraction));
      progressEl.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
      const rate = state === "active" && speed > 0 ? ` · ${formatBytes(speed)}/s` : "";
      const what = { pending: "waiting", active: `${formatBytes(bytes)} of ${formatBytes(total)}${rate}`, done: "done", cancelled: "cancelled", failed: "failed" }[state] ?? state;
      sub.textContent = `${formatBytes(total)} ${peer} · ${what}`;
      cancel.hidden = state === "done" || state === "cancelled" || state === "failed";
    };

    transfer.on?.("progress", ({ bytes, bytesPerSecond }) => {
      speed = bytesPerSecond ?? 0;
      update(bytes ?? 0);
    });
    transfer.on?.("done", (ev) => {
      update(total);
      const blob = ev?.blob ?? transfer.blob;
      if (direction === "receive" && blob) {
        const url = URL.createObjectURL(blob);
        this.urls.push(url);
        actions.append(el("a", { "data-testid": "download", href: url, download: fileName, text: `Download ${formatBytes(blob.size)}` }));
      }
    });
    transfer.on?.("error", ({ code, message }) => {
      update();
      // A state the SDK has not settled yet still must not look "active" after an error.
      if (card.dataset.state === "active" || card.dataset.state === "pending") card.dataset.state = "failed";
      sub.textContent += ` — ${message}${code ? ` (${code})` : ""}`;
    });
    update();
    this.chat.append(card);
  }
}
