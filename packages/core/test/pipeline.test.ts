import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { container as rootContainer, inject, injectable } from "tsyringe";
import {
  Hub,
  HubError,
  LoggingModule,
  RateLimitModule,
  UseModules,
  type ErrorContext,
  type HubModule,
  type InvocationContext,
  type LifetimeContext,
  type OutgoingContext,
  type RejoinModule,
} from "@switchboard/core";
import { closeAll, connectClient, record, settle, startServer, until } from "../../../test-support/harness.js";

afterEach(closeAll);

const trace: string[] = [];

/** A module that records when it runs around each stage. */
function tracer(name: string): HubModule {
  return {
    async invoke(ctx: InvocationContext, next) {
      trace.push(`${name}>${ctx.methodName}`);
      const result = await next();
      trace.push(`${name}<${ctx.methodName}`);
      return result;
    },
    async onConnected(_ctx: LifetimeContext, next) {
      trace.push(`${name}>connected`);
      await next();
    },
    async onDisconnected(_ctx: LifetimeContext, _error, next) {
      trace.push(`${name}>disconnected`);
      await next();
    },
  };
}

@injectable()
class Doubler implements HubModule {
  invoke(ctx: InvocationContext, next: () => Promise<unknown>): Promise<unknown> {
    if (ctx.methodName === "Add") ctx.arguments = ctx.arguments.map((value) => (typeof value === "number" ? value * 2 : value));
    return next();
  }
}

const shortCircuit: HubModule = {
  invoke(ctx, next) {
    return ctx.methodName === "Cached" ? "from the module" : next();
  },
};

const translator: HubModule = {
  async invoke(ctx, next) {
    try {
      return await next();
    } catch (error) {
      if (ctx.methodName === "Translate") throw new HubError(`translated: ${(error as Error).message}`);
      throw error;
    }
  },
};

const errors: { ctx: ErrorContext; error: unknown }[] = [];
const observer: HubModule = { onError: (ctx, error) => void errors.push({ ctx, error }) };

const brokenModule: HubModule = {
  invoke(ctx, next) {
    if (ctx.methodName === "Broken") throw new Error("module bug: internal detail");
    return next();
  },
};

@Hub("/hubs/pipeline")
@UseModules(tracer("hub"), Doubler, shortCircuit, translator, brokenModule)
class PipelineHub extends Hub {
  override onConnected(): void {
    trace.push("hub.onConnected");
  }
  override onDisconnected(): void {
    trace.push("hub.onDisconnected");
  }
  Add(a: number, b: number): number {
    trace.push("Add");
    return a + b;
  }
  Cached(): string {
    return "from the hub";
  }
  Translate(): never {
    throw new Error("raw");
  }
  Broken(): string {
    return "never";
  }
  async Broadcast(text: string): Promise<void> {
    await this.clients.all.send("Note", text);
  }
  async ToGroup(group: string, text: string): Promise<void> {
    await this.clients.group(group).send("Note", text);
  }
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
}

@Hub("/hubs/plain")
class PlainHub extends Hub {
  Echo(value: unknown): unknown {
    return value;
  }
}

