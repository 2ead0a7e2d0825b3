import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { ConnectionRequest, TransportType } from "@switchboard/core";
import { parseQuery, QueryParameters } from "./query-parameters.js";

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Payload Too Large",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** The path (without a trailing slash) and query (first value of each name) of a request URL. */
export function splitUrl(url: string | undefined): { path: string; query: Map<string, string> } | undefined {
  if (url === undefined) return undefined;
  const mark = url.indexOf("?");
  let path = mark === -1 ? url : url.slice(0, mark);
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  return { path, query: parseQuery(mark === -1 ? "" : url.slice(mark + 1)) };
}

/** Answers a plain HTTP request with a short text (or JSON) body. Headers set earlier (CORS) stay. */
export function respond(res: ServerResponse, status: number, body: string, type = "text/plain; charset=utf-8"): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string | number> = { "Content-Type": type, "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-cache, no-store" };
  if (status === 401) headers["WWW-Authenticate"] = "Bearer";
  res.writeHead(status, headers);
  res.end(body);
}

/** Answers an upgrade request on the raw socket and destroys it once written. */
export function rejectUpgrade(socket: Duplex, status: number, body: string): void {
  if (!socket.writable) return void socket.destroy();
  // end() only half-closes, and a client that keeps its side open would pin the socket (and
  // server.close()) forever: destroy it once the response is written, as ws does.
  socket.once("finish", socket.destroy);
  const reason = STATUS_TEXT[status] ?? "Error";
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

/**
 * Headers only the WebSocket handshake and the hop use. A connection keeps its request for its
 * whole life and hub code has no use for these, so they are left out: about 200 bytes per
 * WebSocket connection.
 */
const HANDSHAKE_HEADERS: ReadonlySet<string> = new Set(["connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"]);

/**
 * The request facts handed to the core for a connection made over `transport`, kept compact
 * because a connection keeps them for its whole life: the query stays the URL string until read
 * (see {@link QueryParameters}), and the headers are a copy without {@link HANDSHAKE_HEADERS}.
 * `_query` (the query `splitUrl` already parsed) is not kept, for that reason.
 */
export function requestOf(req: IncomingMessage, _query: Map<string, string>, transport?: TransportType): ConnectionRequest {
  const headers: Record<string, string | string[] | undefined> = {};
  for (const name of Object.keys(req.headers)) if (!HANDSHAKE_HEADERS.has(name)) headers[name] = req.headers[name];
  return { query: new QueryParameters(req.url ?? ""), headers, remoteAddress: req.socket.remoteAddress, transport };
}
