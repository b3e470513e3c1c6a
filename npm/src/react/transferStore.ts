'use client';
// Every file transfer of a room, both directions, as plain snapshots React can render.
// The store listens from the join on (`useRoom` makes it; a room joined elsewhere, from
// its first use): incoming offers (`file`) and what we send through it; each
// transfer's own events refresh its snapshot.
import type { FileTransfer, FileTransferState, MeshwireErrorObject, Room } from "../index.js";
import { perRoom, Store } from "./store.js";

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
  /**
   * The SDK's object, for `cancel()`. (Its `accept()`/`reject()` work only during the
   * room's `file` event: to refuse files, decide in a `room.on("file", …)` handler.)
   */
  transfer: FileTransfer;
}

export const NO_TRANSFERS: readonly TransferView[] = Object.freeze([]);

class Transfers extends Store<readonly TransferView[]> {
  constructor(private readonly room: Room) {
    super(NO_TRANSFERS);
    room.on("file", ({ transfer }) => this.track(transfer, "receive"));
  }

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
      const views = this.snapshot;
      const i = views.findIndex((v) => v.transfer === transfer);
      this.publish(i < 0 ? [...views, view] : views.map((v, j) => (j === i ? view : v)));
    };
    // Once it is over nothing more comes: let go of the handlers (and so of the
    // transfer object), the snapshot keeps what it showed.
    const finish = () => offs.forEach((off) => off());
    const offs = [
      transfer.on("progress", (p) => {
        rate = p.bytesPerSecond;
        refresh();
      }),
      transfer.on("done", () => {
        refresh();
        finish();
      }),
      transfer.on("error", (e) => {
        error = Object.assign(new Error(e.message), { code: e.code });
        refresh();
        finish();
      }),
    ];
    refresh();
  }

  /** Forgets finished transfers (done, cancelled, failed). */
  clearFinished(): void {
    this.publish(this.snapshot.filter((v) => v.state === "pending" || v.state === "active"));
  }
}

/** The room's transfers: made when `useRoom` joins (or on first use of a room joined elsewhere). */
export const transfers = perRoom((room) => new Transfers(room));
