import { describe, expect, it } from "vitest";
import { ConnectionStore } from "../src/connections/connection-store.js";

describe("ConnectionStore", () => {
  it("reports a token pending until a transport claims it, in use after, and forgets it at release", () => {
    const store = new ConnectionStore(60_000);
    const { connectionId, connectionToken } = store.create(() => "ann", true);
    const url = `/hub?id=${connectionToken}&x=1`;
    const fromUrl = url.slice(8, 8 + connectionToken.length); // as a transport reads it
    expect(store.peek(fromUrl)).toEqual({ token: connectionToken, connectionId, owner: "ann", inUse: false, statefulReconnect: true });
    expect([store.pending, store.size]).toEqual([1, 1]);
    store.claim(fromUrl);
    expect(store.peek(connectionToken)).toMatchObject({ inUse: true });
    store.claim(fromUrl); // a second claim changes nothing
    expect([store.pending, store.size]).toEqual([0, 1]);
    store.release(connectionToken);
    expect(store.peek(connectionToken)).toBeUndefined();
    expect([store.pending, store.size]).toEqual([0, 0]);
    store.clear();
  });

  it("forgets an unclaimed token after unusedTimeout, and a released pending one at once", async () => {
    const store = new ConnectionStore(20);
    const kept = store.create();
    const released = store.create();
    store.release(released.connectionToken);
    expect([store.pending, store.size]).toEqual([1, 1]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(store.peek(kept.connectionToken)).toBeUndefined();
    expect([store.pending, store.size]).toEqual([0, 0]);
  });
});
