import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { inject, injectable, Lifecycle, scoped } from "tsyringe";
import { Hub, HubError, HubMethod, NotHubMethod, HubDefinitionError, SwitchboardServer, type HubCallerContext } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { closeAll, connectClient, record, settle, startServer, until, type ClientProtocol } from "../../../test-support/harness.js";

afterEach(closeAll);

@injectable()
class Greeter {
  greet(name: string): string {
    return `Hello, ${name}!`;
  }
}

let connectionScopedCreated = 0;
@scoped(Lifecycle.ContainerScoped)
class ConnectionCounter {
  readonly serial = ++connectionScopedCreated;
  calls = 0;
}

const lifecycle: string[] = [];
const instances = new Set<object>();

interface TestClient {
  Notify(text: string): void;
}

@Hub("/hubs/test")
class TestHub extends Hub<TestClient> {
  constructor(private readonly greeter: Greeter, @inject(ConnectionCounter) private readonly counter: ConnectionCounter) {
    super();
  }

  override async onConnected(): Promise<void> {
    lifecycle.push(`connected:${this.context.connectionId}`);
  }

  override onDisconnected(error?: Error): void {
    lifecycle.push(`disconnected:${this.context.connectionId}:${error ? "error" : "clean"}`);
  }

  Add(a: number, b: number): number {
    return a + b;
  }

  async AddLater(a: number, b: number): Promise<number> {
    await settle(5);
    return a + b;
  }

  Greet(name: string): string {
    return this.greeter.greet(name);
  }

  Nothing(): void {}

  Instance(): boolean {
    const fresh = !instances.has(this);
    instances.add(this);
    return fresh;
  }

  CountCalls(): [number, number] {
    this.counter.calls++;
    return [this.counter.serial, this.counter.calls];
  }

  @HubMethod("renamed")
  originalName(): string {
    return "renamed works";
  }

  @HubMethod()
  Typed(n: number, s: string, b: boolean, list: string[]): string {
    return `${n}|${s}|${b}|${list.length}`;
  }

  @NotHubMethod()
  Hidden(): string {
    return "should not be callable";
  }

  Fail(): never {
    throw new Error("secret database password is hunter2");
  }

  async FailAsync(): Promise<never> {
    await settle(1);
    throw new Error("async secret");
  }

  FailHub(): never {
    throw new HubError("The room is full.");
  }

  ThrowNumber(): never {
    throw 42;
  }

  NotifyMe(text: string): Promise<void> {
    return this.clients.caller.send("Notify", text);
  }

  Items(key: string, value: string): unknown {
    const previous = this.context.items.get(key);
    this.context.items.set(key, value);
    return previous ?? null;
  }

  WhoAmI(): string {
    return this.context.connectionId;
  }

  UserId(): string | null {
    return this.context.userIdentifier;
  }

  Abort(): void {
    this.context.abort();
  }

  Context(): boolean {
    const context: HubCallerContext = this.context;
    return typeof context.abort === "function";
  }
}

