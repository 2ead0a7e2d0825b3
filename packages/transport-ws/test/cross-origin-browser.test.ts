/**
 * The official browser client in headless Chromium (Debian's `chromium`, via playwright-core), on
 * a page served from another origin than the hub: it connects over each transport through CORS,
 * and a page from an origin that is not allowed is refused at negotiate and at the WebSocket
 * upgrade. Without Chromium the suite is skipped with a warning, except under CI=true (fails).
 */
import "reflect-metadata";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Hub } from "@switchboard/core";
import { closeAll, startServer, type TestServer } from "../../../test-support/harness.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];
const haveChromium = existsSync(CHROMIUM);
const mustRun = process.env.CI === "true";
if (!haveChromium && !mustRun) {
  console.warn(`transport-ws: skipping the cross-origin browser test, no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH).`);
}

const require = createRequire(import.meta.url);

@Hub("/hub")
class BrowserHub extends Hub {
  Echo(value: unknown): unknown {
    return value;
  }
  Transport(): unknown {
    return this.context.request.transport;
  }
}

/** A page server: one HTML page and the official browser bundle, on its own port (its own origin). */
async function pageServer(): Promise<{ server: Server; origin: string }> {
  const bundle = await readFile(require.resolve("@microsoft/signalr/dist/browser/signalr.min.js"));
  const server = createServer((req, res) => {
    if (req.url === "/signalr.min.js") return void res.writeHead(200, { "Content-Type": "text/javascript" }).end(bundle);
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end('<!doctype html><title>other origin</title><script src="/signalr.min.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

/** Connects from the page with the official client; resolves with the hub's answers or the error text. */
function connectFrom(page: Page, url: string, transport: number, skipNegotiation = false): Promise<{ ok: true; echo: unknown; transport: unknown } | { ok: false; error: string }> {
  return page.evaluate(
    async ({ url, transport, skipNegotiation }) => {
      const signalR = (globalThis as unknown as { signalR: any }).signalR;
      const connection = new signalR.HubConnectionBuilder().withUrl(url, { transport, skipNegotiation }).configureLogging(signalR.LogLevel.None).build();
      try {
        await connection.start();
        const echo = await connection.invoke("Echo", "through CORS ✓");
        const used = await connection.invoke("Transport");
        await connection.stop();
        return { ok: true as const, echo, transport: used };
      } catch (error) {
        return { ok: false as const, error: String(error) };
      }
    },
    { url, transport, skipNegotiation },
  );
}

describe.skipIf(!haveChromium && !mustRun)("a page on another origin, in headless Chromium", () => {
  let browser: Browser | undefined;
  let allowed: { server: Server; origin: string } | undefined;
  let refused: { server: Server; origin: string } | undefined;
  let hub: TestServer;
  const answered: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) return;
    [allowed, refused] = await Promise.all([pageServer(), pageServer()]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  });

  beforeEach(async () => {
    if (!haveChromium) throw new Error(`CI=true but there is no Chromium at ${CHROMIUM}: the browser test cannot run.`);
    hub = await startServer([BrowserHub], {}, { cors: { origins: [allowed!.origin] } });
    answered.length = 0;
    // Observe what the hub server answered (after the transport's own listener).
    hub.transport.httpServer!.on("request", (req, res) => res.on("finish", () => answered.push(`${req.method} ${req.url!.split("?")[0]} ${res.statusCode}`)));
    hub.transport.httpServer!.on("upgrade", (req) => answered.push(`UPGRADE ${req.headers.origin}`));
  });

  afterEach(async () => {
    await closeAll();
    expect(pageErrors.splice(0)).toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all([allowed, refused].map((entry) => entry && new Promise((resolve) => entry.server.close(resolve))));
  });

  async function openPage(origin: string): Promise<Page> {
    const page = await browser!.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${origin}/`);
    return page;
  }

  it.each([
    ["WebSockets", 1],
    ["ServerSentEvents", 2],
    ["LongPolling", 4],
  ] as const)("connects over %s through CORS, with credentials", async (name, transport) => {
    const page = await openPage(allowed!.origin);
    expect(await connectFrom(page, hub.url("/hub"), transport)).toEqual({ ok: true, echo: "through CORS ✓", transport: name });
    expect(answered).toContain("OPTIONS /hub/negotiate 204");
    expect(answered).toContain("POST /hub/negotiate 200");
    await page.close();
  });

  it("is refused at negotiate and at the WebSocket upgrade from an origin that is not allowed", async () => {
    const page = await openPage(refused!.origin);
    const negotiated = await connectFrom(page, hub.url("/hub"), 1 | 2 | 4);
    expect(negotiated.ok).toBe(false);
    expect(answered).toContain("OPTIONS /hub/negotiate 403");
    expect(answered.some((entry) => entry.startsWith("POST /hub/negotiate"))).toBe(false);
    // Browsers do not CORS-check WebSockets: the server's Origin check is what refuses it.
    const upgraded = await connectFrom(page, hub.url("/hub"), 1, true);
    expect(upgraded.ok).toBe(false);
    expect(answered).toContain(`UPGRADE ${refused!.origin}`);
    expect(hub.logger.entries.some((entry) => entry.message === "Refused a WebSocket upgrade from an origin that is not allowed.")).toBe(true);
    expect(hub.server.endpoint("/hub")!.connections.size).toBe(0);
    await page.close();
  });
});
