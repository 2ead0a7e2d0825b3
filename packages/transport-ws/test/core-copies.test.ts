import "reflect-metadata";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Authorize, Hub, type HubEndpoint } from "@switchboard/core";
import { buildClient, closeAll, startServer } from "../../../test-support/harness.js";

afterEach(closeAll);

const root = fileURLToPath(new URL("../../../", import.meta.url));
type Core = typeof import("@switchboard/core");

/**
 * A second copy of @switchboard/core, as npm nests one when an app upgrades core while a plugin
 * pins another version. It lives under the repository's node_modules so that its own imports
 * (tsyringe, reflect-metadata) resolve as they would in an app.
 */
let copyDir: string;
let second: Core;
beforeAll(async () => {
  copyDir = mkdtempSync(join(root, "node_modules", ".switchboard-second-core-"));
  cpSync(join(root, "packages/core/dist"), join(copyDir, "dist"), { recursive: true });
  writeFileSync(join(copyDir, "package.json"), JSON.stringify({ name: "@switchboard/core", version: "0.2.0", type: "module" }));
  second = (await import(pathToFileURL(join(copyDir, "dist/index.js")).href)) as Core;
});
afterAll(() => rmSync(copyDir, { recursive: true, force: true }));

@Hub("/secure")
@Authorize()
class SecureHub extends Hub {
  Secret(): string {
    return "secret";
  }
}

/** Makes the endpoint answer every negotiate and connect request with `answer`. */
function answerWith(endpoint: HubEndpoint, answer: () => unknown): void {
  endpoint.negotiate = async () => answer() as never;
  endpoint.admit = async () => answer() as never;
}

describe("the transport fails closed on what it does not recognize", () => {
  it("a refusal made by another copy of core still refuses (401), at negotiate and at connect", async () => {
    const server = await startServer([SecureHub]);
    answerWith(server.server.endpoint("/secure")!, () => new second.Refusal(401, "Unauthorized"));
    const response = await fetch(`${server.url("/secure")}/negotiate?negotiateVersion=1`, { method: "POST" });
    expect(response.status).toBe(401);
    const client = buildClient(server.url("/secure"), "json", (builder) => builder.withUrl(server.url("/secure"), { skipNegotiation: true, transport: 1 }));
    await expect(client.start()).rejects.toThrow();
    expect(server.server.endpoint("/secure")!.connections.size).toBe(0);
  });

  it.each([
    ["a refusal-like plain object", () => ({ status: 401, reason: "Unauthorized" })],
    ["null", () => null],
    ["a string", () => "ok"],
    ["a pending-connection-like plain object", () => ({ connectionId: "x", token: undefined, user: null, statefulReconnect: false })],
  ])("%s is answered 500 and never connects", async (_name, answer) => {
    const server = await startServer([SecureHub]);
    answerWith(server.server.endpoint("/secure")!, answer);
    const response = await fetch(`${server.url("/secure")}/negotiate?negotiateVersion=1`, { method: "POST" });
    expect(response.status).toBe(500);
    const client = buildClient(server.url("/secure"), "json", (builder) => builder.withUrl(server.url("/secure"), { skipNegotiation: true, transport: 1 }));
    await expect(client.start()).rejects.toThrow();
    expect(server.server.endpoint("/secure")!.connections.size).toBe(0);
    expect(server.logger.entries.some((entry) => entry.level === "error")).toBe(true);
  });

  it.each([
    ["Server-Sent Events", { accept: "text/event-stream" }],
    ["long polling", {}],
  ])("a look-alike admission on a %s connect is answered 500 and never connects", async (_name, headers) => {
    const server = await startServer([SecureHub]);
    answerWith(server.server.endpoint("/secure")!, () => ({ connectionId: "x", token: "t", user: null, statefulReconnect: false }));
    const response = await fetch(`${server.url("/secure")}?id=t`, { headers });
    expect(response.status).toBe(500);
    await response.body?.cancel();
    expect(server.server.endpoint("/secure")!.connections.size).toBe(0);
  });
});

describe("one core per app", () => {
  it("a transport given a server from another copy of core fails at startup with SB_ERR_CORE_MISMATCH", async () => {
    const { WebSocketTransport } = await import("@switchboard/transport-ws");
    const { JsonHubProtocol } = await import("@switchboard/protocol-json");
    const foreign = new second.SwitchboardServer({ protocols: [new JsonHubProtocol()] });
    try {
      expect(() => new WebSocketTransport(foreign as never)).toThrow(expect.objectContaining({ code: "SB_ERR_CORE_MISMATCH", message: expect.stringContaining("npm ls @switchboard/core") }));
    } finally {
      await foreign.close();
    }
  });

  it("CORE_VERSION is the version in core's package.json", async () => {
    const { CORE_VERSION } = await import("@switchboard/core");
    const manifest = JSON.parse(readFileSync(join(root, "packages/core/package.json"), "utf8")) as { version: string };
    expect(CORE_VERSION).toBe(manifest.version);
  });
});