describe("pipeline modules over real connections", () => {
  it("runs global modules before per-hub modules, in registration order, around the hub", async () => {
    trace.length = 0;
    const server = await startServer([PipelineHub], { modules: [tracer("g1"), tracer("g2"), observer] });
    const client = await connectClient(server.url("/hubs/pipeline"));
    await until(() => trace.includes("hub.onConnected"));
    expect(trace).toEqual(["g1>connected", "g2>connected", "hub>connected", "hub.onConnected"]);
    trace.length = 0;
    expect(await client.invoke("Add", 1, 2)).toBe(6); // Doubler rewrote the arguments
    expect(trace).toEqual(["g1>Add", "g2>Add", "hub>Add", "Add", "hub<Add", "g2<Add", "g1<Add"]);
    trace.length = 0;
    await client.stop();
    await until(() => trace.includes("hub.onDisconnected"));
    expect(trace).toEqual(["g1>disconnected", "g2>disconnected", "hub>disconnected", "hub.onDisconnected"]);
  });

  it("lets a module short-circuit with a result and translate errors", async () => {
    const server = await startServer([PipelineHub]);
    const client = await connectClient(server.url("/hubs/pipeline"));
    expect(await client.invoke("Cached")).toBe("from the module");
    await expect(client.invoke("Translate")).rejects.toThrow(/^translated: raw$/);
  });

  it("gives a clear generic error when a module throws, tells onError, and leaves other clients unaffected", async () => {
    errors.length = 0;
    const server = await startServer([PipelineHub], { modules: [observer] });
    const victim = await connectClient(server.url("/hubs/pipeline"));
    const bystander = await connectClient(server.url("/hubs/pipeline"));
    await expect(victim.invoke("Broken")).rejects.toThrow(/^An unexpected error occurred invoking 'Broken' on the server\.$/);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.ctx).toMatchObject({ hubName: "PipelineHub", stage: "invoke", methodName: "Broken" });
    expect((errors[0]!.error as Error).message).toBe("module bug: internal detail");
    expect(await bystander.invoke("Add", 1, 1)).toBe(4);
    expect(await victim.invoke("Add", 2, 2)).toBe(8);
  });

  it("runs outgoing once per send (not per recipient) and may alter or drop the message", async () => {
    const seen: OutgoingContext[] = [];
    const outgoing: HubModule = {
      outgoing(ctx, next) {
        seen.push(ctx);
        const text = ctx.message.arguments[0];
        if (text === "drop me") return;
        ctx.message = { ...ctx.message, arguments: [`[${String(text)}]`] };
        return next();
      },
    };
    const server = await startServer([PipelineHub], { modules: [outgoing] });
    const clients = await Promise.all(Array.from({ length: 100 }, () => connectClient(server.url("/hubs/pipeline"))));
    const notes = clients.map((client) => record(client, "Note"));
    await Promise.all(clients.map((client) => client.invoke("Join", "room")));
    await clients[0]!.invoke("ToGroup", "room", "hello");
    await clients[0]!.invoke("ToGroup", "room", "drop me");
    await until(() => notes.every((calls) => calls.length === 1));
    await settle(50);
    expect(seen).toHaveLength(2);
    expect(seen[0]!.target).toEqual({ kind: "group", group: "room" });
    expect(notes.every((calls) => calls.length === 1 && calls[0]![0] === "[hello]")).toBe(true);
  });

  it("applies outgoing modules to hub-context sends too", async () => {
    let count = 0;
    const server = await startServer([PlainHub], { modules: [{ outgoing: () => void count++ }] });
    const client = await connectClient(server.url("/hubs/plain"));
    const notes = record(client, "Note");
    await server.server.hubContext(PlainHub).clients.all.send("Note", "x");
    await settle(50);
    expect(count).toBe(1);
    expect(notes).toHaveLength(0); // the module did not call next(): dropped
  });

  it("refuses connections through authorizeConnect with 403", async () => {
    const gate: HubModule = { authorizeConnect: (ctx) => ctx.request.query.get("let") === "in" };
    const server = await startServer([PlainHub], { modules: [gate] });
    const refused = await fetch(`${server.url("/hubs/plain")}/negotiate?negotiateVersion=1`, { method: "POST" });
    expect(refused.status).toBe(403);
    const client = await connectClient(`${server.url("/hubs/plain")}?let=in`);
    expect(await client.invoke("Echo", "in")).toBe("in");
  });

  it("decides rejoining groups through the modules (direct call path)", async () => {
    const onlyPublic: RejoinModule = { rejoiningGroups: (_ctx, groups) => groups.filter((group) => group.startsWith("public:")) };
    const noSecrets: RejoinModule = { rejoiningGroups: (_ctx, groups) => groups.filter((group) => !group.includes("secret")) };
    const server = await startServer([PlainHub], { modules: [onlyPublic, noSecrets] });
    const client = await connectClient(server.url("/hubs/plain"));
    const endpoint = server.server.endpoint("/hubs/plain")!;
    const connection = endpoint.lifetimeManager.connections.get(client.connectionId!)!;
    expect(await endpoint.rejoiningGroups(connection, ["public:a", "private:b", "public:secret", "public:c"])).toEqual(["public:a", "public:c"]);
    const bare = await startServer([PlainHub]);
    const other = await connectClient(bare.url("/hubs/plain"));
    const bareEndpoint = bare.server.endpoint("/hubs/plain")!;
    expect(await bareEndpoint.rejoiningGroups(bareEndpoint.lifetimeManager.connections.get(other.connectionId!)!, ["x", "y"])).toEqual(["x", "y"]);
  });

  it("exposes onReconnected composition for the reconnect work", async () => {
    const calls: string[] = [];
    const module: RejoinModule = {
      async onReconnected(_ctx, next) {
        calls.push("module");
        await next();
      },
    };
    const server = await startServer([PlainHub], { modules: [module] });
    const client = await connectClient(server.url("/hubs/plain"));
    const endpoint = server.server.endpoint("/hubs/plain")!;
    const connection = endpoint.lifetimeManager.connections.get(client.connectionId!)!;
    await endpoint.pipeline.onReconnected({ hubName: "PlainHub", hub: new PlainHub(), connection: connection.callerContext, services: connection.container }, () => void calls.push("hub"));
    expect(calls).toEqual(["module", "hub"]);
  });

  it("rejects a module that calls next() twice", async () => {
    const twice: HubModule = {
      async invoke(_ctx, next) {
        await next();
        return next();
      },
    };
    const server = await startServer([PlainHub], { modules: [twice] });
    const client = await connectClient(server.url("/hubs/plain"));
    await expect(client.invoke("Echo", 1)).rejects.toThrow("An unexpected error occurred invoking 'Echo' on the server.");
    expect(server.logger.text()).toContain("next() more than once");
  });
});

