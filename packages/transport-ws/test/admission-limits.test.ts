import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, OptionsError } from "@switchboard/core";
import { HttpTransport } from "@switchboard/transport-ws";
import { closeAll, negotiate, RawClient, RS, startServer } from "../../../test-support/harness.js";

afterEach(closeAll);

@Hub("/hubs/limits")
class LimitsHub extends Hub {
  Echo(text: string): string {
    return text;
  }
}

/** Retries an async check until it holds (a slot is freed when a timer or a socket close runs). */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const negotiateStatus = async (url: string) => (await fetch(`${url}/negotiate?negotiateVersion=1`, { method: "POST" })).status;

describe("pending negotiations", () => {
  it("answers 503 once maxPendingNegotiations tokens are unused, and accepts again when one is used", async () => {
    const server = await startServer([LimitsHub], { maxPendingNegotiations: 3 });
    const url = server.url("/hubs/limits");
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) tokens.push((await negotiate(server, "/hubs/limits")).connectionToken);
    const refused = await fetch(`${url}/negotiate?negotiateVersion=1`, { method: "POST" });
    expect(refused.status).toBe(503);
    expect(await refused.text()).toBe("Too many connections are being negotiated; try again later.");
    const raw = await RawClient.open(`ws://127.0.0.1:${server.port}/hubs/limits?id=${tokens[0]}`);
    raw.sendText(`{"protocol":"json","version":1}${RS}`);
    await raw.nextFrame();
    expect(await negotiateStatus(url)).toBe(200); // a used token no longer counts
    expect(await negotiateStatus(url)).toBe(503);
  });

  it("frees the slot of a token that expired unused", async () => {
    const server = await startServer([LimitsHub], { maxPendingNegotiations: 1, unusedTokenTimeout: 50 });
    const url = server.url("/hubs/limits");
    expect(await negotiateStatus(url)).toBe(200);
    expect(await negotiateStatus(url)).toBe(503);
    await eventually(async () => (await negotiateStatus(url)) === 200, "an expired token's slot");
  });
});

describe("connections per remote address", () => {
  it("T32 answers 429 to a WebSocket upgrade past maxConnectionsPerAddress and frees the slot on close", async () => {
    const server = await startServer([LimitsHub], {}, { maxConnectionsPerAddress: 2 });
    const open = async () => RawClient.open(`ws://127.0.0.1:${server.port}/hubs/limits?id=${(await negotiate(server, "/hubs/limits")).connectionToken}`);
    const first = await open();
    await open();
    await expect(open()).rejects.toMatchObject({ status: 429 });
    await first.close();
    await eventually(() => open().then(() => true, () => false), "a freed slot");
  });

  it("answers 429 to a long-polling connect past the limit, and counts every transport together", async () => {
    const server = await startServer([LimitsHub], {}, { maxConnectionsPerAddress: 1 });
    await RawClient.open(`ws://127.0.0.1:${server.port}/hubs/limits?id=${(await negotiate(server, "/hubs/limits")).connectionToken}`);
    const { connectionToken } = await negotiate(server, "/hubs/limits");
    const poll = await fetch(`${server.url("/hubs/limits")}?id=${connectionToken}`);
    expect(poll.status).toBe(429);
    expect(await poll.text()).toBe("Too many connections from this address.");
  });

  it("refuses a maxConnectionsPerAddress that is not a positive integer", async () => {
    const server = await startServer([LimitsHub]);
    expect(() => new HttpTransport(server.server, { maxConnectionsPerAddress: 0 })).toThrow(OptionsError);
  });
});
