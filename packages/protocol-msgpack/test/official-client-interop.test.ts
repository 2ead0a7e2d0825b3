import { NullLogger, type HubMessage as ClientHubMessage } from "@microsoft/signalr";
import { MessagePackHubProtocol as ClientProtocol } from "@microsoft/signalr-protocol-msgpack";
import type { HubMessage } from "@switchboard/core";
import { describe, expect, it } from "vitest";
import { MessagePackHubProtocol } from "../src/index.js";
import { parseAll } from "./wire.js";

/** The official v10 client's codec, as the browser runs it (@msgpack/msgpack 2.8 underneath). */
const client = new ClientProtocol();
const server = new MessagePackHubProtocol();

describe("interop with @microsoft/signalr-protocol-msgpack", () => {
  it.each([
    ["send", { type: 1, target: "Echo", arguments: ["x", 1.5, Uint8Array.of(1), new Date(0), null, { a: [1] }] }],
    ["invoke", { type: 1, invocationId: "0", target: "Add", arguments: [40, 2] }],
    ["invoke with an upload stream", { type: 1, invocationId: "4", target: "Upload", arguments: [], streamIds: ["3"] }],
    ["stream", { type: 4, invocationId: "2", target: "Counter", arguments: [3] }],
    ["stream item", { type: 2, invocationId: "3", item: 1 }],
    ["cancel", { type: 5, invocationId: "2" }],
    ["client result", { type: 3, invocationId: "s1", result: 42 }],
    ["client null result", { type: 3, invocationId: "s1", result: null }],
    ["client error", { type: 3, invocationId: "s1", error: "Error: boom" }],
    ["stream end", { type: 3, invocationId: "3" }],
    ["ping", { type: 6 }],
    ["close", { type: 7 }],
    ["ack", { type: 8, sequenceId: 2 }],
    ["sequence", { type: 9, sequenceId: 1 }],
  ] as const)("the server parses what the client writes: %s", (_name, sent) => {
    const bytes = new Uint8Array(client.writeMessage(sent as unknown as ClientHubMessage));
    const [parsed] = parseAll([bytes]);
    const expected: Record<string, unknown> = { ...sent };
    if (sent.type === 3 && "result" in sent) expected["hasResult"] = true;
    expect(parsed).toEqual(expected);
  });

  it.each([
    ["broadcast", { type: 1, target: "ReceiveMessage", arguments: ["alice", "hi", Uint8Array.of(2), new Date(0)] }],
    ["client-result request", { type: 1, invocationId: "s1", target: "GetValue", arguments: [7] }],
    ["stream item", { type: 2, invocationId: "2", item: { n: 1 } }],
    ["value completion", { type: 3, invocationId: "0", hasResult: true, result: 42 }],
    ["void completion as ASP.NET sends it", { type: 3, invocationId: "0", hasResult: true, result: null }],
    ["stream end", { type: 3, invocationId: "2" }],
    ["error completion", { type: 3, invocationId: "1", error: "failed" }],
    ["ping", { type: 6 }],
    ["close with reconnect", { type: 7, error: "bye", allowReconnect: true }],
    ["ack", { type: 8, sequenceId: 5 }],
  ] as const)("the client parses what the server writes: %s", (_name, sent) => {
    const bytes = server.write(sent as HubMessage);
    const [parsed] = client.parseMessages(bytes.buffer as ArrayBuffer, NullLogger.instance) as unknown as Record<string, unknown>[];
    const { hasResult: _hasResult, ...expected } = sent as Record<string, unknown>;
    expect(parsed).toMatchObject(expected);
  });
});
