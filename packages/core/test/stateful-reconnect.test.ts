/**
 * Stateful reconnect with the official client (`withStatefulReconnect()`), JSON and MessagePack,
 * through a loopback proxy that cuts the TCP connection and holds the client's reattach attempt
 * while the test sends, so the replay and the duplicate filter really run.
 */
import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, type ServerOptions } from "@switchboard/core";
import { buildClient, closeAll, settle, signalR, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";
import { CutProxy } from "../../../test-support/cut-proxy.js";

const events: string[] = [];
const ups: [string, number][] = [];
let counted = 0;

@Hub("/hubs/stateful")
class StatefulHub extends Hub {
  override onConnected(): void {
    events.push(`connected:${this.context.connectionId}`);
  }
  override onDisconnected(): void {
    events.push(`disconnected:${this.context.connectionId}`);
  }
  override onReconnected(): void {
    events.push(`reconnected:${this.context.connectionId}`);
  }
  Join(group: string): Promise<void> {
    return this.groups.add(this.context.connectionId, group);
  }
  Whoami(): string {
    return this.context.connectionId;
  }
  Groups(): string[] {
    return this.groups.groupsOf(this.context.connectionId);
  }
  Up(n: number): void {
    ups.push([this.context.connectionId, n]);
  }
  Count(): void {
    counted++;
  }
  Counted(): number {
    return counted;
  }
}

const proxies: CutProxy[] = [];

afterEach(async () => {
  await Promise.allSettled(proxies.splice(0).map((proxy) => proxy.close()));
  await closeAll();
  events.length = 0;
  ups.length = 0;
  counted = 0;
});

interface Setup {
  readonly server: TestServer;
  readonly proxy: CutProxy;
  readonly client: signalR.HubConnection;
  readonly down: number[];
  readonly id: string;
}

async function setup(protocol: ClientProtocol, options: Partial<ServerOptions> = {}, stateful = true): Promise<Setup> {
  const server = await startServer([StatefulHub], options);
  const proxy = await CutProxy.start(server.port);
  proxies.push(proxy);
  const client = buildClient(proxy.url("/hubs/stateful"), protocol, (builder) => {
    if (stateful) builder.withStatefulReconnect();
  });
  const down: number[] = [];
  client.on("Down", (n: number) => void down.push(n));
  await client.start();
  const id = await client.invoke<string>("Whoami");
  await client.invoke("Join", "room");
  return { server, proxy, client, down, id };
}

function reconnections(id: string): number {
  return events.filter((event) => event === `reconnected:${id}`).length;
}

function sendDown(server: TestServer, from: number, to: number): void {
  const room = server.server.hubContext(StatefulHub).clients.group("room");
  for (let n = from; n < to; n++) void room.send("Down", n);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** Cuts the connection while holding the client's reattach attempt until the server saw the loss. */
async function cutAndHold(proxy: CutProxy, server: TestServer): Promise<void> {
  proxy.hold();
  proxy.cut();
  await until(() => proxy.heldCount > 0, 5_000, "the reattach attempt");
  const endpoint = server.server.endpoint("/hubs/stateful")!;
  await until(() => [...endpoint.connections].every((connection) => connection.awaitingReconnect), 5_000, "the server to see the loss");
}

describe.each(["json", "messagepack"] as const)("stateful reconnect (%s)", (protocol) => {
  it("keeps the connection id and groups, and loses, duplicates or reorders none of 1,000 messages each way sent while away", async () => {
    const { server, proxy, client, down, id } = await setup(protocol);
    sendDown(server, 0, 10);
    await until(() => down.length === 10, 5_000, "messages before the cut");

    await cutAndHold(proxy, server);
    expect(client.state).toBe(signalR.HubConnectionState.Connected);
    sendDown(server, 10, 1_010);
    const sent = range(0, 1_000).map((n) => client.send("Up", n));
    await settle(50);
    expect(events).not.toContain(`disconnected:${id}`);
    proxy.release();

    await Promise.all(sent);
    await until(() => down.length >= 1_010 && ups.length >= 1_000, 10_000, "the replay");
    expect(down).toEqual(range(0, 1_010));
    expect(ups.map(([, n]) => n)).toEqual(range(0, 1_000));
    expect(new Set(ups.map(([connectionId]) => connectionId))).toEqual(new Set([id]));
    expect(client.connectionId).toBe(id);
    expect(await client.invoke("Whoami")).toBe(id);
    expect(await client.invoke("Groups")).toEqual(["room"]);
    await until(() => reconnections(id) === 1, 5_000, "onReconnected");
    expect(events.filter((event) => event.startsWith("disconnected"))).toEqual([]);

    // Still one logical connection afterwards: a group send reaches it once.
    sendDown(server, 1_010, 1_011);
    await until(() => down.length === 1_011, 5_000, "a send after the reattach");
    await settle(50);
    expect(down.length).toBe(1_011);
  });

  it("runs a message the server processed but had not acknowledged before the cut exactly once", async () => {
    const { server, proxy, client } = await setup(protocol);
    // Nothing from the server reaches the client any more: in particular not the Ack for Count.
    proxy.dropFromServer = true;
    await client.send("Count");
    await until(() => counted === 1, 5_000, "Count to run");
    await cutAndHold(proxy, server);
    proxy.dropFromServer = false;
    proxy.release();
    // The client re-sends Count after its Sequence; the server drops it as a duplicate.
    await until(() => reconnections(client.connectionId!) === 1, 5_000, "the reattach");
    expect(await client.invoke("Counted")).toBe(1);
    await client.send("Count");
    expect(await client.invoke("Counted")).toBe(2);
  });

  it("survives two cuts in a row", async () => {
    const { server, proxy, client, down, id } = await setup(protocol);
    for (let round = 0; round < 2; round++) {
      await cutAndHold(proxy, server);
      sendDown(server, round * 100, round * 100 + 100);
      const sent = range(round * 100, round * 100 + 100).map((n) => client.send("Up", n));
      proxy.release();
      await Promise.all(sent);
      await until(() => reconnections(id) === round + 1, 5_000, `reattach ${round + 1}`);
      // The client's side of the new socket is open too (a cut before its 'open' would end it).
      expect(await client.invoke("Whoami")).toBe(id);
    }
    await until(() => down.length >= 200 && ups.length >= 200, 10_000, "both rounds");
    expect(down).toEqual(range(0, 200));
    expect(ups.map(([, n]) => n)).toEqual(range(0, 200));
    expect(await client.invoke("Whoami")).toBe(id);
    expect(await client.invoke("Groups")).toEqual(["room"]);
  });

  it("ends the connection once when the client does not come back within disconnectTimeout", async () => {
    const { server, proxy, client, id } = await setup(protocol, { disconnectTimeout: 300 });
    const closed = new Promise<Error | undefined>((resolve) => client.onclose(resolve));
    await cutAndHold(proxy, server);
    await until(() => events.includes(`disconnected:${id}`), 5_000, "onDisconnected");
    expect(server.server.hubContext(StatefulHub).groups.count("room")).toBe(0);
    expect(server.server.hubContext(StatefulHub).groups.groupsOf(id)).toEqual([]);
    // The late reattach is refused (404) and the client closes.
    proxy.release();
    await closed;
    expect(client.state).toBe(signalR.HubConnectionState.Disconnected);
    await settle(50);
    expect(events.filter((event) => event === `disconnected:${id}`)).toHaveLength(1);
    expect(reconnections(id)).toBe(0);
  });

  it.each([
    ["a client without stateful reconnect", {}, false],
    ["a withStatefulReconnect() client of a server with the feature off", { statefulReconnect: false }, true],
  ] as const)("ends %s at the cut", async (_name, options, stateful) => {
    const { server, proxy, client, id } = await setup(protocol, options, stateful);
    const closed = new Promise<Error | undefined>((resolve) => client.onclose(resolve));
    proxy.cut();
    await closed;
    await until(() => events.includes(`disconnected:${id}`), 5_000, "onDisconnected");
    expect(server.server.hubContext(StatefulHub).groups.count("room")).toBe(0);
  });

  it("ends connections in their reconnect window on server close, with onDisconnected once each", async () => {
    const { server, proxy, id } = await setup(protocol);
    await cutAndHold(proxy, server);
    await server.close();
    expect(events.filter((event) => event === `disconnected:${id}`)).toHaveLength(1);
  });
});
