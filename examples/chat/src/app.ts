import "reflect-metadata";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MemoryMembershipStore, SwitchboardServer, type ServerOptions } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { HttpTransport } from "@switchboard/transport-ws";
import { ChatHub } from "./chat-hub.js";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

/**
 * Static files of the page: the page itself and the official browser client bundles. The
 * MessagePack bundle has @msgpack/msgpack built in and needs only the `signalR` global of
 * signalr.min.js, loaded before it; the page test checks that it works in Chromium.
 */
const STATIC: Record<string, { file: string; type: string }> = {
  "/": { file: join(here, "..", "public", "index.html"), type: "text/html; charset=utf-8" },
  "/signalr.min.js": { file: require.resolve("@microsoft/signalr/dist/browser/signalr.min.js"), type: "text/javascript; charset=utf-8" },
  "/switchboard-client.js": { file: require.resolve("@switchboard/client"), type: "text/javascript; charset=utf-8" },
  "/signalr-protocol-msgpack.min.js": {
    file: require.resolve("@microsoft/signalr-protocol-msgpack/dist/browser/signalr-protocol-msgpack.min.js"),
    type: "text/javascript; charset=utf-8",
  },
};

async function serveStatic(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?")[0]!;
  const entry = Object.hasOwn(STATIC, path) ? STATIC[path] : undefined;
  if (entry === undefined || (req.method !== "GET" && req.method !== "HEAD")) {
    res.writeHead(404, { "Content-Type": "text/plain" }).end("Not Found");
    return;
  }
  try {
    const body = await readFile(entry.file);
    res.writeHead(200, { "Content-Type": entry.type, "Content-Length": body.length }).end(req.method === "HEAD" ? undefined : body);
  } catch {
    res.writeHead(500, { "Content-Type": "text/plain" }).end("Internal Server Error");
  }
}

/** The running demo: an HTTP server with the page, the hub at /hubs/chat, and a way to stop both. */
export interface ChatApp {
  readonly http: Server;
  readonly switchboard: SwitchboardServer;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The demo's rejoin key, the same on every start so rooms survive a restart. Development only: a
 * real deployment sets its own secret (32 random bytes or more) through `SB_REJOIN_KEY`.
 */
export const DEVELOPMENT_REJOIN_KEY = "switchboard-chat-demo-development-key-not-a-secret";

/** Where the demo's rejoin key came from, for the startup line. */
export function rejoinKey(): { key: string; source: string } {
  const key = process.env.SB_REJOIN_KEY;
  return key === undefined || key === "" ? { key: DEVELOPMENT_REJOIN_KEY, source: "the stable development key (set SB_REJOIN_KEY in production)" } : { key, source: "SB_REJOIN_KEY" };
}

/**
 * Starts the chat demo on `port` (0 = any free port) of `host`. Rooms outlive connections: a
 * rejoin token (signed with {@link rejoinKey}) brings them back after a reconnect or a reload, and
 * the rooms of a named user are persisted (in memory unless `options.membershipStore` says
 * otherwise). The chosen name is the demo's identity: it trusts it, a real app authenticates.
 */
export async function startChatApp(port: number, host = "127.0.0.1", options: Partial<ServerOptions> = {}): Promise<ChatApp> {
  const switchboard = new SwitchboardServer({
    hubs: [ChatHub],
    protocols: [new JsonHubProtocol(), new MessagePackHubProtocol()],
    rejoin: { keys: [rejoinKey().key] },
    membershipStore: new MemoryMembershipStore(),
    authenticate: ({ token }) => {
      const name = token === undefined ? "" : decodeURIComponent(token); // a bad escape throws: 401
      return name.length === 0 || name.length > 32 ? null : { sub: name };
    },
    ...options,
  });
  const http = createServer((req, res) => void serveStatic(req, res));
  // WebSockets, with Server-Sent Events and long polling for networks that block them.
  new HttpTransport(switchboard).attach(http);
  try {
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(port, host, () => resolve());
    });
  } catch (error) {
    await switchboard.close(); // nothing was served: release the hub server, report the cause
    throw error;
  }
  const address = http.address();
  const bound = typeof address === "object" && address !== null ? address.port : port;
  return {
    http,
    switchboard,
    port: bound,
    async close() {
      await switchboard.close();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}
