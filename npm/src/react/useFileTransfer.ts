'use client';
import { useCallback } from "react";
import type { FileTransfer, Room } from "../index.js";
import { notJoined, useResolvedRoom } from "./internal.js";
import { useStore } from "./store.js";
import { NO_TRANSFERS, transfers, type TransferView } from "./transferStore.js";

export interface UseFileTransferResult {
  /** Every transfer since first use, both directions, oldest first. */
  transfers: readonly TransferView[];
  /** Sends `file` to one peer. */
  sendFile: (file: Blob, to: string, name?: string) => FileTransfer;
  /** Sends `file` to every peer in the room (one transfer each). */
  sendFileToAll: (file: Blob, name?: string) => FileTransfer[];
  /** Drops done, cancelled and failed transfers from `transfers`. */
  clearFinished: () => void;
}

/** File transfers with progress; incoming files are accepted and listed here. */
export function useFileTransfer(room?: Room | null): UseFileTransferResult {
  const r = useResolvedRoom(room);
  const store = r ? transfers(r) : null;
  const list = useStore(store, NO_TRANSFERS);
  const sendFile = useCallback(
    (file: Blob, to: string, name?: string) => {
      if (!store) throw notJoined();
      return store.send(file, to, name);
    },
    [store],
  );
  const sendFileToAll = useCallback(
    (file: Blob, name?: string) => {
      if (!store || !r) throw notJoined();
      return r.peers.map((p) => store.send(file, p.id, name));
    },
    [store, r],
  );
  const clearFinished = useCallback(() => store?.clearFinished(), [store]);
  return { transfers: list, sendFile, sendFileToAll, clearFinished };
}
