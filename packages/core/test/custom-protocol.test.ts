import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, InvalidMessageError, MessageTooLargeError, type HubMessage, type HubMessageParser, type HubProtocol, type ParserLimits } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { closeAll, connectClient, negotiate, RawClient, record, startServer, until } from "../../../test-support/harness.js";

afterEach(closeAll);

/**
 * A test-only hub protocol: one JSON object per line ("\n" framing), the message objects exactly
 * as the core defines them. If the core assumed JSON's 0x1E or MessagePack anywhere, this would fail.
 */
class LineProtocol implements HubProtocol {
  readonly name = "lines";
  readonly version = 1;
  readonly transferFormat = "text" as const;
  writes = 0;

  createParser(limits: ParserLimits): HubMessageParser {
    let tail = "";
    return {
      parse(data: Uint8Array, onMessage: (message: HubMessage) => void): void {
        tail += Buffer.from(data).toString("utf8");
        for (let end = tail.indexOf("\n"); end !== -1; end = tail.indexOf("\n")) {
          const line = tail.slice(0, end);
          tail = tail.slice(end + 1);
          let message: unknown;
          try {
            message = JSON.parse(line);
          } catch (cause) {
            throw new InvalidMessageError("Bad line.", { cause });
          }
          if (typeof message !== "object" || message === null || typeof (message as { type?: unknown }).type !== "number") throw new InvalidMessageError("Bad line.");
          onMessage(message as HubMessage);
        }
        if (tail.length > limits.maxMessageSize) throw new MessageTooLargeError(limits.maxMessageSize);
      },
    };
  }

  write(message: HubMessage): Uint8Array {
    if (message.type === 1) this.writes++;
    return Buffer.from(`${JSON.stringify(message)}\n`);
  }
}

@Hub("/hubs/lines")
class LinesHub extends Hub {
  Add(a: number, b: number): number {
    return a + b;
  }
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
  async Shout(group: string, text: string): Promise<void> {
    await this.clients.group(group).send("Heard", text);
  }
}

describe("a third, test-only hub protocol", () => {
  it("handshakes, invokes and receives group sends next to JSON and MessagePack clients, encoded once per protocol", async () => {
    const lines = new LineProtocol();
    const server = await startServer([LinesHub], { protocols: [new JsonHubProtocol(), new MessagePackHubProtocol(), lines] });
    const { connectionToken } = await negotiate(server, "/hubs/lines");
    const raw = await RawClient.open(`ws://127.0.0.1:${server.port}/hubs/lines?id=${connectionToken}`);
    raw.sendText(`{"protocol":"lines","version":1}\u001e`);
    expect((await raw.nextFrame()).data.toString()).toBe("{}\u001e");
    raw.sendText(`${JSON.stringify({ type: 1, invocationId: "a", target: "Add", arguments: [40, 2] })}\n${JSON.stringify({ type: 1, invocationId: "b", target: "Join", arguments: ["g"] })}\n`);
    const answers = `${(await raw.nextFrame()).data}`;
    expect(answers.split("\n").filter(Boolean).map((line) => JSON.parse(line))).toEqual([
      { type: 3, invocationId: "a", hasResult: true, result: 42 },
      { type: 3, invocationId: "b", hasResult: true, result: null },
    ]);

    const json = await connectClient(server.url("/hubs/lines"), "json");
    const msgpack = await connectClient(server.url("/hubs/lines"), "messagepack");
    const [heardJson, heardMsgpack] = [record(json, "Heard"), record(msgpack, "Heard")];
    await json.invoke("Join", "g");
    await msgpack.invoke("Join", "g");
    await json.invoke("Shout", "g", "hello all");
    await until(() => heardJson.length === 1 && heardMsgpack.length === 1);
    const frame = await raw.nextFrame();
    expect(JSON.parse(frame.data.toString())).toEqual({ type: 1, target: "Heard", arguments: ["hello all"] });
    expect(frame.binary).toBe(false);
    expect(heardJson[0]).toEqual(["hello all"]);
    expect(heardMsgpack[0]).toEqual(["hello all"]);
    expect(lines.writes).toBe(1);
  });

  it("is refused in the handshake when not registered", async () => {
    const server = await startServer([LinesHub]);
    const { connectionToken } = await negotiate(server, "/hubs/lines");
    const raw = await RawClient.open(`ws://127.0.0.1:${server.port}/hubs/lines?id=${connectionToken}`);
    raw.sendText(`{"protocol":"lines","version":1}\u001e`);
    expect((await raw.nextFrame()).data.toString()).toBe(`{"error":"The protocol 'lines' is not supported."}\u001e`);
    await raw.closed();
  });
});
