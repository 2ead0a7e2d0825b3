import "reflect-metadata";
import { MeterProvider, MetricReader, type DataPoint, type Histogram, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Hub, HubError, HubMethod } from "@switchboard/core";
import { SwitchboardMetrics } from "../src/index.js";
import { closeAll, connectClient, RawClient, RS, signalR, startServer, until } from "../../../test-support/harness.js";

/** Collects on demand: the SDK's in-memory path without an exporter's timer. */
class ManualReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

let reader: ManualReader;
let provider: MeterProvider;
beforeEach(() => {
  reader = new ManualReader();
  provider = new MeterProvider({ readers: [reader] });
});
afterEach(async () => {
  await closeAll();
  await provider.shutdown();
});

@Hub("/hubs/metered")
class MeteredHub extends Hub {
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
  async Say(group: string, text: string): Promise<void> {
    await this.clients.group(group).send("Said", text);
  }
  Fail(): void {
    throw new Error("boom");
  }
  Refuse(): void {
    throw new HubError("no");
  }
  @HubMethod()
  Add(first: number, second: number): number {
    return first + second;
  }
  async Flood(group: string, count: number, size: number): Promise<number> {
    const chunk = "x".repeat(size);
    for (let i = 0; i < count; i++) {
      await this.clients.group(group).send("Chunk", i, chunk);
      if (i % 4 === 3) await new Promise<void>((resolve) => setImmediate(resolve)); // let the socket back up
    }
    return count;
  }
}

type Point = DataPoint<number | Histogram>;

async function collect(): Promise<Map<string, Point[]>> {
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  return byName(resourceMetrics);
}

function byName(resource: ResourceMetrics): Map<string, Point[]> {
  const found = new Map<string, Point[]>();
  for (const scope of resource.scopeMetrics) for (const metric of scope.metrics) found.set(`${scope.scope.name}/${metric.descriptor.name}`, metric.dataPoints as Point[]);
  return found;
}

function point(points: Point[] | undefined, attributes: Record<string, string>): Point | undefined {
  return points?.find((p) => Object.entries(attributes).every(([key, value]) => p.attributes[key] === value) && Object.keys(p.attributes).length === Object.keys(attributes).length);
}

const CONNECTIONS = "Microsoft.AspNetCore.Http.Connections";
const OWN = "@switchboard/metrics";
const WS = { "signalr.transport": "web_sockets" };
const HUB = { "switchboard.hub": "MeteredHub" };

