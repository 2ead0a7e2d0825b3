import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, HubMethod, OptionsError, SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { closeAll, connectClient, RawClient, RS, startServer, until } from "../../../test-support/harness.js";

afterEach(closeAll);

const seen: number[] = [];
/** How many records were handled when the event loop got its first turn after the flood began. */
let handledAtFirstYield = -1;

@Hub("/hubs/fair")
class FairHub extends Hub {
  @HubMethod()
  Record(index: number): void {
    if (index === 0) setImmediate(() => (handledAtFirstYield = seen.length));
    seen.push(index);
  }
  @HubMethod()
  Echo(text: string): string {
    return text;
  }
}

function flood(count: number, first = 0): string {
  let text = "";
  for (let i = first; i < first + count; i++) text += `{"type":1,"target":"Record","arguments":[${i}]}${RS}`;
  return text;
}

describe("one connection cannot hold the event loop", () => {
  it("handles at most maxMessagesPerTurn records of one frame per turn, in order, each exactly once", async () => {
    seen.length = 0;
    handledAtFirstYield = -1;
    const server = await startServer([FairHub], { maxMessagesPerTurn: 10, maxParallelInvocations: 100_000, maxQueuedInvocations: 100_000, maxMessageSize: 1 << 20 }, { maxPayload: 4 << 20 });
    const raw = await RawClient.connect(server, "/hubs/fair");
    raw.sendText(flood(3000));
    raw.sendText(flood(2000, 3000)); // a second frame queues behind the first
    await until(() => seen.length >= 5000, 10_000, "every record");
    expect(seen).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(handledAtFirstYield).toBeGreaterThan(0);
    expect(handledAtFirstYield).toBeLessThan(100); // without the budget, all 3000 of the first frame ran first
    const other = await connectClient(server.url("/hubs/fair"));
    expect(await other.invoke("Echo", "still here")).toBe("still here");
  });

  it("keeps the order when a flood is followed by a bad record: records before it run, then Close", async () => {
    seen.length = 0;
    const server = await startServer([FairHub], { maxMessagesPerTurn: 5, maxParallelInvocations: 1000, maxQueuedInvocations: 1000, maxMessageSize: 1 << 20 }, { maxPayload: 4 << 20 });
    const raw = await RawClient.connect(server, "/hubs/fair");
    raw.sendText(`${flood(200)}{"type":1,"target":${RS}`);
    await raw.closed();
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(raw.text()).toContain('"type":7');
  });

  it("refuses a maxMessagesPerTurn that is not a positive integer", () => {
    expect(() => new SwitchboardServer({ protocols: [new JsonHubProtocol()], maxMessagesPerTurn: 0 })).toThrow(OptionsError);
  });
});

@Hub("/hubs/joiner")
class JoinerHub extends Hub {
  @HubMethod()
  async Join(group: string): Promise<number> {
    await this.groups.add(this.context.connectionId, group);
    return this.groups.groupsOf(this.context.connectionId).length;
  }
  @HubMethod()
  async Leave(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
  }
}

describe("groups per connection", () => {
  it("T34 refuses a join past maxGroupsPerConnection with a clear error and keeps the connection", async () => {
    const server = await startServer([JoinerHub], { maxGroupsPerConnection: 3 });
    const client = await connectClient(server.url("/hubs/joiner"));
    for (const group of ["a", "b", "c"]) await client.invoke("Join", group);
    await expect(client.invoke("Join", "d")).rejects.toThrow("A connection can be in at most 3 groups.");
    expect(await client.invoke("Join", "a")).toBe(3); // joining a group it is in is not a new membership
    await client.invoke("Leave", "b");
    expect(await client.invoke("Join", "d")).toBe(3);
    const other = await connectClient(server.url("/hubs/joiner")); // the cap is per connection
    expect(await other.invoke("Join", "z")).toBe(1);
  });

  it("T34 has a generous default cap of 1000 groups", async () => {
    const server = await startServer([JoinerHub]);
    const client = await connectClient(server.url("/hubs/joiner"));
    for (let batch = 0; batch < 1000; batch += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => client.invoke("Join", `g${batch + i}`)));
    }
    await expect(client.invoke("Join", "one-too-many")).rejects.toThrow("at most 1000 groups");
  });
});
