/**
 * Stateful reconnect on the wire (JSON, by hand): negotiate, the hold until the client's first
 * frame, Acks, Sequence and replay, back-pressure, and every bad input of the reattach path — a
 * clear refusal for the offender, nothing harmed for the connection or anyone else.
 */
import "reflect-metadata";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Hub, LoggingModule, OptionsError, resolveOptions, type ServerOptions } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { closeAll, connectClient, negotiate, RawClient, RS, settle, startServer, until, type TestServer } from "../../../test-support/harness.js";
// The class the server in this process uses (the built package's), to see which way a burst was kept.
import { ReplayBuffer } from "../dist/connections/replay-buffer.js";

const PATH = "/hubs/wire-stateful";
const events: string[] = [];
let counted = 0;

@Hub(PATH)
class WireHub extends Hub {
  override async onConnected(): Promise<void> {
    events.push(`connected:${this.context.connectionId}`);
    await this.clients.caller.send("Hello", "first");
  }
  override onDisconnected(): void {
    events.push(`disconnected:${this.context.connectionId}`);
  }
  override onReconnected(): void {
    events.push(`reconnected:${this.context.connectionId}`);
  }
  Count(): void {
    counted++;
  }
  Counted(): number {
    return counted;
  }
  Echo(value: string): string {
    return value;
  }
  Abort(): void {
    this.context.abort();
  }
}

afterEach(async () => {
  await closeAll();
  events.length = 0;
  counted = 0;
});

const USERS: Record<string, { sub: string }> = { alice: { sub: "alice" }, bob: { sub: "bob" } };

function withUsers(extra: Partial<ServerOptions> = {}): Partial<ServerOptions> {
  return {
    authenticate: ({ token }) => {
      if (token === "expired") throw new Error("token expired");
      return token === undefined ? null : (USERS[token] ?? null);
    },
    ...extra,
  };
}

/** Every JSON record received so far, parsed. */
function records(client: RawClient): Record<string, unknown>[] {
  return client
    .text()
    .split(RS)
    .filter((text) => text.length > 0)
    .map((text) => JSON.parse(text) as Record<string, unknown>);
}

function invocations(client: RawClient, target: string): unknown[] {
  return records(client)
    .filter((record) => record.type === 1 && record.target === target)
    .map((record) => (record.arguments as unknown[])[0]);
}

async function negotiateStateful(server: TestServer, user?: string): Promise<{ connectionId: string; connectionToken: string; useStatefulReconnect?: boolean }> {
  const response = await fetch(`${server.url(PATH)}/negotiate?negotiateVersion=1&useStatefulReconnect=true`, {
    method: "POST",
    headers: user === undefined ? {} : { authorization: `Bearer ${user}` },
  });
  expect(response.status).toBe(200);
  return (await response.json()) as never;
}

function socketUrl(server: TestServer, token: string): string {
  return `ws://127.0.0.1:${server.port}${PATH}?id=${token}`;
}

function headersFor(user?: string): Record<string, string> | undefined {
  return user === undefined ? undefined : { authorization: `Bearer ${user}` };
}

/** Negotiates stateful reconnect, handshakes version 2 and sends the client's first Ping. */
async function connectStateful(server: TestServer, user?: string): Promise<{ client: RawClient; token: string; id: string }> {
  const negotiated = await negotiateStateful(server, user);
  const client = await RawClient.open(socketUrl(server, negotiated.connectionToken), headersFor(user));
  client.sendText(`{"protocol":"json","version":2}${RS}`);
  await client.nextFrame();
  client.sendText(`{"type":6}${RS}`);
  await until(() => invocations(client, "Hello").length === 1, 5_000, "Hello");
  return { client, token: negotiated.connectionToken, id: negotiated.connectionId };
}

async function rejectStatus(url: string, headers?: Record<string, string>): Promise<number | undefined> {
  try {
    await RawClient.open(url, headers);
    return 101;
  } catch (error) {
    return (error as { status?: number }).status;
  }
}

function endpointOf(server: TestServer) {
  return server.server.endpoint(PATH)!;
}

async function lose(server: TestServer, client: RawClient): Promise<void> {
  await client.close();
  await until(() => [...endpointOf(server).connections].some((connection) => connection.awaitingReconnect), 5_000, "the server to see the loss");
}

