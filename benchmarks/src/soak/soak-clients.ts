/**
 * The soak's client process: well-behaved stable clients (exactly-once checked), churning clients
 * (join, leave, send, clean or abrupt disconnects), a latency probe, and misbehaving peers (a Ping
 * flood, a join flood). Reports to the runner over IPC once per round.
 */
import { WebSocket } from "ws";

const RS = "\u001e";
const [port, connectionsArg] = process.argv.slice(2).map(Number) as [number, number];
/** "probe": this process only measures Echo round trips, so the clients' own load does not inflate them. */
const probeOnly = process.argv[4] === "probe";
const BASE = `http://127.0.0.1:${port}/soak`;
const STABLE = 200;
const SENDERS = 10;
const CHURN = Math.max(0, connectionsArg - STABLE - 3);

interface Totals {
  delivered: number;
  violations: number;
  churnCycles: number;
  errors: number;
  floodFrames: number;
  floodJoins: number;
  capErrors: number;
}
const totals: Totals = { delivered: 0, violations: 0, churnCycles: 0, errors: 0, floodFrames: 0, floodJoins: 0, capErrors: 0 };
let latencies: number[] = [];
let flooding = false;
let stopping = false;

/** Open clients: one timer pings them all, as the official client does, so none hits clientTimeout. */
const open = new Set<Client>();
const PING = `{"type":6}${RS}`;
setInterval(() => {
  for (const client of open) client.ws.send(PING);
}, 10_000).unref();

/** A lean SignalR JSON client over raw ws: negotiate, handshake, invoke with completions. */
class Client {
  ws!: WebSocket;
  #next = 0;
  readonly #pending = new Map<string, (error: string | undefined, result: unknown) => void>();
  #buffer = "";
  onMessage: ((target: string, args: unknown[]) => void) | undefined;
  closed = false;

