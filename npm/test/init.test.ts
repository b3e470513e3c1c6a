// Loading the wasm module (index.ts `init`), with the module itself replaced: where it
// is loaded from, and what happens when `Room.join` began loading before `init` was told.
import { expect, it, vi } from "vitest";

const wasm = vi.hoisted(() => ({ init: vi.fn(), join: vi.fn() }));
vi.mock("../src/wasm/meshwire.js", () => ({ default: wasm.init, Room: { join: wasm.join } }));

import { init, Room } from "../src/index.js";

it("a wasmUrl given after a join began loading from the default place is used when that load fails", async () => {
  // A child's effect (Room.join) runs before its parent's (init({ wasmUrl })): the
  // default place has no wasm file, the CDN has.
  wasm.init.mockRejectedValueOnce(new Error("404 meshwire_bg.wasm")).mockResolvedValueOnce({});
  wasm.join.mockResolvedValue({ peerId: "me" });
  const joined = Room.join("ws://relay", "r");
  const loaded = init({ wasmUrl: "https://cdn.example.com/meshwire_bg.wasm" });
  await expect(joined).resolves.toEqual({ peerId: "me" });
  await loaded;
  expect(wasm.init.mock.calls).toEqual([[undefined], [{ module_or_path: "https://cdn.example.com/meshwire_bg.wasm" }]]);
  // Loaded: later calls load nothing more.
  await init();
  await Room.join("ws://relay", "r2");
  expect(wasm.init).toHaveBeenCalledTimes(2);
});