describe("stateful reconnect: options", () => {
  it.each([
    ["statefulReconnect", "true"],
    ["statefulReconnectBufferSize", 0],
    ["statefulReconnectBufferSize", 1.5],
    ["disconnectTimeout", -1],
    ["disconnectTimeout", Infinity],
  ])("rejects %s = %s", (name, value) => {
    expect(() => resolveOptions({ protocols: [new JsonHubProtocol()], [name]: value })).toThrow(OptionsError);
  });

  it("defaults to on, 100 000 bytes and 15 s", () => {
    const options = resolveOptions({ protocols: [new JsonHubProtocol()] });
    expect([options.statefulReconnect, options.statefulReconnectBufferSize, options.disconnectTimeout]).toEqual([true, 100_000, 15_000]);
  });
});

describe("stateful reconnect: negotiate and handshake", () => {
  it("offers the feature only when asked and allowed", async () => {
    const server = await startServer([WireHub]);
    expect((await negotiateStateful(server)).useStatefulReconnect).toBe(true);
    expect(await negotiate(server, PATH)).not.toHaveProperty("useStatefulReconnect");
    const off = await startServer([WireHub], { statefulReconnect: false });
    expect(await negotiate(off, PATH, "negotiateVersion=1&useStatefulReconnect=true")).not.toHaveProperty("useStatefulReconnect");
  });

  it("holds hub messages after a version-2 handshake until the client's first frame", async () => {
    const server = await startServer([WireHub]);
    const negotiated = await negotiateStateful(server);
    const client = await RawClient.open(socketUrl(server, negotiated.connectionToken));
    client.sendText(`{"protocol":"json","version":2}${RS}`);
    await until(() => events.length === 1, 5_000, "onConnected");
    await settle(100);
    expect(client.text()).toBe(`{}${RS}`);
    client.sendText(`{"type":6}${RS}`);
    await until(() => invocations(client, "Hello").length === 1, 5_000, "Hello");
  });

  it("acknowledges the client's messages on the heartbeat", async () => {
    const server = await startServer([WireHub]);
    const { client } = await connectStateful(server);
    client.sendText(`{"type":1,"target":"Count","arguments":[]}${RS}{"type":1,"target":"Count","arguments":[]}${RS}`);
    await until(() => records(client).some((record) => record.type === 8), 5_000, "an Ack");
    expect(records(client).filter((record) => record.type === 8)).toEqual([{ type: 8, sequenceId: 2 }]);
  });
});

