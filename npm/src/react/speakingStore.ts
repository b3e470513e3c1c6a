'use client';
// Who speaks now, per room, shared by every `useSpeaking` of that room: a component
// mounted while someone talks shows them at once, not from their next change. The SDK
// runs its audio analysers only while something listens to `speaking`, so this store
// listens only while a component watches it, and forgets everyone when it stops (what
// it knew goes stale once the analysers stop).
import type { Room } from "../index.js";
import { perRoom, Store } from "./store.js";

/** Nobody speaking: the snapshot of a room nobody watches. */
export const NOBODY: ReadonlySet<string> = new Set();

class Speakers extends Store<ReadonlySet<string>> {
  private watchers = 0;
  private stop: (() => void) | null = null;

  constructor(private readonly room: Room) {
    super(NOBODY);
  }

  /** `subscribe` for `useSyncExternalStore`, which starts and stops the listening. */
  readonly watch = (listener: () => void): (() => void) => {
    const unsubscribe = this.subscribe(listener);
    if (this.watchers++ === 0) {
      const offs = [
        this.room.on("speaking", ({ peerId, speaking }) => {
          if (speaking === this.snapshot.has(peerId)) return;
          const next = new Set(this.snapshot);
          if (speaking) next.add(peerId);
          else next.delete(peerId);
          this.publish(next);
        }),
        // A room that is left sends no more `speaking` events: nobody speaks in it.
        this.room.on("signaling", (state) => {
          if (state === "closed" && this.snapshot.size) this.publish(NOBODY);
        }),
      ];
      this.stop = () => offs.forEach((off) => off());
    }
    return () => {
      unsubscribe();
      if (--this.watchers === 0) {
        this.stop?.();
        this.stop = null;
        this.snapshot = NOBODY;
      }
    };
  };
}

/** The room's speakers: made on the first `useSpeaking` of that room. */
export const speakers = perRoom((room) => new Speakers(room));
