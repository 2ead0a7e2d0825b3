import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";
import type { FanoutServer, ScaleOutProbe } from "./fanout-server.js";
import { nowMicros, stamp } from "./stamp.js";

/** The Redis adapter's per-server id (public in @socket.io/redis-adapter 8, not in its types). */
type WithUid = { readonly uid?: unknown };

/**
 * The adapter's pub/sub clients, on ioredis as its documentation sets them up, and a count of the
 * broadcasts of other servers that reach this one. A broadcast is msgpack `[uid, packet, opts]`
 * (notepack: fixarray 0x93, then the 6-character uid as fixstr 0xa6), so this server's own
 * broadcasts, which its pattern subscription brings back, are told apart by bytes 2–7 without
 * decoding; the adapter decodes every one of them anyway.
 */
async function redisAdapter(url: string): Promise<{ adapter: ReturnType<typeof createAdapter>; probe: (uid: string) => ScaleOutProbe; close(): Promise<void> }> {
  const pub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) client.on("error", (error: Error) => process.stderr.write(`[bench error] socket.io redis client: ${error.message}\n`));
  await Promise.all([pub.connect(), sub.connect()]);
  return {
    adapter: createAdapter(pub, sub),
    probe(uid) {
      const own = Buffer.from(uid, "latin1");
      let received = 0;
      sub.on("pmessageBuffer", (_pattern: Buffer, _channel: Buffer, message: Buffer) => {
        if (!(message[0] === 0x93 && message[1] === 0xa6 && message.compare(own, 0, own.length, 2, 2 + own.length) === 0)) received++;
      });
      // Commands on one connection run in order: the answer to this PING comes after the adapter's PSUBSCRIBE took effect.
      return { received: () => received, subscribed: () => sub.ping().then(() => undefined) };
    },
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
      pub.disconnect();
      sub.disconnect();
    },
  };
}

/**
 * Socket.IO 4.8 the way its documentation sets up rooms: WebSocket transport only (as our clients
 * use), no compression, the default in-memory adapter, `io.to(room).emit(...)`. With `redisUrl`,
 * scaled out with `@socket.io/redis-adapter`'s `createAdapter(pub, sub)` on ioredis (classic
 * pub/sub: one PUBLISH per broadcast to a room, every server pattern-subscribed).
 */
export async function startSocketIo(redisUrl?: string): Promise<FanoutServer> {
  const redis = redisUrl === undefined ? undefined : await redisAdapter(redisUrl);
  const httpServer = createServer();
  const io = new Server(httpServer, { transports: ["websocket"], serveClient: false, perMessageDeflate: false, httpCompression: false, ...(redis === undefined ? {} : { adapter: redis.adapter }) });
  io.on("connection", (socket) => {
    socket.on("join", (room: unknown, ack: unknown) => {
      if (typeof room === "string") void socket.join(room);
      if (typeof ack === "function") ack();
    });
  });
  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (httpServer.address() as AddressInfo).port;
  let scaleOut: ScaleOutProbe | undefined;
  if (redis !== undefined) {
    const uid = (io.of("/").adapter as WithUid).uid;
    if (typeof uid !== "string" || uid.length !== 6) throw new Error("@socket.io/redis-adapter has no 6-character uid: the bench's message count needs updating");
    scaleOut = redis.probe(uid);
  }
  return {
    port,
    send(group, burst, round, payload) {
      const micros = nowMicros();
      for (let i = 0; i < burst; i++) io.to(group).emit("m", stamp(i === burst - 1, round, micros), payload);
    },
    groupSize: (group) => io.of("/").adapter.rooms.get(group)?.size ?? 0,
    connectionCount: () => io.engine.clientsCount,
    ...(scaleOut === undefined ? {} : { scaleOut }),
    close: () =>
      new Promise<void>((resolve) => {
        io.close(() => resolve());
        httpServer.closeAllConnections();
      }).then(() => redis?.close()),
  };
}
