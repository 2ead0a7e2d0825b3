import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { ConnectionRequest, TransportType } from "@switchboard/core";

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
  const query = new Map<string, string>();
  if (mark !== -1) {
    for (const [key, value] of new URLSearchParams(url.slice(mark + 1))) if (!query.has(key)) query.set(key, value);
  }
  return { path, query };
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

/** The request facts handed to the core for a connection made over `transport`. */
export function requestOf(req: IncomingMessage, query: Map<string, string>, transport?: TransportType): ConnectionRequest {
  return { query, headers: req.headers, remoteAddress: req.socket.remoteAddress, transport };
}
