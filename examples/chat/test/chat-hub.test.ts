import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { ChatHub } from "../src/chat-hub.js";
import { closeAll, connectClient, record, settle, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";

afterEach(closeAll);

const PATH = "/hubs/chat";

async function connect(server: TestServer, protocol: ClientProtocol = "json") {
  const client = await connectClient(server.url(PATH), protocol);
  return { client, id: client.connectionId!, messages: record(client, "Message"), roomMessages: record(client, "RoomMessage"), counts: record(client, "RoomCount") };
}

describe.each<ClientProtocol>(["json", "messagepack"])("ChatHub over %s", (protocol) => {
  it("echoes values and tells a connection its id", async () => {
    const server = await startServer([ChatHub]);
    const alice = await connect(server, protocol);
    expect(await alice.client.invoke("Echo", { text: "héllo", list: [1, 2.5, null, true] })).toEqual({ text: "héllo", list: [1, 2.5, null, true] });
    expect(await alice.client.invoke("WhoAmI")).toBe(alice.id);
  });

  it("sends Message to all, to the others, and to one connection", async () => {
    const server = await startServer([ChatHub]);
    const [alice, bob, carol] = [await connect(server, protocol), await connect(server, protocol), await connect(server, protocol)];

    await alice.client.invoke("SendToAll", "to all");
    await alice.client.invoke("SendToOthers", "to others");
    await alice.client.invoke("SendToConnection", carol.id, "to carol");
    await until(() => carol.messages.length === 3, 5_000, "carol's messages");
    await settle();

    expect(alice.messages).toEqual([[alice.id, "to all"]]);
    expect(bob.messages).toEqual([[alice.id, "to all"], [alice.id, "to others"]]);
    expect(carol.messages).toEqual([[alice.id, "to all"], [alice.id, "to others"], [alice.id, "to carol"]]);
  });

  it("sends Message to a group, its other members, and all but some, never outside it", async () => {
    const server = await startServer([ChatHub]);
    const [alice, bob, carol, outsider] = [await connect(server, protocol), await connect(server, protocol), await connect(server, protocol), await connect(server, protocol)];
    for (const member of [alice, bob, carol]) await member.client.invoke("Join", "lobby");

    await alice.client.invoke("SendToGroup", "lobby", "one");
    await alice.client.invoke("SendToOthersInGroup", "lobby", "two");
    await alice.client.invoke("SendToGroupExcept", "lobby", [bob.id], "three");
    await until(() => carol.messages.length === 3, 5_000, "carol's messages");
    await settle();

    expect(alice.messages).toEqual([[alice.id, "one"], [alice.id, "three"]]);
    expect(bob.messages).toEqual([[alice.id, "one"], [alice.id, "two"]]);
    expect(carol.messages).toEqual([[alice.id, "one"], [alice.id, "two"], [alice.id, "three"]]);
    expect(outsider.messages).toEqual([]);
  });

  it("answers Join and Leave with the member count and sends RoomCount to the room", async () => {
    const server = await startServer([ChatHub]);
    const [alice, bob, outsider] = [await connect(server, protocol), await connect(server, protocol), await connect(server, protocol)];

    expect(await alice.client.invoke("Join", "lobby")).toBe(1);
    expect(await bob.client.invoke("Join", "lobby")).toBe(2);
    expect(await bob.client.invoke("Join", "lobby")).toBe(2); // joining twice changes nothing
    expect(await outsider.client.invoke("Join", "elsewhere")).toBe(1);
    expect(await alice.client.invoke("Leave", "lobby")).toBe(1);
    await until(() => bob.counts.length === 3, 5_000, "bob's counts");
    await settle();

    expect(alice.counts).toEqual([["lobby", 1], ["lobby", 2], ["lobby", 2]]);
    expect(bob.counts).toEqual([["lobby", 2], ["lobby", 2], ["lobby", 1]]);
    expect(outsider.counts).toEqual([["elsewhere", 1]]);
    expect(server.server.hubContext(ChatHub).groups.count("lobby")).toBe(1);
  });

  it("sends the new RoomCount to the rooms of a connection that disconnects", async () => {
    const server = await startServer([ChatHub]);
    const [alice, bob] = [await connect(server, protocol), await connect(server, protocol)];
    for (const room of ["lobby", "games"]) {
      await alice.client.invoke("Join", room);
      await bob.client.invoke("Join", room);
    }
    await until(() => alice.counts.length === 4, 5_000, "alice's counts");
    alice.counts.length = 0;

    await bob.client.stop();
    await until(() => alice.counts.length === 2, 5_000, "counts after bob left");
    expect(alice.counts).toEqual([["lobby", 1], ["games", 1]]);
  });

  it("sends Say as RoomMessage with the sender's chosen name, to the room's members only", async () => {
    const server = await startServer([ChatHub]);
    const [alice, bob, outsider] = [await connect(server, protocol), await connect(server, protocol), await connect(server, protocol)];
    await alice.client.invoke("Join", "lobby");
    await bob.client.invoke("Join", "lobby");

    await alice.client.invoke("Say", "lobby", "no name yet");
    expect(await alice.client.invoke("SetName", "  Alice \n <b>A</b>  ")).toBe("Alice <b>A</b>");
    await alice.client.invoke("Say", "lobby", "<script>alert(1)</script>");
    expect(await alice.client.invoke("SetName", "")).toBe("");
    await alice.client.invoke("Say", "lobby", "anonymous again");
    await until(() => bob.roomMessages.length === 3, 5_000, "bob's room messages");
    await settle();

    const expected = [
      ["lobby", alice.id, null, "no name yet"],
      ["lobby", alice.id, "Alice <b>A</b>", "<script>alert(1)</script>"],
      ["lobby", alice.id, null, "anonymous again"],
    ];
    expect(alice.roomMessages).toEqual(expected);
    expect(bob.roomMessages).toEqual(expected);
    expect(outsider.roomMessages).toEqual([]);
    expect(bob.messages).toEqual([]); // Say never sends Message: its signature stays (from, text)
  });
});

describe("ChatHub input checks", () => {
  it("refuses Say outside the room, bad names, rooms and texts, and keeps the connection working", async () => {
    const server = await startServer([ChatHub]);
    const [alice, bob] = [await connect(server), await connect(server)];
    await bob.client.invoke("Join", "lobby");

    await expect(alice.client.invoke("Say", "lobby", "let me in")).rejects.toThrow(/^Join 'lobby' before speaking in it\.$/);
    await expect(alice.client.invoke("SetName", "x".repeat(33))).rejects.toThrow(/^The name is longer than 32 characters\.$/);
    await expect(alice.client.invoke("SetName", 42)).rejects.toThrow(/^The name must be a string\.$/);
    await expect(alice.client.invoke("Join", "")).rejects.toThrow(/^The room name must be 1 to 100 characters\.$/);
    await expect(alice.client.invoke("Join", "r".repeat(101))).rejects.toThrow(/^The room name must be 1 to 100 characters\.$/);
    await expect(alice.client.invoke("SendToAll", "x".repeat(4_001))).rejects.toThrow(/^The message is longer than 4000 characters\.$/);
    await expect(alice.client.invoke("SendToGroupExcept", "lobby", "not an array", "hi")).rejects.toThrow(/^connectionIds must be an array of strings\.$/);

    expect(await alice.client.invoke("SetName", "x".repeat(32))).toBe("x".repeat(32));
    expect(await alice.client.invoke("Join", "lobby")).toBe(2);
    await alice.client.invoke("Say", "lobby", "in now");
    await until(() => bob.roomMessages.length === 1, 5_000, "bob's room message");
    expect(bob.roomMessages).toEqual([["lobby", alice.id, "x".repeat(32), "in now"]]);
    expect(server.logger.entries.filter((entry) => entry.level === "error")).toEqual([]);
  });
});
