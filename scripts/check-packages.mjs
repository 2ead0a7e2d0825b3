#!/usr/bin/env node
// Packs every published workspace, installs the tarballs into a scratch app in a temp folder (as a
// user would, from the npm cache: --prefer-offline), type-checks that app under skipLibCheck false
// with moduleResolution nodenext and bundler, then starts a hub from the installed packages and
// connects the official client to it. Prints one line per step; exits non-zero on the first failure.
// Also checks @switchboard/client end to end (a rejoin token restores a group) and that the
// PostgreSQL store type-checks against the contract. Run by .ci/run after npm test (about 30 s); `node scripts/check-packages.mjs` runs it by hand.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const PACKAGES = ["core", "protocol-json", "protocol-msgpack", "transport-ws", "metrics", "client", "postgres", "redis"];
const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const dir = mkdtempSync(join(tmpdir(), "switchboard-consumer-"));

function run(what, command, args, cwd, timeout) {
  const started = Date.now();
  try {
    const out = execFileSync(command, args, { cwd, timeout, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    console.log(`check-packages: ${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return out;
  } catch (error) {
    console.error(`check-packages: FAILED: ${what}\n${error.stdout ?? ""}${error.stderr ?? ""}${error.message}`);
    throw error;
  }
}

const APP = `import "reflect-metadata";
import { inject, injectable } from "tsyringe";
import { Hub, MemoryMembershipStore, SwitchboardServer, consoleLogger, type MembershipStore } from "@switchboard/core";
import { withRejoin } from "@switchboard/client";
import { PostgresMembershipStore } from "@switchboard/postgres";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { WebSocketTransport } from "@switchboard/transport-ws";
import { SwitchboardMetrics } from "@switchboard/metrics";
import { HubConnectionBuilder, HttpTransportType } from "@microsoft/signalr";
import { MessagePackHubProtocol as ClientMessagePack } from "@microsoft/signalr-protocol-msgpack";

@injectable()
class Greeter {
  greet(name: string): string {
    return \`hello \${name}\`;
  }
}

@Hub("/hubs/greet")
class GreetHub extends Hub {
  constructor(@inject(Greeter) private readonly greeter: Greeter) {
    super();
  }
  Greet(name: string): string {
    return this.greeter.greet(name);
  }
  async Join(group: string): Promise<string[]> {
    await this.groups.add(this.context.connectionId, group);
    return this.groups.groupsOf(this.context.connectionId);
  }
}

// Type-checked only (no database here): the PostgreSQL store fits the contract.
const stores: MembershipStore[] = [new MemoryMembershipStore()];
if (process.env.DATABASE_URL) stores.unshift(new PostgresMembershipStore({ connectionString: process.env.DATABASE_URL }));

const server = new SwitchboardServer({ hubs: [GreetHub], protocols: [new JsonHubProtocol(), new MessagePackHubProtocol()], logger: consoleLogger("error"), observer: new SwitchboardMetrics(), rejoin: { keys: ["k".repeat(32)] }, membershipStore: stores.at(-1)! });
const { port } = await new WebSocketTransport(server).listen(0, "127.0.0.1");
for (const protocol of [undefined, new ClientMessagePack()]) {
  const builder = new HubConnectionBuilder().withUrl(\`http://127.0.0.1:\${port}/hubs/greet\`, { transport: HttpTransportType.WebSockets });
  const connection = (protocol ? builder.withHubProtocol(protocol) : builder).build();
  await connection.start();
  const answer: string = await connection.invoke("Greet", "tarball");
  if (answer !== "hello tarball") throw new Error(\`unexpected answer \${answer}\`);
  if (server.stats().connections !== 1) throw new Error("stats() does not count the connection");
  await connection.stop();
}
// @switchboard/client: a token for the group, handed back by a second client as after a reload.
let saved: string | null = null;
const storage = { getItem: () => saved, setItem: (_key: string, value: string) => void (saved = value), removeItem: () => void (saved = null) };
const first = withRejoin(new HubConnectionBuilder().withUrl(\`http://127.0.0.1:\${port}/hubs/greet\`), { storage });
await first.connection.start();
await first.connection.invoke("Join", "room");
for (let i = 0; i < 200 && saved === null; i++) await new Promise((resolve) => setTimeout(resolve, 10));
await first.connection.stop();
const second = withRejoin(new HubConnectionBuilder().withUrl(\`http://127.0.0.1:\${port}/hubs/greet\`), { storage });
const back = new Promise<readonly string[]>((resolve) => second.onRejoined(resolve));
await second.connection.start();
if ((await back).join() !== "room") throw new Error("the rejoin token did not restore the group");
await second.connection.stop();
await server.close();
console.log("consumer app: OK");
`;

const compilerOptions = {
  target: "ES2022",
  lib: ["ES2023", "DOM"],
  strict: true,
  skipLibCheck: false,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  types: ["node"],
};

let failed = false;
try {
  const packed = JSON.parse(run("npm pack", "npm", ["pack", "--json", "--pack-destination", dir, ...PACKAGES.flatMap((p) => ["--workspace", `packages/${p}`])], root, 120_000));
  const dependencies = Object.fromEntries(packed.map((p) => [p.name, `file:./${p.filename}`]));
  const dev = rootManifest.devDependencies;
  Object.assign(dependencies, {
    tsyringe: "^4.10.0",
    "reflect-metadata": "^0.2.2",
    "@opentelemetry/api": "^1.9.0",
    "@microsoft/signalr": dev["@microsoft/signalr"],
    "@microsoft/signalr-protocol-msgpack": dev["@microsoft/signalr-protocol-msgpack"],
  });
  const devDependencies = { typescript: dev.typescript, "@types/node": dev["@types/node"] };
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module", dependencies, devDependencies }, null, 2));
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src/app.ts"), APP);
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { ...compilerOptions, module: "NodeNext", moduleResolution: "NodeNext", rootDir: "src", outDir: "dist" }, include: ["src"] }));
  writeFileSync(join(dir, "tsconfig.bundler.json"), JSON.stringify({ compilerOptions: { ...compilerOptions, module: "ESNext", moduleResolution: "Bundler", noEmit: true }, include: ["src"] }));
  run("npm install of the tarballs", "npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], dir, 180_000);
  const tsc = join(dir, "node_modules/typescript/bin/tsc");
  run("tsc, moduleResolution nodenext, skipLibCheck false", process.execPath, [tsc, "-p", "tsconfig.json"], dir, 120_000);
  run("tsc, moduleResolution bundler, skipLibCheck false", process.execPath, [tsc, "-p", "tsconfig.bundler.json"], dir, 120_000);
  run("a hub from the installed packages answers the official client (JSON and MessagePack)", process.execPath, ["dist/app.js"], dir, 30_000);
} catch {
  failed = true;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`check-packages: ${failed ? "failed" : "passed"}`);
process.exit(failed ? 1 : 0);
