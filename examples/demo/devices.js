// The Devices menu: camera and microphone pickers over room.listDevices / switchDevice,
// refilled on the room's `devices-changed` event.
import { el, toastError } from "./ui.js";

export class Devices {
  constructor({ button, panel, camera, mic, note }) {
    Object.assign(this, { button, panel, camera, mic, note });
    this.room = null;
    this.off = null;
    button.addEventListener("click", () => this.toggle());
    document.addEventListener("click", (e) => {
      if (!panel.hidden && !panel.contains(e.target) && !button.contains(e.target)) this.toggle(false);
    });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") this.toggle(false); });
    camera.addEventListener("change", () => this.switch("videoinput", camera.value));
    mic.addEventListener("change", () => this.switch("audioinput", mic.value));
  }

  /** Devices are switched in a room: outside one, the menu only lists them. */
  get supported() {
    return this.room !== null;
  }

  attach(room) {
    this.room = room;
    this.off = room.on("devices-changed", ({ devices }) => this.fill(devices));
  }

  detach() {
    this.off?.();
    this.room = null;
    this.toggle(false);
  }

  async toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open) await this.refresh();
  }

  async refresh() {
    const usable = this.supported;
    this.camera.disabled = this.mic.disabled = !usable;
    if (!usable) {
      this.note.textContent = "Join a call to switch devices.";
      // Still list what the browser has, so the menu is not empty.
      const list = await navigator.mediaDevices?.enumerateDevices?.().catch(() => []) ?? [];
      this.fill(list);
      return;
    }
    this.note.textContent = "";
    try {
      this.fill(await this.room.listDevices());
    } catch (err) {
      toastError("Could not list devices", err);
    }
  }

  /** Fills both selects and pre-selects the device that is live now. */
  fill(devices = []) {
    const live = this.room?.localStream?.getTracks().map((t) => t.getSettings?.().deviceId) ?? [];
    for (const [select, kind, fallback] of [[this.camera, "videoinput", "Camera"], [this.mic, "audioinput", "Microphone"]]) {
      const mine = devices.filter((d) => d.kind === kind);
      select.replaceChildren(...(mine.length ? mine : [{ deviceId: "", label: `No ${fallback.toLowerCase()} found` }])
        .map((d, i) => el("option", { value: d.deviceId, text: d.label || `${fallback} ${i + 1}` })));
      const current = mine.find((d) => live.includes(d.deviceId));
      if (current) select.value = current.deviceId;
    }
  }

  async switch(kind, deviceId) {
    if (!this.supported || !deviceId) return;
    try {
      await this.room.switchDevice(kind, deviceId);
      this.onSwitched?.();
    } catch (err) {
      toastError(`Could not switch ${kind === "videoinput" ? "camera" : "microphone"}`, err);
    }
  }
}
