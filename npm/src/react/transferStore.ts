'use client';
// Every file transfer of a room, both directions, as plain snapshots React can render.
// The store listens from its first use: incoming offers (`file`) and what we send
// through it; each transfer's own events refresh its snapshot.
import type { FileTransfer, FileTransferState, MeshwireErrorObject, Room } from "../index.js";

export interface TransferView {
  id: string;
  name: string;
  size: number;
  mime: string;
  from: string;
  to: string;
  direction: "send" | "receive";
  state: FileTransferState;
  /** Bytes acknowledged (sending) or received so far. */
  bytes: number;
  /** `bytes / size`, 0..1 (1 for an empty file once done). */
  progress: number;
  bytesPerSecond: number;
  /** The received file, once verified. */
  blob: Blob | null;
  error: MeshwireErrorObject | null;
  /** The SDK's object: `cancel()`, `accept()`, `reject()`. */
  transfer: FileTransfer;
}

export const NO_TRANSFERS: readonly TransferView[] = Object.freeze([]);

class Transfers {
  private views: readonly TransferView[] = NO_TRANSFERS;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly room: Room) {
    room.on("file", ({ transfer }) => this.track(transfer, "receive"));
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getSnapshot = (): readonly TransferView[] => this.views;

  send(file: Blob, to: string, name?: string): FileTransfer {
    const transfer = this.room.sendFile(file, name === undefined ? { to } : { to, name });
    this.track(transfer, "send");
    return transfer;
  }

  private track(transfer: FileTransfer, direction: "send" | "receive"): void {
    let rate = 0;
    let error: MeshwireErrorObject | null = null;
    const refresh = () => {
      const view: TransferView = {
        id: transfer.id,
        name: transfer.name,
        size: transfer.size,
        mime: transfer.mime,
        from: transfer.from,
        to: transfer.to,
        direction,
        state: transfer.state,
        bytes: transfer.bytes,
        progress: transfer.size > 0 ? transfer.bytes / transfer.size : transfer.state === "done" ? 1 : 0,
        bytesPerSecond: rate,
        blob: transfer.blob ?? null,
        error,
        transfer,
      };
      const i = this.views.findIndex((v) => v.transfer === transfer);
      this.views = i < 0 ? [...this.views, view] : this.views.map((v, j) => (j === i ? view : v));
      this.listeners.forEach((l) => l());
    };
    transfer.on("progress", (p) => {
      rate = p.bytesPerSecond;
      refresh();
    });
    transfer.on("done", refresh);
    transfer.on("error", (e) => {
      error = Object.assign(new Error(e.message), { code: e.code });
      refresh();
    });
    refresh();
  }

  /** Forgets finished transfers (done, cancelled, failed). */
  clearFinished(): void {
    this.views = this.views.filter((v) => v.state === "pending" || v.state === "active");
    this.listeners.forEach((l) => l());
  }
}

const stores = new WeakMap<Room, Transfers>();

/** The room's transfers, listened to from the first use on. */
export function transfers(room: Room): Transfers {
  let store = stores.get(room);
  if (!store) stores.set(room, (store = new Transfers(room)));
  return store;
}
