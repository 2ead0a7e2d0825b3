import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect, createServer } from "node:net";
import { afterAll, beforeAll } from "vitest";
import type { HubContext } from "@switchboard/core";
import type { Redis } from "ioredis";

/** Why the Redis tests cannot run here, or undefined when `redis-server` is installed. */
export const redisMissing: string | undefined = spawnSync("redis-server", ["--version"]).error !== undefined ? "redis-server is not installed" : undefined;

const redisMajor = redisMissing === undefined ? Number(/v=(\d+)\./.exec(spawnSync("redis-server", ["--version"], { encoding: "utf8" }).stdout)?.[1] ?? 0) : undefined;

/** Why a Redis Cluster backplane cannot be tested here (it needs Redis 7's sharded pub/sub), or undefined. */
export const redisBefore7: string | undefined = redisMajor !== undefined && redisMajor < 7 ? `redis-server is version ${redisMajor}; a Redis Cluster backplane needs 7 or later` : undefined;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function accepting(port: number, timeout = 5_000): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A redis-server of the test's own on a free port, that the test can stop and start again. */
export class TestRedis {
  readonly port: number;
  readonly #args: readonly string[];
  #process: ChildProcess | undefined;

  private constructor(port: number, args: readonly string[]) {
    this.port = port;
    this.#args = args;
  }

  /** `args` go to redis-server at every (re)start. */
  static async start(args: readonly string[] = []): Promise<TestRedis> {
    const redis = new TestRedis(await freePort(), args);
    await redis.resume();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts (again) on the same port. */
  async resume(): Promise<void> {
    this.#process = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", ...this.#args], { stdio: "ignore" });
    await accepting(this.port);
  }

  /** Kills the server (no goodbye to its clients). */
  async stop(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  }
}

/** A port whose cluster bus port (port + 10 000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port)) continue;
    const free = async (candidate: number) =>
      new Promise<boolean>((resolve) => {
        const server = createServer();
        server.once("error", () => resolve(false));
        server.listen(candidate, "127.0.0.1", () => server.close(() => resolve(true)));
      });
    if ((await free(port)) && (await free(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
}

/**
 * A Redis Cluster of the test's own, in a temporary directory: three masters (no replicas), or one
 * master holding every slot (`masters: 1`); `args` go to every redis-server.
 */
export class TestRedisCluster {
  readonly ports: readonly number[];
  readonly #processes: ChildProcess[];
  readonly #dir: string;

  private constructor(ports: number[], processes: ChildProcess[], dir: string) {
    this.ports = ports;
    this.#processes = processes;
    this.#dir = dir;
  }

  static async start(options: { readonly masters?: 1 | 3; readonly args?: readonly string[] } = {}): Promise<TestRedisCluster> {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "sb-redis-cluster-"));
    const taken = new Set<number>();
    const ports: number[] = [];
    for (let i = 0; i < (options.masters ?? 3); i++) ports.push(await clusterPort(taken));
    const processes = ports.map((port) =>
      spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file", join(dir, `nodes-${port}.conf`), "--save", "", "--appendonly", "no", "--protected-mode", "no", "--cluster-announce-ip", "127.0.0.1", ...(options.args ?? [])], { stdio: "ignore", cwd: dir }),
    );
    const cluster = new TestRedisCluster(ports, processes, dir);
    try {
      for (const port of ports) await accepting(port);
      // redis-cli --cluster create wants three masters; one takes its slots itself.
      const create =
        ports.length === 1
          ? spawnSync("redis-cli", ["-p", String(ports[0]), "cluster", "addslotsrange", "0", "16383"], { encoding: "utf8", timeout: 30_000 })
          : spawnSync("redis-cli", ["--cluster", "create", ...ports.map((port) => `127.0.0.1:${port}`), "--cluster-replicas", "0", "--cluster-yes"], { encoding: "utf8", timeout: 30_000 });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
      const deadline = Date.now() + 15_000;
      for (;;) {
        const states = ports.map((port) => spawnSync("redis-cli", ["-p", String(port), "cluster", "info"], { encoding: "utf8" }).stdout);
        if (states.every((state) => state.includes("cluster_state:ok"))) break;
        if (Date.now() > deadline) throw new Error("the test Redis Cluster did not reach cluster_state:ok");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Startup nodes for ioredis. */
  get nodes(): { host: string; port: number }[] {
    return this.ports.map((port) => ({ host: "127.0.0.1", port }));
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#processes.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGKILL");
          }),
      ),
    );
    const { rmSync } = await import("node:fs");
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/**
 * Starts a {@link TestRedis} before the enclosing `describe`'s tests and stops it after them (a
 * missing redis-server fails there under `CI=true`; elsewhere the describe is skipped first), with
 * `args` for redis-server. Returns a getter for the instance.
 */
export function useTestRedis(args: readonly string[] = []): () => TestRedis {
  let redis: TestRedis | undefined;
  beforeAll(async () => {
    if (redisMissing !== undefined) throw new Error(`CI=true but ${redisMissing}`);
    redis = await TestRedis.start(args);
  });
  afterAll(() => redis?.stop());
  return () => {
    if (redis === undefined) throw new Error("the test Redis has not started");
    return redis;
  };
}

/**
 * Sends `count` messages "m" from `context` without waiting for any, turn by turn to a user, a
 * connection, a group and everyone (four channels), and returns their texts in the order sent.
 */
export async function sendAcrossTargets(context: HubContext, to: { readonly userId: string; readonly connectionId: string; readonly group: string }, count = 200): Promise<string[]> {
  const targets = [() => context.clients.user(to.userId), () => context.clients.client(to.connectionId), () => context.clients.group(to.group), () => context.clients.all];
  const sent = Array.from({ length: count }, (_, i) => `${i % targets.length}:${i}`);
  await Promise.all(sent.map((text, i) => targets[i % targets.length]!().send("m", text)));
  return sent;
}

/** Whether the Redis behind `raw` has sharded pub/sub (the backplane asks the same way). */
export async function hasShardedPubSub(raw: Redis): Promise<boolean> {
  const [spublish] = (await raw.call("COMMAND", "INFO", "SPUBLISH")) as unknown[];
  return Array.isArray(spublish);
}