describe("stateful reconnect: reattach on the wire", () => {
  it("sends Sequence and replays what was not acknowledged, ignores the client until its Sequence, drops duplicates", async () => {
    const server = await startServer([WireHub]);
    const { client, token, id } = await connectStateful(server);
    const caller = server.server.hubContext(WireHub).clients.client(id);
    await caller.send("Down", 2);
    await until(() => invocations(client, "Down").length === 1, 5_000, "Down 2");
    client.sendText(`{"type":8,"sequenceId":1}${RS}`); // Hello acknowledged, Down 2 not
    client.sendText(`{"type":1,"target":"Count","arguments":[]}${RS}`);
    await until(() => counted === 1, 5_000, "Count");
    await lose(server, client);
    await caller.send("Down", 3); // sent while away

    const back = await RawClient.open(socketUrl(server, token));
    await until(() => invocations(back, "Down").length === 2, 5_000, "the replay");
    const replay = records(back);
    expect(replay[0]).toEqual({ type: 9, sequenceId: 2 });
    expect(invocations(back, "Down")).toEqual([2, 3]);
    expect(invocations(back, "Hello")).toEqual([]);

    // Before its Sequence, the client's messages are ignored.
    back.sendText(`{"type":1,"target":"Count","arguments":[]}${RS}`);
    // Its Sequence says its next message is id 1, which the server processed: the re-sent Count is dropped.
    back.sendText(`{"type":9,"sequenceId":1}${RS}{"type":1,"target":"Count","arguments":[]}${RS}`);
    back.sendText(`{"type":1,"target":"Count","arguments":[]}${RS}{"type":1,"invocationId":"9","target":"Counted","arguments":[]}${RS}`);
    await until(() => records(back).some((record) => record.type === 3), 5_000, "the Completion");
    expect(records(back).find((record) => record.type === 3)).toEqual({ type: 3, invocationId: "9", result: 2 });
    await until(() => events.includes(`reconnected:${id}`), 5_000, "onReconnected");
    expect(events.filter((event) => event.startsWith("disconnected"))).toEqual([]);
  });

  it("replays a group's bursts from inside one, after an Ack that ends in its middle", async () => {
    const kept = vi.spyOn(ReplayBuffer.prototype, "pushBurst");
    const server = await startServer([WireHub]);
    const { client, token, id } = await connectStateful(server);
    client.sendText(`{"type":8,"sequenceId":1}${RS}`); // Hello acknowledged
    const context = server.server.hubContext(WireHub);
    await context.groups.add(id, "g");
    // Two bursts: the sends of one turn to a group go out together, and are kept together.
    for (const from of [0, 5]) {
      for (let n = from; n < from + 5; n++) void context.clients.group("g").send("Down", n);
      await until(() => invocations(client, "Down").length === from + 5, 5_000, `burst ${from}`);
    }
    // Each burst was kept as one entry: the group's array for all its members, not its records one by one.
    expect(kept.mock.calls.map(([records, count]) => [records.length, count])).toEqual([
      [5, 5],
      [5, 5],
    ]);
    kept.mockRestore();
    client.sendText(`{"type":8,"sequenceId":4}${RS}`); // Down 0, 1 and 2 acknowledged, 3 and 4 not
    await settle(50);
    await lose(server, client);
    void context.clients.group("g").send("Down", 10); // sent while away

    const back = await RawClient.open(socketUrl(server, token));
    await until(() => invocations(back, "Down").length === 8, 5_000, "the replay");
    expect(records(back)[0]).toEqual({ type: 9, sequenceId: 5 });
    expect(invocations(back, "Down")).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    // Acknowledged past the bursts, nothing of them comes again.
    back.sendText(`{"type":9,"sequenceId":1}${RS}{"type":8,"sequenceId":12}${RS}`);
    await until(() => events.includes(`reconnected:${id}`), 5_000, "onReconnected");
    await lose(server, back);
    const again = await RawClient.open(socketUrl(server, token));
    await until(() => records(again).length > 0, 5_000, "the Sequence");
    await settle(50);
    expect(records(again)).toEqual([{ type: 9, sequenceId: 13 }]);
  });

  it("lets a reattach take over a transport the server still thinks is open, and runs the onReconnected modules around the hub", async () => {
    const server = await startServer([WireHub], {
      modules: [
        {
          async onReconnected(ctx, next) {
            events.push(`module:before:${ctx.connection.connectionId}`);
            await next();
            events.push(`module:after:${ctx.connection.connectionId}`);
          },
        },
      ],
    });
    const { client, token, id } = await connectStateful(server);
    const back = await RawClient.open(socketUrl(server, token));
    await client.closed();
    await until(() => records(back).length >= 2, 5_000, "the replay");
    expect(records(back)).toEqual([{ type: 9, sequenceId: 1 }, { type: 1, target: "Hello", arguments: ["first"] }]);
    await until(() => events.includes(`module:after:${id}`), 5_000, "the modules");
    expect(events.slice(-3)).toEqual([`module:before:${id}`, `reconnected:${id}`, `module:after:${id}`]);
    // The old socket's late close does not touch the resumed connection.
    back.sendText(`{"type":9,"sequenceId":1}${RS}{"type":1,"invocationId":"1","target":"Echo","arguments":["ok"]}${RS}`);
    await until(() => records(back).some((record) => record.type === 3), 5_000, "the Completion");
    expect(events.filter((event) => event.startsWith("disconnected"))).toEqual([]);
  });

  it("logs the reconnect with the LoggingModule", async () => {
    const server = await startServer([WireHub], { modules: [LoggingModule] });
    const { client, token, id } = await connectStateful(server);
    await lose(server, client);
    await RawClient.open(socketUrl(server, token));
    await until(() => events.includes(`reconnected:${id}`), 5_000, "onReconnected");
    expect(server.logger.entries.filter((entry) => entry.message === "Client reconnected.")).toEqual([
      { level: "info", fields: { hub: "WireHub", connectionId: id, user: null }, message: "Client reconnected." },
    ]);
  });

  it("reports a failing onReconnected to onError and keeps the resumed connection", async () => {
    const server = await startServer([WireHub], {
      modules: [
        {
          onReconnected() {
            throw new Error("rejoin failed");
          },
          onError(ctx, error) {
            events.push(`error:${ctx.stage}:${(error as Error).message}`);
          },
        },
      ],
    });
    const { client, token } = await connectStateful(server);
    await lose(server, client);
    const back = await RawClient.open(socketUrl(server, token));
    await until(() => events.includes("error:reconnected:rejoin failed"), 5_000, "onError");
    back.sendText(`{"type":9,"sequenceId":1}${RS}{"type":1,"invocationId":"1","target":"Echo","arguments":["still here"]}${RS}`);
    await until(() => records(back).some((record) => record.type === 3), 5_000, "the Completion");
    expect(records(back).find((record) => record.type === 3)).toEqual({ type: 3, invocationId: "1", result: "still here" });
    expect(server.logger.entries.some((entry) => entry.level === "error" && entry.message === "onReconnected failed.")).toBe(true);
  });

  // A group send is delivered at the end of the turn in one walk (deliverNow), a send to one
  // connection through the connection's queue: both must wait for the replay buffer alike.
  const targetOf = async (server: TestServer, id: string, address: "client" | "group") => {
    const context = server.server.hubContext(WireHub);
    if (address === "client") return context.clients.client(id);
    await context.groups.add(id, "g");
    return context.clients.group("g");
  };

  it.each(["client", "group"] as const)("makes a fan-out (to one %s) wait when the replay buffer is full, and sends the rest as Acks free space", async (address) => {
    const server = await startServer([WireHub], { statefulReconnectBufferSize: 200 });
    const { client, id } = await connectStateful(server);
    client.sendText(`{"type":8,"sequenceId":1}${RS}`);
    const caller = await targetOf(server, id, address);
    for (let n = 0; n < 20; n++) void caller.send("Down", n);
    await until(() => invocations(client, "Down").length > 0, 5_000, "the first sends");
    await settle(100);
    const first = invocations(client, "Down").length;
    expect(first).toBeLessThan(20);
    let acked = 1;
    while (invocations(client, "Down").length < 20) {
      const received = invocations(client, "Down").length + 1;
      if (received > acked) {
        acked = received;
        client.sendText(`{"type":8,"sequenceId":${acked}}${RS}`);
      }
      await settle(10);
    }
    expect(invocations(client, "Down")).toEqual(Array.from({ length: 20 }, (_, n) => n));
  });

  it("keeps one burst whole and splits the next between the replay buffer and the queue; Acks inside the first release the rest in order", async () => {
    const server = await startServer([WireHub], { statefulReconnectBufferSize: 300 });
    const { client, id } = await connectStateful(server);
    client.sendText(`{"type":8,"sequenceId":1}${RS}`); // Hello acknowledged
    const context = server.server.hubContext(WireHub);
    await context.groups.add(id, "g");
    for (let n = 0; n < 3; n++) void context.clients.group("g").send("Down", n); // about 120 bytes: kept whole
    await until(() => invocations(client, "Down").length === 3, 5_000, "the first burst");
    for (let n = 3; n < 13; n++) void context.clients.group("g").send("Down", n); // about 400 more: split
    await until(() => invocations(client, "Down").length > 3, 5_000, "part of the second burst");
    await settle(100);
    expect(invocations(client, "Down").length).toBeLessThan(13);
    client.sendText(`{"type":8,"sequenceId":3}${RS}`); // Down 0 and 1: inside the first burst
    let acked = 3;
    while (invocations(client, "Down").length < 13) {
      await settle(20);
      const received = invocations(client, "Down").length + 1;
      if (received > acked) {
        acked = received;
        client.sendText(`{"type":8,"sequenceId":${acked}}${RS}`);
      }
    }
    expect(invocations(client, "Down")).toEqual(Array.from({ length: 13 }, (_, n) => n));
  });

  it.each(["client", "group"] as const)("still closes a connection whose waiting sends (to one %s) pass maxBufferedBytes while away", async (address) => {
    const server = await startServer([WireHub], { statefulReconnectBufferSize: 500, maxBufferedBytes: 4_000 });
    const { client, token, id } = await connectStateful(server);
    const caller = await targetOf(server, id, address);
    await lose(server, client);
    for (let n = 0; n < 100; n++) void caller.send("Down", "x".repeat(100));
    await until(() => events.includes(`disconnected:${id}`), 5_000, "the slow-consumer close");
    expect(await rejectStatus(socketUrl(server, token))).toBe(404);
  });
});