describe("SwitchboardMetrics", () => {
  it("records a scripted session with ASP.NET Core's names and Switchboard's own", async () => {
    const server = await startServer([MeteredHub], { observer: new SwitchboardMetrics({ meterProvider: provider }) });
    const url = server.url("/hubs/metered");
    const clients = [await connectClient(url, "json"), await connectClient(url, "json"), await connectClient(url, "messagepack")];
    for (const client of clients) await client.invoke("Join", "room");
    await clients[0]!.invoke("Say", "room", "hello");
    await expect(clients[0]!.invoke("Fail")).rejects.toThrow();
    await expect(clients[0]!.invoke("Refuse")).rejects.toThrow("no");
    await expect(clients[0]!.invoke("Add", "x", 1)).rejects.toThrow();
    await expect(clients[0]!.invoke("NoSuchMethod")).rejects.toThrow();

    expect(server.server.stats()).toEqual({ connections: 3, groups: 1, bufferedBytes: 0, hubs: { MeteredHub: { path: "/hubs/metered", connections: 3, groups: 1, bufferedBytes: 0 } } });
    let metrics = await collect();
    expect(point(metrics.get(`${CONNECTIONS}/signalr.server.active_connections`), WS)?.value).toBe(3);
    expect(point(metrics.get(`${OWN}/switchboard.groups`), HUB)?.value).toBe(1);
    expect(point(metrics.get(`${OWN}/switchboard.connection.buffered_bytes`), HUB)?.value).toBe(0);
    // One send to the room: encoded once per protocol, delivered to two JSON and one MessagePack client.
    expect(point(metrics.get(`${OWN}/switchboard.messages.sent`), { ...HUB, "switchboard.protocol": "json" })?.value).toBe(1);
    expect(point(metrics.get(`${OWN}/switchboard.messages.sent`), { ...HUB, "switchboard.protocol": "messagepack" })?.value).toBe(1);
    expect(point(metrics.get(`${OWN}/switchboard.messages.delivered`), { ...HUB, "switchboard.protocol": "json" })?.value).toBe(2);
    expect(point(metrics.get(`${OWN}/switchboard.messages.delivered`), { ...HUB, "switchboard.protocol": "messagepack" })?.value).toBe(1);
    const fanout = point(metrics.get(`${OWN}/switchboard.fanout.size`), HUB)?.value as Histogram;
    expect([fanout.count, fanout.sum]).toEqual([1, 3]);
    const invocations = metrics.get(`${OWN}/switchboard.invocation.duration`);
    const calls = (method: string, outcome: string) => (point(invocations, { ...HUB, "switchboard.hub.method": method, "switchboard.invocation.outcome": outcome })?.value as Histogram | undefined)?.count;
    expect(calls("Join", "completed")).toBe(3);
    expect(calls("Say", "completed")).toBe(1);
    expect(calls("Fail", "failed")).toBe(1);
    expect(calls("Refuse", "hub_error")).toBe(1);
    expect(calls("Add", "binding_failed")).toBe(1);
    // An unknown method is never a metric attribute: clients choose those names.
    expect(invocations?.some((p) => p.attributes["switchboard.hub.method"] === "NoSuchMethod")).toBe(false);
    expect(invocations).toHaveLength(5);

    await clients[2]!.stop();
    await until(() => server.server.stats().connections === 2);
    metrics = await collect();
    expect(point(metrics.get(`${CONNECTIONS}/signalr.server.active_connections`), WS)?.value).toBe(2);
    const closed = point(metrics.get(`${CONNECTIONS}/signalr.server.connection.duration`), { ...WS, "signalr.connection.status": "normal_closure" })?.value as Histogram;
    expect(closed.count).toBe(1);
    expect(closed.sum).toBeGreaterThan(0);

    await server.close();
    metrics = await collect();
    expect(point(metrics.get(`${CONNECTIONS}/signalr.server.active_connections`), WS)?.value).toBe(0);
    expect((point(metrics.get(`${CONNECTIONS}/signalr.server.connection.duration`), { ...WS, "signalr.connection.status": "app_shutdown" })?.value as Histogram).count).toBe(2);
    expect(point(metrics.get(`${OWN}/switchboard.groups`), HUB)?.value).toBe(0);
  });

  it("counts a slow-consumer close, with its own connection status", async () => {
    // A short closeTimeout: the paused client never answers the closing handshake.
    const server = await startServer([MeteredHub], { maxBufferedBytes: 64 * 1024, observer: new SwitchboardMetrics({ meterProvider: provider }) }, { closeTimeout: 200 });
    const sender = await connectClient(server.url("/hubs/metered"));
    const slow = await RawClient.connect(server, "/hubs/metered", "json");
    slow.sendText(`{"type":1,"invocationId":"1","target":"Join","arguments":["flood"]}${RS}`);
    await slow.frame(1);
    (slow.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    // Far more than loopback socket buffers hold for a reader that stopped.
    await sender.invoke("Flood", "flood", 1_200, 8 * 1024);
    await until(() => server.server.stats().connections === 1, 10_000, "the slow consumer to be closed");
    const metrics = await collect();
    expect(point(metrics.get(`${OWN}/switchboard.connection.slow_consumer_closes`), HUB)?.value).toBe(1);
    expect((point(metrics.get(`${CONNECTIONS}/signalr.server.connection.duration`), { ...WS, "signalr.connection.status": "slow_consumer" })?.value as Histogram).count).toBe(1);
  });

  it.each([
    ["long_polling", signalR.HttpTransportType.LongPolling],
    ["server_sent_events", signalR.HttpTransportType.ServerSentEvents],
  ])("names the %s transport as ASP.NET Core does", async (name, transport) => {
    const server = await startServer([MeteredHub], { observer: new SwitchboardMetrics({ meterProvider: provider }) });
    const url = server.url("/hubs/metered");
    const client = await connectClient(url, "json", (builder) => builder.withUrl(url, { transport }));
    expect(point((await collect()).get(`${CONNECTIONS}/signalr.server.active_connections`), { "signalr.transport": name })?.value).toBe(1);
    await client.stop();
    await until(() => server.server.stats().connections === 0);
    const ended = point((await collect()).get(`${CONNECTIONS}/signalr.server.connection.duration`), { "signalr.transport": name, "signalr.connection.status": "normal_closure" });
    expect((ended?.value as Histogram).count).toBe(1);
  });

  it("one instance observes one server", async () => {
    const metrics = new SwitchboardMetrics({ meterProvider: provider });
    await startServer([MeteredHub], { observer: metrics });
    await expect(startServer([MeteredHub], { observer: metrics })).rejects.toThrow("observes one server");
  });
});