describe("shipped modules", () => {
  it("RateLimitModule refuses calls over the limit with a clear error and keeps the connection open", async () => {
    const server = await startServer([PlainHub], { modules: [new RateLimitModule({ perSecond: 1, burst: 3 })] });
    const client = await connectClient(server.url("/hubs/plain"));
    const other = await connectClient(server.url("/hubs/plain"));
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => client.invoke("Echo", n)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(rejected).toHaveLength(2);
    expect(rejected[0]!.reason.message).toBe("Too many invocations; slow down.");
    expect(await other.invoke("Echo", "fine")).toBe("fine"); // per connection
    await settle(1100);
    expect(await client.invoke("Echo", "again")).toBe("again");
  });

  it("RateLimitModule keyed by address or user shares one bucket across connections", async () => {
    const server = await startServer([PlainHub], { modules: [new RateLimitModule({ perSecond: 0.001, burst: 3, key: "address" })] });
    const first = await connectClient(server.url("/hubs/plain"));
    const second = await connectClient(server.url("/hubs/plain")); // same address: 127.0.0.1
    expect(await first.invoke("Echo", 1)).toBe(1);
    expect(await second.invoke("Echo", 2)).toBe(2);
    expect(await first.invoke("Echo", 3)).toBe(3);
    await expect(second.invoke("Echo", 4)).rejects.toThrow("Too many invocations; slow down.");
    const users = await startServer([PlainHub], {
      authenticate: (request) => (request.token === undefined ? null : { sub: request.token }),
      modules: [new RateLimitModule({ perSecond: 0.001, burst: 1, key: "user" })],
    });
    const as = (token: string) => connectClient(users.url("/hubs/plain"), "json", (builder) => builder.withUrl(users.url("/hubs/plain"), { accessTokenFactory: () => token, transport: 1 }));
    const [alice1, alice2, bob] = [await as("alice"), await as("alice"), await as("bob")];
    expect(await alice1.invoke("Echo", 1)).toBe(1);
    await expect(alice2.invoke("Echo", 2)).rejects.toThrow("Too many invocations; slow down.");
    expect(await bob.invoke("Echo", 3)).toBe(3); // another user, same address: its own bucket
  });

  it("RateLimitModule rejects impossible options at construction", () => {
    expect(() => new RateLimitModule({ key: "ip" as never })).toThrow(expect.objectContaining({ code: "SB_ERR_OPTIONS" }));
    expect(() => new RateLimitModule({ perSecond: 0 })).toThrow(expect.objectContaining({ code: "SB_ERR_OPTIONS" }));
  });

  it("LoggingModule writes structured entries through the injected logger and never logs arguments", async () => {
    const server = await startServer([PlainHub], { modules: [LoggingModule] });
    const client = await connectClient(server.url("/hubs/plain"));
    await client.invoke("Echo", "private-argument-value");
    await client.stop();
    await until(() => server.logger.entries.some((entry) => entry.message === "Client disconnected."));
    const invoked = server.logger.entries.find((entry) => entry.message === "Hub method invoked.");
    expect(invoked?.fields).toMatchObject({ hub: "PlainHub", method: "Echo", outcome: "completed" });
    expect(typeof (invoked?.fields as { durationMs: number }).durationMs).toBe("number");
    expect(server.logger.entries.some((entry) => entry.message === "Client connected.")).toBe(true);
    expect(server.logger.text()).not.toContain("private-argument-value");
  });

  it("resolves module classes once from the server's container, with their dependencies", async () => {
    @injectable()
    class Counter {
      count = 0;
    }
    let constructed = 0;
    @injectable()
    class Counting implements HubModule {
      constructor(@inject(Counter) readonly counter: Counter) {
        constructed++;
      }
      invoke(_ctx: InvocationContext, next: () => Promise<unknown>): Promise<unknown> {
        this.counter.count++;
        return next();
      }
    }
    const parent = rootContainer.createChildContainer();
    parent.registerSingleton(Counter);
    @Hub("/hubs/counted")
    @UseModules(Counting)
    class CountedHub extends Hub {
      Echo(value: unknown): unknown {
        return value;
      }
    }
    const server = await startServer([PlainHub, CountedHub], { container: parent, modules: [Counting] });
    const plain = await connectClient(server.url("/hubs/plain"));
    await plain.invoke("Echo", 1);
    await plain.invoke("Echo", 2);
    expect(constructed).toBe(1); // one instance serves the global and the per-hub registration
    expect(parent.resolve(Counter).count).toBe(2);
  });
});