describe("stateful reconnect: bad input", () => {
  it.each([
    ["an Ack beyond what was sent", `{"type":8,"sequenceId":5}`],
    ["a Sequence beyond what was received", `{"type":9,"sequenceId":3}`],
    ["a Sequence of 0", `{"type":9,"sequenceId":0}`],
    ["a negative Ack", `{"type":8,"sequenceId":-1}`],
  ])("closes the connection with an error for %s; others are unaffected", async (_name, record) => {
    const server = await startServer([WireHub]);
    const other = await connectClient(server.url(PATH));
    const { client, token, id } = await connectStateful(server);
    client.sendText(`${record}${RS}`);
    await client.closed();
    expect(records(client).at(-1)).toMatchObject({ type: 7, error: expect.stringContaining("Connection closed with an error.") });
    await until(() => events.includes(`disconnected:${id}`), 5_000, "onDisconnected");
    expect(await rejectStatus(socketUrl(server, token))).toBe(404);
    expect(await other.invoke("Echo", "still here")).toBe("still here");
  });

  it("refuses a reattach with an unknown token (404), another user (403) or a failed authentication (401), and the real one still works", async () => {
    const server = await startServer([WireHub], withUsers());
    const { client, token, id } = await connectStateful(server, "alice");
    await caller(server, id).send("Down", 1);
    await until(() => invocations(client, "Down").length === 1, 5_000, "Down 1");
    await lose(server, client);
    expect(await rejectStatus(socketUrl(server, "not-a-token"), headersFor("alice"))).toBe(404);
    expect(await rejectStatus(socketUrl(server, token), headersFor("bob"))).toBe(403);
    expect(await rejectStatus(socketUrl(server, token), headersFor("expired"))).toBe(401);
    expect(await rejectStatus(socketUrl(server, token))).toBe(403); // anonymous is another user too
    const back = await RawClient.open(socketUrl(server, token), headersFor("alice"));
    await until(() => invocations(back, "Down").length === 1, 5_000, "the replay");
    // Nothing was acknowledged: the replay starts at the first message, Hello.
    expect(records(back)[0]).toEqual({ type: 9, sequenceId: 1 });
    expect(invocations(back, "Hello")).toEqual(["first"]);
    expect(events.filter((event) => event.startsWith("disconnected"))).toEqual([]);
  });

  it("admits one of two concurrent reattaches and refuses the other with 409", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let waiting = 0;
    const server = await startServer([WireHub], {
      authenticate: async ({ query }) => {
        if (query.get("gate") === "1") {
          waiting++;
          await gate;
        }
        return null;
      },
    });
    const { client, token, id } = await connectStateful(server);
    await lose(server, client);
    const url = `${socketUrl(server, token)}&gate=1`;
    const attempts = [rejectStatus(url), rejectStatus(url)];
    await until(() => waiting === 2, 5_000, "both reattaches");
    release();
    expect((await Promise.all(attempts)).sort()).toEqual([101, 409]);
    await until(() => events.includes(`reconnected:${id}`), 5_000, "onReconnected");
    expect(events.filter((event) => event === `reconnected:${id}`)).toHaveLength(1);
  });

  it("refuses a second transport for a connection that did not negotiate the feature (409), then 404 once it ended", async () => {
    const server = await startServer([WireHub]);
    const negotiated = await negotiate(server, PATH);
    const client = await RawClient.open(socketUrl(server, negotiated.connectionToken));
    client.sendText(`{"protocol":"json","version":2}${RS}`);
    await client.nextFrame();
    expect(await rejectStatus(socketUrl(server, negotiated.connectionToken))).toBe(409);
    await client.close();
    await until(() => events.includes(`disconnected:${negotiated.connectionId}`), 5_000, "onDisconnected at once");
    expect(await rejectStatus(socketUrl(server, negotiated.connectionToken))).toBe(404);
  });

  it("ends a connection that negotiated the feature but handshook version 1 when its transport is lost", async () => {
    const server = await startServer([WireHub]);
    const negotiated = await negotiateStateful(server);
    const client = await RawClient.open(socketUrl(server, negotiated.connectionToken));
    client.sendText(`{"protocol":"json","version":1}${RS}`);
    await client.nextFrame();
    expect(await rejectStatus(socketUrl(server, negotiated.connectionToken))).toBe(409);
    await client.close();
    await until(() => events.includes(`disconnected:${negotiated.connectionId}`), 5_000, "onDisconnected at once");
    expect(await rejectStatus(socketUrl(server, negotiated.connectionToken))).toBe(404);
  });

  it.each([
    ["the server aborted it", `{"type":1,"target":"Abort","arguments":[]}`],
    ["the client sent Close", `{"type":7}`],
  ])("answers 404 to a reattach after %s", async (_name, record) => {
    const server = await startServer([WireHub]);
    const { client, token, id } = await connectStateful(server);
    client.sendText(`${record}${RS}`);
    await client.closed();
    expect(events).toContain(`disconnected:${id}`);
    expect(await rejectStatus(socketUrl(server, token))).toBe(404);
  });
});

describe("stateful reconnect: graceful close", () => {
  it.each([1000, 1001])("ends the connection at once when the client closes the WebSocket with %s (a page going away)", async (code) => {
    const server = await startServer([WireHub]);
    const { client, token, id } = await connectStateful(server);
    client.socket.close(code);
    await client.closed();
    await until(() => events.includes(`disconnected:${id}`), 5_000, "onDisconnected");
    expect(await rejectStatus(socketUrl(server, token))).toBe(404);
  });
});

function caller(server: TestServer, id: string) {
  return server.server.hubContext(WireHub).clients.client(id);
}
