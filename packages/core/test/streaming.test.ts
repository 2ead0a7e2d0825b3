import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, HubError, HubMethod, UploadStream, type ClientAnswer } from "@switchboard/core";
import { closeAll, connectClient, RawClient, RS, settle, signalR, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";

afterEach(closeAll);

const events: string[] = [];
let lastSignal: AbortSignal | undefined;
let pulled = 0;

interface AskClient {
  GetAnswer(question: string): number;
  Slow(): number;
}

@Hub("/hubs/streams")
class StreamHub extends Hub<AskClient> {
  async *Counter(count: number, delay: number): AsyncGenerator<number> {
    for (let i = 0; i < count; i++) {
      if (delay > 0) await settle(delay);
      yield i;
    }
  }

  @HubMethod()
  async *Forever(signal: AbortSignal): AsyncGenerator<number> {
    lastSignal = signal;
    events.push("forever:start");
    try {
      for (let i = 0; ; i++) {
        await settle(5);
        yield i;
      }
    } finally {
      events.push(`forever:finally:${signal.aborted}`);
    }
  }

  Readable(count: number): ReadableStream<string> {
    let i = 0;
    return new ReadableStream<string>({
      pull(controller) {
        if (i < count) controller.enqueue(`r${i++}`);
        else controller.close();
      },
    });
  }

  async *Empty(): AsyncGenerator<number> {}

  async *Big(): AsyncGenerator<string> {
    const chunk = "x".repeat(4096);
    for (;;) {
      pulled++;
      yield chunk;
    }
  }

  async *Failing(): AsyncGenerator<number> {
    yield 1;
    throw new Error("secret internals");
  }

  Plain(): number {
    return 42;
  }

  Values(): unknown[] {
    return [new Uint8Array([1, 2, 3]), new Date(Date.UTC(2000, 0, 1))];
  }

  @HubMethod()
  async Sum(numbers: UploadStream<number>): Promise<number> {
    let total = 0;
    for await (const n of numbers) total += n;
    return total;
  }

  @HubMethod()
  async Combine(a: UploadStream<string>, label: string, b: UploadStream<string>): Promise<string> {
    const left: string[] = [];
    for await (const item of a) left.push(item);
    const right: string[] = [];
    for await (const item of b) right.push(item);
    return `${label}:${left.join(",")}|${right.join(",")}`;
  }

  async Undecorated(prefix: string, items: AsyncIterable<number>): Promise<string> {
    const seen: number[] = [];
    for await (const item of items) seen.push(item);
    return prefix + seen.join("");
  }

  @HubMethod()
  async Hold(items: UploadStream<number>): Promise<string> {
    events.push("hold:start");
    try {
      for await (const _ of items) events.push("hold:item");
      return "done";
    } catch (error) {
      events.push(`hold:error:${(error as Error).message}`);
      throw error;
    }
  }

  @HubMethod()
  async *Echo(items: UploadStream<number>): AsyncGenerator<number> {
    for await (const item of items) yield item * 2;
  }

  async AskCaller(question: string): Promise<number> {
    return this.clients.caller.invoke("GetAnswer", question);
  }

  async AskCallerQuickly(): Promise<string> {
    try {
      await this.clients.caller.withOptions({ timeout: 100 }).invoke("Slow");
      return "answered";
    } catch (error) {
      return `${(error as { code?: string }).code}: ${(error as Error).message}`;
    }
  }

  async AskUnknown(): Promise<string> {
    try {
      await this.clients.caller.invoke("NoSuchHandler" as "Slow");
      return "answered";
    } catch (error) {
      return (error as Error).message;
    }
  }

  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
}

function stream<T>(connection: signalR.HubConnection, method: string, ...args: unknown[]): Promise<{ items: T[]; error?: string }> {
  return new Promise((resolve) => {
    const items: T[] = [];
    connection.stream<T>(method, ...args).subscribe({
      next: (item) => void items.push(item),
      complete: () => resolve({ items }),
      error: (error) => resolve({ items, error: (error as Error).message }),
    });
  });
}

describe.each<ClientProtocol>(["json", "messagepack"])("streaming over %s", (protocol) => {
  let server: TestServer;
  const connect = (options: Parameters<typeof startServer>[1] = {}) =>
    startServer([StreamHub], options).then(async (started) => {
      server = started;
      return connectClient(started.url("/hubs/streams"), protocol);
    });

  it("streams an async generator's items, then completes", async () => {
    const client = await connect();
    expect(await stream<number>(client, "Counter", 10, 0)).toEqual({ items: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    expect(await stream<number>(client, "counter", 3, 5)).toEqual({ items: [0, 1, 2] });
  });

  it("streams a web ReadableStream and an empty generator", async () => {
    const client = await connect();
    expect(await stream<string>(client, "Readable", 4)).toEqual({ items: ["r0", "r1", "r2", "r3"] });
    expect(await stream<number>(client, "Empty")).toEqual({ items: [] });
  });

  it("ends a failing stream with the generic error, the items before it delivered", async () => {
    const client = await connect();
    expect(await stream<number>(client, "Failing")).toEqual({ items: [1], error: "An error occurred on the server while streaming results." });
  });

  it("adds the exception to a failing stream's error with detailedErrors", async () => {
    const client = await connect({ detailedErrors: true });
    expect((await stream<number>(client, "Failing")).error).toBe("An error occurred on the server while streaming results. Error: secret internals");
  });

  it("cancels an infinite stream when the client disposes its subscription: the method sees the abort, no more items", async () => {
    events.length = 0;
    const client = await connect();
    const items: number[] = [];
    const subscription = client.stream<number>("Forever").subscribe({ next: (item) => void items.push(item), complete: () => undefined, error: () => undefined });
    await until(() => items.length >= 3);
    subscription.dispose();
    await until(() => events.includes("forever:finally:true"));
    expect(lastSignal?.aborted).toBe(true);
    const count = items.length;
    await settle(60);
    expect(items.length).toBe(count);
    // The connection is still fine.
    expect(await client.invoke("Plain")).toBe(42);
  });

  it("cancels every stream of a connection when it disconnects", async () => {
    events.length = 0;
    const client = await connect();
    let received = 0;
    client.stream<number>("Forever").subscribe({ next: () => void received++, complete: () => undefined, error: () => undefined });
    await until(() => received >= 2);
    await client.stop();
    await until(() => events.includes("forever:finally:true"));
  });

  it("refuses invoke on a streaming method and stream on a plain one with ASP.NET's texts", async () => {
    const client = await connect();
    await expect(client.invoke("Counter", 3, 0)).rejects.toThrow("The client attempted to invoke the streaming 'Counter' method with a non-streaming invocation.");
    expect(await stream<number>(client, "Plain")).toEqual({ items: [], error: "The client attempted to invoke the non-streaming 'Plain' method with a streaming invocation." });
    expect(await client.invoke("Plain")).toBe(42);
  });

  it("keeps a slow consumer's stream bounded: the generator is not pulled while the connection is backed up", async () => {
    const client = await connect({ maxBufferedBytes: 64 * 1024 });
    const done = stream<number>(client, "Counter", 2000, 0);
    expect((await done).items.length).toBe(2000);
  });

  it("receives one upload stream as an UploadStream parameter", async () => {
    const client = await connect();
    const subject = new signalR.Subject<number>();
    const result = client.invoke("Sum", subject);
    for (let i = 1; i <= 10; i++) subject.next(i);
    subject.complete();
    expect(await result).toBe(55);
  });

  it("receives several upload streams mixed with ordinary arguments", async () => {
    const client = await connect();
    const a = new signalR.Subject<string>();
    const b = new signalR.Subject<string>();
    // Not two Subjects side by side: the v10 client's argument scan skips the one after a Subject.
    const result = client.invoke("Combine", a, "x", b);
    a.next("1");
    b.next("p");
    a.next("2");
    b.next("q");
    a.complete();
    b.complete();
    expect(await result).toBe("x:1,2|p,q");
  });

  it("appends upload streams after the arguments of an undecorated method", async () => {
    const client = await connect();
    const items = new signalR.Subject<number>();
    const result = client.invoke("Undecorated", "n=", items);
    items.next(1);
    items.next(2);
    items.complete();
    expect(await result).toBe("n=12");
  });

  it("propagates an upload stream's error to the method, whose failure reaches the caller", async () => {
    events.length = 0;
    const client = await connect();
    const items = new signalR.Subject<number>();
    const result = client.invoke("Hold", items);
    items.next(1);
    items.error(new Error("client gave up"));
    await expect(result).rejects.toThrow("An unexpected error occurred invoking 'Hold' on the server.");
    expect(events).toContain("hold:error:client gave up");
  });

  it("releases an upload stream the client never completes when it disconnects", async () => {
    events.length = 0;
    const client = await connect();
    const items = new signalR.Subject<number>();
    void client.invoke("Hold", items).catch(() => undefined);
    items.next(1);
    await until(() => events.includes("hold:item"));
    await client.stop();
    await until(() => events.some((event) => event.startsWith("hold:error:")));
  });

  it("streams both ways at once", async () => {
    const client = await connect();
    const items = new signalR.Subject<number>();
    const out = stream<number>(client, "Echo", items);
    for (let i = 0; i < 5; i++) items.next(i);
    items.complete();
    expect(await out).toEqual({ items: [0, 2, 4, 6, 8] });
  });

  it("sends bytes and dates as the .NET server does: base64 and ISO text in JSON, bin and timestamps in MessagePack", async () => {
    const client = await connect();
    const [bytes, date] = await client.invoke<unknown[]>("Values");
    if (protocol === "json") {
      expect(bytes).toBe("AQID");
      expect(date).toBe("2000-01-01T00:00:00Z");
    } else {
      expect(bytes).toEqual(new Uint8Array([1, 2, 3]));
      expect(date).toEqual(new Date(Date.UTC(2000, 0, 1)));
    }
  });

  it("gets a client result from the caller without deadlocking its invocation slot", async () => {
    const client = await connect();
    client.on("GetAnswer", (question: string) => (question === "life" ? 42 : 0));
    expect(await client.invoke("AskCaller", "life")).toBe(42);
  });

  it("rejects a client result with the client's error text, and on timeout", async () => {
    const client = await connect();
    client.on("GetAnswer", () => {
      throw new Error("nope");
    });
    await expect(client.invoke("AskCaller", "x")).rejects.toThrow("An unexpected error occurred invoking 'AskCaller' on the server.");
    client.on("Slow", () => new Promise((resolve) => setTimeout(() => resolve(1), 500)));
    expect(await client.invoke("AskCallerQuickly")).toMatch(/^SB_ERR_TIMEOUT: The client did not answer 'Slow' within 100 ms\.$/);
    expect(await client.invoke("AskUnknown")).toBe("Client didn't provide a result.");
  });

  it("asks one client from a hub context, and rejects when it disconnects", async () => {
    const client = await connect();
    client.on("GetAnswer", (question: string) => question.length);
    const context = server.server.hubContext(StreamHub);
    expect(await context.clients.client(client.connectionId!).invoke("GetAnswer", "four")).toBe(4);
    client.off("GetAnswer");
    client.on("GetAnswer", () => new Promise(() => undefined));
    const pending = context.clients.client(client.connectionId!).invoke("GetAnswer", "never");
    await settle(30);
    await client.stop();
    await expect(pending).rejects.toThrow("Connection closed before the client returned a result.");
    await expect(context.clients.client("nobody").invoke("GetAnswer", "x")).rejects.toThrow("Connection 'nobody' is not connected.");
  });

  it("stops waiting for a client result when its AbortSignal aborts", async () => {
    const client = await connect();
    client.on("GetAnswer", () => new Promise(() => undefined));
    const controller = new AbortController();
    const pending = server.server.hubContext(StreamHub).clients.client(client.connectionId!).withOptions({ signal: controller.signal }).invoke("GetAnswer", "x");
    controller.abort(new Error("changed my mind"));
    await expect(pending).rejects.toThrow("changed my mind");
  });

  it("collects every group member's answer with invokeAll, a silent member reported as timed out", async () => {
    const answering = await connect();
    const other = await connectClient(server.url("/hubs/streams"), protocol === "json" ? "messagepack" : "json");
    const silent = await connectClient(server.url("/hubs/streams"), protocol);
    answering.on("GetAnswer", () => 1);
    other.on("GetAnswer", () => {
      throw new Error("no");
    });
    silent.on("GetAnswer", () => new Promise(() => undefined));
    for (const client of [answering, other, silent]) await client.invoke("Join", "room");
    const answers = await server.server.hubContext(StreamHub).clients.group("room").withOptions({ timeout: 200 }).invokeAll("GetAnswer", "q");
    expect(answers.size).toBe(3);
    expect(answers.get(answering.connectionId!)).toEqual<ClientAnswer>({ result: 1 });
    expect(answers.get(other.connectionId!)).toEqual<ClientAnswer>({ error: "Error: no" });
    expect(answers.get(silent.connectionId!)).toEqual<ClientAnswer>({ error: "The client did not answer 'GetAnswer' within 200 ms." });
  });
});

describe("streams on the wire", () => {
  it("ignores items and completions for unknown stream ids, and a second completion", async () => {
    const server = await startServer([StreamHub]);
    const raw = await RawClient.connect(server, "/hubs/streams");
    raw.sendText(`{"type":2,"invocationId":"77","item":1}${RS}{"type":3,"invocationId":"78"}${RS}{"type":5,"invocationId":"79"}${RS}`);
    raw.sendText(`{"type":1,"invocationId":"1","target":"Sum","arguments":[],"streamIds":["s"]}${RS}`);
    raw.sendText(`{"type":2,"invocationId":"s","item":5}${RS}{"type":2,"invocationId":"s","item":6}${RS}{"type":3,"invocationId":"s"}${RS}`);
    raw.sendText(`{"type":3,"invocationId":"s"}${RS}{"type":2,"invocationId":"s","item":100}${RS}`);
    await until(() => raw.text().includes('"invocationId":"1"'));
    expect(raw.text()).toContain(`{"type":3,"invocationId":"1","result":11}`);
    raw.sendText(`{"type":1,"invocationId":"2","target":"Plain","arguments":[]}${RS}`);
    await until(() => raw.text().includes(`"invocationId":"2","result":42`));
  });

  it("drops an item sent before the invocation that declares its stream, and serves the items after it", async () => {
    const server = await startServer([StreamHub]);
    const raw = await RawClient.connect(server, "/hubs/streams");
    raw.sendText(`{"type":2,"invocationId":"u","item":1000}${RS}{"type":1,"invocationId":"1","target":"Sum","arguments":[],"streamIds":["u"]}${RS}`);
    raw.sendText(`{"type":2,"invocationId":"u","item":2}${RS}{"type":3,"invocationId":"u"}${RS}`);
    await until(() => raw.text().includes(`"invocationId":"1","result":2}`));
  });

  it("does not pull a stream faster than its client reads: a reader that stops holds the generator, not memory", async () => {
    const server = await startServer([StreamHub], { maxBufferedBytes: 256 * 1024, clientTimeout: 60_000 });
    const raw = await RawClient.connect(server, "/hubs/streams");
    pulled = 0;
    (raw.socket as unknown as { _socket: { pause(): void } })._socket.pause(); // stop reading: the server's socket backs up
    raw.sendText(`{"type":4,"invocationId":"1","target":"Big","arguments":[]}${RS}`);
    await until(() => pulled > 10);
    // The kernel's socket buffers grow for a while (autotuning; slower on a loaded machine): wait
    // until nothing was pulled for half a second, for at most 10 s. An unbounded pull never stops
    // and fails the size bound below.
    let held = -1;
    for (let i = 0; i < 20 && pulled !== held; i++) {
      held = pulled;
      await settle(500);
    }
    // Bounded by the kernel's socket buffers plus half of maxBufferedBytes, and no longer growing;
    // the client is not closed as a slow consumer: the stream waits for it instead.
    expect(pulled).toBe(held);
    expect(pulled * 4096).toBeLessThan(16 * 1024 * 1024);
    expect(server.server.endpoint("/hubs/streams")!.lifetimeManager.connections.size).toBe(1);
  });

  it("bounds the streams and the client results one connection may have at once, with clear errors", async () => {
    const server = await startServer([StreamHub], { maxStreams: 2, maxPendingClientResults: 2 });
    const raw = await RawClient.connect(server, "/hubs/streams");
    raw.sendText(`{"type":4,"invocationId":"1","target":"Forever","arguments":[]}${RS}{"type":4,"invocationId":"2","target":"Forever","arguments":[]}${RS}`);
    raw.sendText(`{"type":4,"invocationId":"3","target":"Forever","arguments":[]}${RS}`);
    await until(() => raw.text().includes(`"invocationId":"3","error":"A connection may have at most 2 streams running at once."`));
    raw.sendText(`{"type":5,"invocationId":"1"}${RS}`);
    await until(() => raw.text().includes(`{"type":3,"invocationId":"1"}`));
    raw.sendText(`{"type":4,"invocationId":"4","target":"Counter","arguments":[2,0]}${RS}`);
    await until(() => raw.text().includes(`{"type":3,"invocationId":"4"}`));
    raw.sendText(`{"type":5,"invocationId":"2"}${RS}`);
    // Client results: the raw client never answers, so two stay pending and a third is refused.
    const context = server.server.hubContext(StreamHub);
    const connectionId = [...server.server.endpoint("/hubs/streams")!.lifetimeManager.connections.keys()][0]!;
    const pending = [context.clients.client(connectionId).invoke("GetAnswer", "a"), context.clients.client(connectionId).invoke("GetAnswer", "b")];
    await expect(context.clients.client(connectionId).invoke("GetAnswer", "c")).rejects.toMatchObject({ code: "SB_ERR_LIMIT_STREAMS", message: "A connection may have at most 2 client results pending." });
    await raw.close();
    for (const answer of pending) await expect(answer).rejects.toThrow("Connection closed before the client returned a result.");
  });

  it("refuses a duplicate stream invocation id, a reused stream id and too many upload streams", async () => {
    const server = await startServer([StreamHub], { maxUploadStreams: 2 });
    const raw = await RawClient.connect(server, "/hubs/streams");
    raw.sendText(`{"type":4,"invocationId":"9","target":"Forever","arguments":[]}${RS}{"type":4,"invocationId":"9","target":"Forever","arguments":[]}${RS}`);
    await until(() => raw.text().includes("Invocation ID '9' is already in use."));
    raw.sendText(`{"type":5,"invocationId":"9"}${RS}`);
    raw.sendText(`{"type":1,"invocationId":"10","target":"Combine","arguments":["x"],"streamIds":["a","a"]}${RS}`);
    await until(() => raw.text().includes("Stream ID 'a' is already in use."));
    raw.sendText(`{"type":1,"invocationId":"11","target":"Undecorated","arguments":["p"],"streamIds":["a","b","c"]}${RS}`);
    await until(() => raw.text().includes("at most 2 upload streams"));
    raw.sendText(`{"type":1,"invocationId":"12","target":"Sum","arguments":[],"streamIds":["x","y"]}${RS}`);
    await until(() => raw.text().includes(`"invocationId":"12","error":"Failed to invoke 'Sum' due to an error on the server."`));
    raw.sendText(`{"type":1,"invocationId":"13","target":"Plain","arguments":[]}${RS}`);
    await until(() => raw.text().includes(`"invocationId":"13","result":42`));
  });

  it("stops reading from a client whose upload stream is over its buffer, and loses nothing", async () => {
    events.length = 0;
    const server = await startServer([StreamHub], { streamBufferCapacity: 2 });
    const client = await connectClient(server.url("/hubs/streams"));
    const subject = new signalR.Subject<number>();
    const result = client.invoke("Sum", subject);
    for (let i = 1; i <= 500; i++) subject.next(i);
    subject.complete();
    expect(await result).toBe(125_250);
  });
});
