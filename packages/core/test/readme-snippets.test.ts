import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const READMES = ["README.md", ...["core", "protocol-json", "protocol-msgpack", "transport-ws", "metrics", "client", "postgres", "redis"].map((name) => `packages/${name}/README.md`)];

/**
 * What the snippets take as given, declared once as globals: a block that declares the same name
 * shadows it (each block is a module), so every block reads as a user would paste it.
 */
const GIVEN = `
declare const protocols: import("@switchboard/core").HubProtocol[];
declare const hubs: import("@switchboard/core").HubClass[];
declare const server: import("@switchboard/core").SwitchboardServer;
declare const ChatHub: import("@switchboard/core").HubClass;
declare function verifyJwt(token: string): Promise<import("@switchboard/core").Principal | null>;
declare const metrics: { observe(name: string, ms: number): void };
declare const log: { warn(error: unknown): void };
declare const switchboard: import("@switchboard/core").SwitchboardServer;
declare const transport: import("@switchboard/transport-ws").HttpTransport;
// The parts of Express, Koa and Fastify the snippets use (none of them is a dependency here).
type Req = import("node:http").IncomingMessage;
type Res = import("node:http").ServerResponse;
declare const app: {
  use(handler: (req: Req, res: Res, next: () => void) => unknown): void;
  get(path: string, handler: (req: Req, res: Res & { json(body: unknown): void }) => void): void;
  listen(port: number): import("node:http").Server;
};
declare const koa: { use(handler: (ctx: { req: Req; res: Res; respond?: boolean }, next: () => Promise<void>) => Promise<void>): void };
declare function Fastify(): { server: import("node:http").Server; addHook(name: "preClose", hook: () => Promise<void>): void };
`;

/** Every ```ts block of the READMEs, with where it starts. */
function snippets(): { file: string; line: number; code: string }[] {
  const found: { file: string; line: number; code: string }[] = [];
  for (const file of READMES) {
    const text = readFileSync(join(root, file), "utf8");
    for (const match of text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
      found.push({ file, line: text.slice(0, match.index).split("\n").length, code: match[1]! });
    }
  }
  return found;
}

// Inside the repository's node_modules, so the snippets' imports resolve to the workspace packages.
const dir = mkdtempSync(join(root, "node_modules", ".readme-snippets-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("README code blocks", () => {
  it("there are snippets to check, the client's one ending with stop()", () => {
    const all = snippets();
    expect(all.length).toBeGreaterThanOrEqual(10);
    const client = all.find((snippet) => snippet.code.includes("HubConnectionBuilder()"));
    expect(client?.code.trimEnd().endsWith("await connection.stop();")).toBe(true);
  });

  it("every ```ts block type-checks under strict, with the workspace packages", () => {
    const all = snippets();
    const names = all.map((snippet, i) => {
      const name = `block-${i}.ts`;
      writeFileSync(join(dir, name), `${snippet.code}\nexport {};\n`);
      return name;
    });
    writeFileSync(join(dir, "given.d.ts"), GIVEN);
    const compilerOptions = {
      target: "ES2022", lib: ["ES2023", "DOM"], module: "NodeNext", moduleResolution: "NodeNext", strict: true,
      experimentalDecorators: true, emitDecoratorMetadata: true, noEmit: true, skipLibCheck: true, types: ["node"],
    };
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files: ["given.d.ts", ...names] }));
    let output = "";
    try {
      execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")], { encoding: "utf8", timeout: 60_000 });
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error);
    }
    // Name each error by its README and line, not by the scratch file.
    const located = output.replace(/\S*block-(\d+)\.ts\((\d+),\d+\)/g, (_all, i: string, line: string) => `${all[Number(i)]!.file}:${all[Number(i)]!.line + Number(line)}`);
    expect(located).toBe("");
  });
});
