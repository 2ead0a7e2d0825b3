import "reflect-metadata";
import { connect as tcpConnect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { container as rootContainer, inject, Lifecycle, scoped, singleton } from "tsyringe";
import { consoleLogger, Hub, OptionsError, SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { buildClient, closeAll, connectClient, negotiate, RawClient, record, RS, settle, startServer, until } from "../../../test-support/harness.js";

afterEach(closeAll);

const events: string[] = [];

@scoped(Lifecycle.ContainerScoped)
class FaultyScoped {
  dispose(): void {
    throw new Error("dispose failed");
  }
}

@singleton()
class SharedDb {
  disposed = false;
  dispose(): void {
    this.disposed = true;
  }
}

@Hub("/hubs/robust")
class RobustHub extends Hub {
  constructor(@inject(FaultyScoped) readonly scoped: FaultyScoped, @inject(SharedDb) readonly db: SharedDb) {
    super();
  }
  override async onConnected(): Promise<void> {
    events.push(`connected:start:${this.context.connectionId}`);
    if (RobustHub.slowConnect > 0) await settle(RobustHub.slowConnect);
    if (RobustHub.failConnect) throw new Error("no entry");
    events.push(`connected:end:${this.context.connectionId}`);
  }
  override onDisconnected(): void {
    events.push(`disconnected:${this.context.connectionId}`);
  }
  static slowConnect = 0;
  static failConnect = false;
  DbDisposed(): boolean {
    return this.db.disposed;
  }
  async Slow(ms: number): Promise<number> {
    await settle(ms);
    return ms;
  }
  Throw(kind: string): never {
    if (kind === "circular") {
      const value: Record<string, unknown> = {};
      value.self = value;
      throw value;
    }
    throw BigInt(1);
  }
  async Big(size: number): Promise<void> {
    await this.clients.all.send("Big", "x".repeat(size));
  }
}

function reset(): void {
  events.length = 0;
  RobustHub.slowConnect = 0;
  RobustHub.failConnect = false;
}

describe("connection lifecycle", () => {
  it("survives a scoped service whose dispose() throws, and never disposes shared singletons", async () => {
    reset();
    const server = await startServer([RobustHub], { container: rootContainer.createChildContainer() });
    const a = await connectClient(server.url("/hubs/robust"));
    expect(await a.invoke("DbDisposed")).toBe(false);
    await a.stop();
    await until(() => events.some((event) => event.startsWith("disconnected:")));
    await settle(50);
    const b = await connectClient(server.url("/hubs/robust"));
    expect(await b.invoke("DbDisposed")).toBe(false); // the process is alive and the singleton intact
  });

  it("runs onDisconnected only after an async onConnected finished", async () => {
    reset();
    RobustHub.slowConnect = 200;
    const server = await startServer([RobustHub]);
    const { connectionToken } = await negotiate(server, "/hubs/robust");
    const raw = await RawClient.open(`ws://127.0.0.1:${server.port}/hubs/robust?id=${connectionToken}`);
    raw.sendText(`{"protocol":"json","version":1}${RS}`);
    await raw.nextFrame();
    await raw.close(); // while onConnected is still running
    await until(() => events.some((event) => event.startsWith("disconnected:")), 2_000);
    expect(events.map((event) => event.slice(0, event.lastIndexOf(":")))).toEqual(["connected:start", "connected:end", "disconnected"]);
  });

  it("does not run onDisconnected when onConnected threw (like ASP.NET)", async () => {
    reset();
    RobustHub.failConnect = true;
    const server = await startServer([RobustHub]);
    const client = buildClient(server.url("/hubs/robust"));
    const closed = new Promise<Error | undefined>((resolve) => client.onclose(resolve));
    // The Close may arrive with the handshake reply, so start() itself may already fail with it.
    const started = await client.start().then(
      () => undefined,
      (error: Error) => error,
    );
    const error = started ?? (await closed);
    expect(error?.message).toContain("Connection closed with an error.");
    await until(() => events.length > 0 && server.server.endpoint("/hubs/robust")!.connections.size === 0);
    await settle(100);
    expect(events.filter((event) => event.startsWith("disconnected:"))).toEqual([]);
    expect(server.server.endpoint("/hubs/robust")!.lifetimeManager.connections.size).toBe(0);
  });

  it("does not time out a client whose queue is slow but moving while reading is paused", async () => {
    reset();
    const server = await startServer([RobustHub], { maxQueuedInvocations: 2, clientTimeout: 400, keepAliveInterval: 100 });
    const client = await connectClient(server.url("/hubs/robust"), "json", (builder) => builder.withKeepAliveInterval(100).withServerTimeout(2_000));
    const results = await Promise.all(Array.from({ length: 8 }, () => client.invoke("Slow", 150)));
    expect(results).toEqual(Array(8).fill(150)); // 1.2 s of queue, three times the client timeout
  });
});

describe("limits and misuse", () => {
  it("delivers one message larger than maxBufferedBytes to clients that keep up", async () => {
    reset();
    const server = await startServer([RobustHub], { maxBufferedBytes: 16 * 1024, maxMessageSize: 1024 });
    const clients = await Promise.all([1, 2, 3].map(() => connectClient(server.url("/hubs/robust"))));
    const got = clients.map((client) => record(client, "Big"));
    await clients[0]!.invoke("Big", 100_000);
    await until(() => got.every((calls) => calls.length === 1));
    expect(got.every((calls) => (calls[0]![0] as string).length === 100_000)).toBe(true);
    expect(await clients[1]!.invoke("Slow", 1)).toBe(1);
  });

  it("answers a method that throws a circular object or a BigInt, with the default logger", async () => {
    reset();
    const server = await startServer([RobustHub], { logger: consoleLogger("silent") });
    const client = await connectClient(server.url("/hubs/robust"));
    await expect(client.invoke("Throw", "circular")).rejects.toThrow("An unexpected error occurred invoking 'Throw' on the server.");
    await expect(client.invoke("Throw", "bigint")).rejects.toThrow("An unexpected error occurred invoking 'Throw' on the server.");
    const loud = await startServer([RobustHub], { logger: consoleLogger("error"), detailedErrors: true });
    const other = await connectClient(loud.url("/hubs/robust"));
    await expect(other.invoke("Throw", "circular")).rejects.toThrow("An unexpected error occurred invoking 'Throw' on the server.");
  });

  it.each([
    [{ detailedErrors: "false" }, "detailedErrors"],
    [{ handshakeTimeout: 3e9 }, "handshakeTimeout"],
    [{ unusedTokenTimeout: Infinity }, "unusedTokenTimeout"],
    [{ maxParallelInvocations: 1.5 }, "maxParallelInvocations"],
    [{ userIdProvider: "sub" }, "userIdProvider"],
    [{ logger: console.log }, "logger"],
  ])("rejects %j at construction", (options, name) => {
    expect(() => new SwitchboardServer({ protocols: [new JsonHubProtocol()], ...(options as object) })).toThrow(OptionsError);
    expect(() => new SwitchboardServer({ protocols: [new JsonHubProtocol()], ...(options as object) })).toThrow(name);
  });

  it("throws at once for addressing misuse instead of misrouting", async () => {
    const server = await startServer([RobustHub]);
    const clients = server.server.hubContext(RobustHub).clients;
    expect(() => clients.groups("room" as never)).toThrow(TypeError);
    expect(() => clients.allExcept("abcdefghijkl" as never)).toThrow(TypeError);
    expect(() => clients.clients([1] as never)).toThrow(TypeError);
    expect(() => clients.users("alice" as never)).toThrow(TypeError);
    expect(() => clients.client(undefined as never)).toThrow(TypeError);
    expect(() => clients.group(42 as never)).toThrow(expect.objectContaining({ code: "SB_ERR_GROUP_NAME" }));
  });
});

describe("refused upgrades", () => {
  it("destroys the socket after the refusal even if the client keeps its side open, so close() resolves", async () => {
    const server = await startServer([RobustHub]);
    const sockets = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<import("node:net").Socket>((resolve) => {
            const socket = tcpConnect({ port: server.port, host: "127.0.0.1", allowHalfOpen: true }, () => {
              socket.write(`GET /hubs/robust?id=garbage HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
              resolve(socket);
            });
            socket.on("error", () => {});
            socket.resume(); // read the 404 so that 'end' is seen
          }),
      ),
    );
    // Each got its 404 and the server's FIN, but keeps its own side open (half-open).
    await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => (socket.readableEnded ? resolve() : socket.once("end", () => resolve())))));
    const closing = server.close();
    const outcome = await Promise.race([closing.then(() => "closed"), settle(3_000).then(() => "hung")]);
    for (const socket of sockets) socket.destroy();
    expect(outcome).toBe("closed");
  });
});

describe("re-entrancy", () => {
  it("a slow consumer closed inside a fan-out does not run user code inside that loop", async () => {
    const order: string[] = [];
    @Hub("/hubs/reentrant")
    class ReentrantHub extends Hub {
      override async onDisconnected(): Promise<void> {
        order.push("onDisconnected");
        await this.clients.groups(["g1", "g2"]).send("Note", "left");
      }
      async Join(groups: string[]): Promise<void> {
        for (const group of groups) await this.groups.add(this.context.connectionId, group);
      }
    }
    const server = await startServer([ReentrantHub], { maxBufferedBytes: 8 * 1024 });
    const x = await connectClient(server.url("/hubs/reentrant"));
    const notes = record(x, "Note");
    await x.invoke("Join", ["g1", "g2"]);
    const { connectionToken } = await negotiate(server, "/hubs/reentrant");
    const slow = await RawClient.open(`ws://127.0.0.1:${server.port}/hubs/reentrant?id=${connectionToken}`);
    slow.sendText(`{"protocol":"json","version":1}${RS}{"type":1,"target":"Join","arguments":[["g1"]],"invocationId":"1"}${RS}`);
    await slow.frame(1);
    (slow.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const context = server.server.hubContext(ReentrantHub);
    // 400 × 32 KiB over many turns: far more than loopback buffers hold for a reader that stopped.
    const total = 400;
    for (let i = 0; i < total; i++) {
      await context.clients.groups(["g1", "g2"]).send("Note", `m${i}`.padEnd(32 * 1024, "."));
      if (i % 5 === 4) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => order.length === 1 && notes.length === total + 1, 10_000, "all notes");
    await settle(50);
    const texts = notes.map((call) => call[0] as string);
    expect(texts).toHaveLength(total + 1);
    expect(new Set(texts).size).toBe(total + 1); // each message once: no duplicate from a nested send
    expect(texts.filter((text) => text === "left")).toHaveLength(1);
  });
});
