'use client';
// The small external store behind the per-room state that outlives components (local
// media, chat history, transfers): an immutable snapshot, listeners, and one instance
// per `Room` (a WeakMap, so a room that is gone takes its state with it).
import { useSyncExternalStore } from "react";
import type { Room } from "../index.js";

export class Store<T> {
  private readonly listeners = new Set<() => void>();

  constructor(protected snapshot: T) {}

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getSnapshot = (): T => this.snapshot;

  /** Replaces the snapshot and tells every subscriber. */
  protected publish(next: T): void {
    this.snapshot = next;
    this.listeners.forEach((l) => l());
  }
}

/** `make(room)` once per room: the same store for every hook of that room. */
export function perRoom<S>(make: (room: Room) => S): (room: Room) => S {
  const stores = new WeakMap<Room, S>();
  return (room) => {
    let store = stores.get(room);
    if (!store) stores.set(room, (store = make(room)));
    return store;
  };
}

const noSubscribe = () => () => undefined;

/** The store's snapshot, or `empty` without a store and during server rendering. */
export function useStore<T>(store: Store<T> | null, empty: T): T {
  const none = () => empty;
  return useSyncExternalStore(store?.subscribe ?? noSubscribe, store?.getSnapshot ?? none, none);
}