describe.each<ClientProtocol>(["json", "messagepack"])("hub dispatch over %s with the official client", (protocol) => {
  it("invokes sync and async methods and returns their results", async () => {
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol);
    expect(await client.invoke("Add", 40, 2)).toBe(42);
    expect(await client.invoke("AddLater", 1, 2)).toBe(3);
    expect(await client.invoke("Nothing")).toBeNull();
  });

  it("looks methods up case-insensitively and honours @HubMethod renames and @NotHubMethod", async () => {
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol);
    expect(await client.invoke("add", 1, 1)).toBe(2);
    expect(await client.invoke("ADD", 2, 2)).toBe(4);
    expect(await client.invoke("RENAMED")).toBe("renamed works");
    await expect(client.invoke("originalName")).rejects.toThrow("Unknown hub method 'originalName'");
    await expect(client.invoke("Hidden")).rejects.toThrow("Unknown hub method 'Hidden'");
    await expect(client.invoke("onConnected")).rejects.toThrow("Unknown hub method 'onConnected'");
  });

  it("injects constructor dependencies and creates a hub instance per invocation", async () => {
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol);
    expect(await client.invoke("Greet", "Ada")).toBe("Hello, Ada!");
    expect(await client.invoke("Instance")).toBe(true);
    expect(await client.invoke("Instance")).toBe(true);
  });

  it("gives each connection its own scope for ContainerScoped services", async () => {
    const server = await startServer([TestHub]);
    const a = await connectClient(server.url("/hubs/test"), protocol);
    const b = await connectClient(server.url("/hubs/test"), protocol);
    const [a1, a2, b1] = [await a.invoke("CountCalls"), await a.invoke("CountCalls"), await b.invoke("CountCalls")] as [number, number][];
    expect(a1[0]).toBe(a2[0]);
    expect(a2[1]).toBe(2);
    expect(b1[0]).not.toBe(a1[0]);
    expect(b1[1]).toBe(1);
  });

  it("T17 T19 answers errors with generic text, HubError text verbatim, and keeps the connection open", async () => {
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol);
    await expect(client.invoke("Fail")).rejects.toThrow(/^An unexpected error occurred invoking 'Fail' on the server\.$/);
    await expect(client.invoke("FailAsync")).rejects.toThrow("An unexpected error occurred invoking 'FailAsync' on the server.");
    await expect(client.invoke("ThrowNumber")).rejects.toThrow("An unexpected error occurred invoking 'ThrowNumber' on the server.");
    await expect(client.invoke("FailHub")).rejects.toThrow(/^The room is full\.$/);
    await expect(client.invoke("Nope")).rejects.toThrow(/^Unknown hub method 'Nope'$/);
    expect(await client.invoke("Add", 1, 2)).toBe(3);
    expect(server.logger.text()).toContain("hunter2"); // the cause is logged, not sent
  });

  it("sends exception messages (never stacks) when detailedErrors is on", async () => {
    const server = await startServer([TestHub], { detailedErrors: true });
    const client = await connectClient(server.url("/hubs/test"), protocol);
    await expect(client.invoke("Fail")).rejects.toThrow("An unexpected error occurred invoking 'Fail' on the server. Error: secret database password is hunter2");
    await expect(client.invoke("ThrowNumber")).rejects.toThrow("on the server. 42");
  });

  it("rejects wrong argument counts and, for decorated methods, wrong types without calling the method", async () => {
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol);
    const binding = "Failed to invoke 'Add' due to an error on the server.";
    await expect(client.invoke("Add", 1)).rejects.toThrow(binding);
    await expect(client.invoke("Add", 1, 2, 3)).rejects.toThrow(binding);
    expect(await client.invoke("Typed", 1, "s", true, ["x"])).toBe("1|s|true|1");
    const typed = "Failed to invoke 'Typed' due to an error on the server.";
    await expect(client.invoke("Typed", "1", "s", true, [])).rejects.toThrow(typed);
    await expect(client.invoke("Typed", 1, 2, true, [])).rejects.toThrow(typed);
    await expect(client.invoke("Typed", 1, "s", "true", [])).rejects.toThrow(typed);
    await expect(client.invoke("Typed", 1, "s", true, {})).rejects.toThrow(typed);
    await expect(client.invoke("Typed", null, "s", true, [])).rejects.toThrow(typed);
    expect(await client.invoke("Add", 2, 3)).toBe(5);
  });

  it("answers nothing to invocations without an id, errors included", async () => {
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol);
    await client.send("Fail");
    await client.send("Nope");
    await client.send("Add", 1);
    expect(await client.invoke("Add", 1, 1)).toBe(2); // the next Completion is this one's
  });

  it("calls the client through clients.caller and keeps per-connection items", async () => {
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol);
    const notes = record(client, "Notify");
    await client.invoke("NotifyMe", "ping!");
    await until(() => notes.length === 1);
    expect(notes[0]).toEqual(["ping!"]);
    expect(await client.invoke("Items", "k", "v1")).toBeNull();
    expect(await client.invoke("Items", "k", "v2")).toBe("v1");
    expect(await client.invoke("WhoAmI")).toBe(client.connectionId);
    expect(await client.invoke("UserId")).toBeNull();
  });

  it("runs onConnected before invocations and onDisconnected once when the client stops", async () => {
    lifecycle.length = 0;
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol);
    const id = client.connectionId!;
    await client.invoke("Add", 1, 1);
    expect(lifecycle).toEqual([`connected:${id}`]);
    await client.stop();
    await until(() => lifecycle.length === 2);
    await settle(20);
    expect(lifecycle).toEqual([`connected:${id}`, `disconnected:${id}:clean`]);
  });

  it("abort() closes the connection and the client does not reconnect", async () => {
    const server = await startServer([TestHub]);
    const client = await connectClient(server.url("/hubs/test"), protocol, (builder) => builder.withAutomaticReconnect([0]));
    let reconnecting = false;
    client.onreconnecting(() => void (reconnecting = true));
    const closed = new Promise<Error | undefined>((resolve) => client.onclose(resolve));
    await client.send("Abort");
    expect(await closed).toBeUndefined();
    await settle(50);
    expect(reconnecting).toBe(false);
  });
});

describe("hub definitions", () => {
  it("refuses a hub without @Hub and a path clash", () => {
    class Plain extends Hub {}
    const protocols = [new JsonHubProtocol()];
    expect(() => new SwitchboardServer({ protocols, hubs: [Plain], logger: undefined })).toThrow(HubDefinitionError);
    @Hub("/same") class A extends Hub {}
    @Hub("/same") class B extends Hub {}
    const server = new SwitchboardServer({ protocols, hubs: [A] });
    expect(() => server.addHub(B)).toThrow(/are both registered on '\/same'/);
    void server.close();
  });

  it("refuses two methods whose names differ only by case", () => {
    @Hub("/dup") class Dup extends Hub {
      send(): void {}
      Send(): void {}
    }
    const server = new SwitchboardServer({ protocols: [new JsonHubProtocol()] });
    expect(() => server.addHub(Dup)).toThrow(expect.objectContaining({ code: "SB_ERR_HUB_DEFINITION" }));
    void server.close();
  });

  it("refuses a server without protocols", () => {
    expect(() => new SwitchboardServer({ protocols: [] })).toThrow(expect.objectContaining({ code: "SB_ERR_OPTIONS" }));
  });
});

/** A transient service with `dispose()`: tsyringe records such instances in the resolving container. */
@injectable()
class DisposableHelper {
  dispose(): void {}
}

@Hub("/hubs/disposable")
@injectable()
class DisposableDependencyHub extends Hub {
  constructor(@inject(DisposableHelper) readonly helper: DisposableHelper) {
    super();
  }
  @HubMethod()
  Work(): boolean {
    return this.helper instanceof DisposableHelper;
  }
}

describe("connection DI scope", () => {
  it("does not grow per invocation with a transient disposable dependency", async () => {
    let scope: unknown;
    const server = await startServer([DisposableDependencyHub], {
      modules: [{ invoke: (ctx, next) => ((scope = ctx.services), next()) }],
    });
    const client = await connectClient(server.url("/hubs/disposable"));
    for (let i = 0; i < 50; i++) expect(await client.invoke("Work")).toBe(true);
    const disposables = (scope as { disposables?: Set<unknown> }).disposables;
    expect(disposables).toBeInstanceOf(Set); // tsyringe's record of what dispose() would release
    expect(disposables!.size).toBe(0);
  });
});
