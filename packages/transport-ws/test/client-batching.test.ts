import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub } from "@switchboard/core";
import { closeAll, connectClient, signalR, startServer, type ClientProtocol } from "../../../test-support/harness.js";

afterEach(closeAll);

@Hub("/hubs/batch")
class BatchHub extends Hub {
  Echo(value: string): string {
    return value;
  }
}

// The official client queues what it sends while a send is in flight and then sends the queue as
// ONE message (its TransportSendQueue): many concurrent invokes become one large WebSocket frame or
// POST body, made of small hub messages. The transport must take it (each hub message still obeys
// maxMessageSize); with a 64 KiB frame limit 1,000 concurrent invokes ended in close 1009.
describe.each<[string, signalR.HttpTransportType, ClientProtocol]>([
  ["WebSockets", signalR.HttpTransportType.WebSockets, "json"],
  ["WebSockets", signalR.HttpTransportType.WebSockets, "messagepack"],
  ["long polling", signalR.HttpTransportType.LongPolling, "json"],
  ["Server-Sent Events", signalR.HttpTransportType.ServerSentEvents, "json"],
])("the official client's batched sends over %s (%s)", (_name, transport, protocol) => {
  it("answers 1,000 concurrent invocations", async () => {
    const server = await startServer([BatchHub]);
    const client = await connectClient(server.url("/hubs/batch"), protocol, (builder) => builder.withUrl(server.url("/hubs/batch"), { transport }));
    const values = Array.from({ length: 1000 }, (_, i) => `value ${i} ${"x".repeat(40)}`);
    const answers = await Promise.all(values.map((value) => client.invoke<string>("Echo", value)));
    expect(answers).toEqual(values);
  }, 30_000);
});