  async open(): Promise<void> {
    const response = await fetch(`${BASE}/negotiate?negotiateVersion=1`, { method: "POST" });
    if (response.status !== 200) throw new Error(`negotiate ${response.status}`);
    const { connectionToken } = (await response.json()) as { connectionToken: string };
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/soak?id=${connectionToken}`, { perMessageDeflate: false });
    this.ws.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("error", reject);
    });
    this.ws.send(`{"protocol":"json","version":1}${RS}`);
    let handshaken: () => void;
    const done = new Promise<void>((resolve) => (handshaken = resolve));
    let first = true;
    this.ws.on("message", (data: Buffer) => {
      this.#buffer += data.toString();
      let end: number;
      while ((end = this.#buffer.indexOf(RS)) !== -1) {
        const text = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 1);
        if (first) {
          first = false;
          handshaken();
          continue;
        }
        this.#record(JSON.parse(text) as Record<string, unknown>);
      }
    });
    this.ws.on("close", () => {
      this.closed = true;
      open.delete(this);
      for (const settle of this.#pending.values()) settle("closed", undefined);
      this.#pending.clear();
    });
    await done;
    open.add(this);
  }

  #record(message: Record<string, unknown>): void {
    if (message.type === 1) this.onMessage?.(message.target as string, message.arguments as unknown[]);
    else if (message.type === 3) {
      const settle = this.#pending.get(message.invocationId as string);
      this.#pending.delete(message.invocationId as string);
      settle?.(message.error as string | undefined, message.result);
    }
  }

  invoke(target: string, ...args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error("closed"));
    const id = String(this.#next++);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (error, result) => (error === undefined ? resolve(result) : reject(new Error(error))));
      this.ws.send(JSON.stringify({ type: 1, invocationId: id, target, arguments: args }) + RS);
    });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- stable clients: every one in "stable"; SENDERS of them send numbered messages to it --------
const received: Map<string, number>[] = [];
/** Stable clients the server closed before the shutdown (a slow consumer: this process fell behind). */
const closedEarly = new Set<number>();
const lastAcked = new Map<string, number>();
const stable: Client[] = [];

async function startStable(): Promise<void> {
  for (let i = 0; i < STABLE; i++) {
    const client = new Client();
    await client.open();
    const seen = new Map<string, number>();
    received.push(seen);
    client.onMessage = (_target, [sender, seq]) => {
      const last = seen.get(sender as string) ?? 0;
      if (seq !== last + 1) totals.violations++;
      seen.set(sender as string, seq as number);
      totals.delivered++;
    };
    await client.invoke("Join", "stable");
    const index = stable.length;
    client.ws.on("close", () => {
      if (!stopping) closedEarly.add(index);
    });
    stable.push(client);
  }
}

async function sender(index: number): Promise<void> {
  const name = `s${index}`;
  const client = stable[index]!;
  for (let seq = 1; !client.closed; seq++) {
    try {
      await client.invoke("Send", "stable", name, seq);
      lastAcked.set(name, seq);
    } catch {
      return; // the server is closing: messages not acknowledged are not counted
    }
    await sleep(200);
  }
}

// ---- churn: connect, join 3 groups, send, leave one, disconnect (half abruptly), repeat -----------
async function churner(index: number): Promise<void> {
  while (!stopping) {
    const client = new Client();
    try {
      await client.open();
      const groups = [0, 1, 2].map(() => `g${Math.floor(Math.random() * 100)}`);
      for (const group of groups) await client.invoke("Join", group);
      for (let n = 0; n < 3; n++) await client.invoke("Send", groups[n]!, `c${index}`, n);
      await client.invoke("Leave", groups[0]!);
      await sleep(20_000 + Math.random() * 40_000);
      if (Math.random() < 0.5) client.ws.terminate();
      else client.ws.close();
      totals.churnCycles++;
    } catch {
      if (!stopping) totals.errors++;
      client.ws?.terminate();
    }
    await sleep(Math.random() * 1_000);
  }
}

// ---- probe: Echo round trips -----------------------------------------------------------------
async function probe(client: Client): Promise<void> {
  while (!stopping) {
    const start = performance.now();
    try {
      await client.invoke("Echo", start);
    } catch {
      return;
    }
    latencies.push(performance.now() - start);
    await sleep(20);
  }
}

// ---- misbehaving peers ---------------------------------------------------------------------
const PING_FRAME = `{"type":6}${RS}`.repeat(5_000);
async function pingFlood(client: Client): Promise<void> {
  while (!stopping && !client.closed) {
    if (!flooding) {
      await sleep(100);
      continue;
    }
    await new Promise<void>((resolve) => client.ws.send(PING_FRAME, () => resolve()));
    totals.floodFrames++;
  }
}

async function joinFlood(client: Client): Promise<void> {
  let joined: string[] = [];
  let n = 0;
  while (!stopping && !client.closed) {
    if (!flooding) {
      await sleep(100);
      continue;
    }
    // Join distinct groups 100 at a time until the server's cap refuses, then leave them all.
    const batch = Array.from({ length: 100 }, () => `flood-${n++}`);
    const results = await Promise.allSettled(batch.map((group) => client.invoke("Join", group)));
    let refused = false;
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        totals.floodJoins++;
        joined.push(batch[i]!);
      } else {
        totals.capErrors++;
        refused = true;
      }
    });
    if (refused) {
      for (let i = 0; i < joined.length; i += 100) await Promise.allSettled(joined.slice(i, i + 100).map((group) => client.invoke("Leave", group)));
      joined = [];
    }
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

process.on("message", async (message: { kind: string; flooding?: boolean }) => {
  if (message.kind === "round") {
    const sorted = latencies.sort((a, b) => a - b);
    process.send!({ kind: "round", count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0, flooding, ...totals });
    latencies = [];
    if (message.flooding !== undefined) flooding = message.flooding;
  } else if (message.kind === "stop") {
    stopping = true;
  } else if (message.kind === "check") {
    // After the server closed: every message a sender had acknowledged reached every stable client.
    let lost = 0;
    for (const [index, seen] of received.entries()) if (!closedEarly.has(index)) for (const [name, acked] of lastAcked) if ((seen.get(name) ?? 0) < acked) lost += acked - (seen.get(name) ?? 0);
    process.send!({ kind: "check", lost, violations: totals.violations, delivered: totals.delivered, stableClosedEarly: closedEarly.size });
  }
});

async function main(): Promise<void> {
  if (probeOnly) {
    const probeClient = new Client();
    await probeClient.open();
    void probe(probeClient);
    process.send!({ kind: "ready", stable: 0, churn: 0 });
    return;
  }
  await startStable();
  for (let i = 0; i < SENDERS; i++) void sender(i);
  const pinger = new Client();
  await pinger.open();
  void pingFlood(pinger);
  const joiner = new Client();
  await joiner.open();
  void joinFlood(joiner);
  for (let i = 0; i < CHURN; i++) {
    void churner(i);
    if (i % 20 === 19) await sleep(200); // ramp up
  }
  process.send!({ kind: "ready", stable: STABLE, churn: CHURN });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
