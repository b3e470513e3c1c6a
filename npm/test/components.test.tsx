import { act, render } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AudioTrack } from "../src/react/index.js";
import { fakeStream } from "./fakeRoom.js";

afterEach(() => vi.restoreAllMocks());

describe("<AudioTrack> / <VideoTrack>", () => {
  it("an autoplay the browser refused plays from the user's next click, once", async () => {
    // The browser's autoplay policy: no sound before the page's first user gesture.
    let allowed = false;
    const play = vi.spyOn(HTMLMediaElement.prototype, "play").mockImplementation(() =>
      allowed ? Promise.resolve() : Promise.reject(Object.assign(new Error("play() needs a user gesture"), { name: "NotAllowedError" })),
    );
    vi.spyOn(HTMLMediaElement.prototype, "paused", "get").mockReturnValue(true);
    const stream = fakeStream(["audio"]);
    const view = render(<AudioTrack stream={stream} />);
    await act(async () => undefined);
    expect(play).toHaveBeenCalledTimes(1);
    allowed = true;
    await act(async () => {
      document.body.dispatchEvent(new Event("pointerdown", { bubbles: true }));
    });
    expect(play).toHaveBeenCalledTimes(2);
    // Once: later clicks leave it alone.
    await act(async () => {
      document.body.dispatchEvent(new Event("keydown", { bubbles: true }));
    });
    expect(play).toHaveBeenCalledTimes(2);
    view.unmount();
  });

  it("a gesture the browser does not count (a touch's pointerdown) leaves it waiting for the next", async () => {
    let allowed = false;
    const play = vi.spyOn(HTMLMediaElement.prototype, "play").mockImplementation(() =>
      allowed ? Promise.resolve() : Promise.reject(Object.assign(new Error("play() needs a user gesture"), { name: "NotAllowedError" })),
    );
    vi.spyOn(HTMLMediaElement.prototype, "paused", "get").mockReturnValue(true);
    const view = render(<AudioTrack stream={fakeStream(["audio"])} />);
    await act(async () => undefined);
    await act(async () => {
      document.body.dispatchEvent(new Event("pointerdown", { bubbles: true }));
    });
    expect(play).toHaveBeenCalledTimes(2);
    allowed = true;
    await act(async () => {
      document.body.dispatchEvent(new Event("touchend", { bubbles: true }));
    });
    expect(play).toHaveBeenCalledTimes(3);
    view.unmount();
  });

  it("stops waiting for a click once unmounted", async () => {
    const play = vi.spyOn(HTMLMediaElement.prototype, "play").mockImplementation(() =>
      Promise.reject(Object.assign(new Error("play() needs a user gesture"), { name: "NotAllowedError" })),
    );
    const view = render(<AudioTrack stream={fakeStream(["audio"])} />);
    await act(async () => undefined);
    view.unmount();
    await act(async () => {
      document.body.dispatchEvent(new Event("pointerdown", { bubbles: true }));
    });
    expect(play).toHaveBeenCalledTimes(1);
  });
});
