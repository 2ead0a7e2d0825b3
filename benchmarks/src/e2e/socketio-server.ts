import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import type { FanoutServer } from "./fanout-server.js";
import { nowMicros, stamp } from "./stamp.js";

/**
 * Socket.IO 4.8 the way its documentation sets up rooms: WebSocket transport only (as our clients
 * use), no compression, the default in-memory adapter, `io.to(room).emit(...)`.
 */
export async function startSocketIo(): Promise<FanoutServer> {
  const httpServer = createServer();
  const io = new Server(httpServer, { transports: ["websocket"], serveClient: false, perMessageDeflate: false, httpCompression: false });
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
  return {
    port,
    send(group, burst, round, payload) {
      const micros = nowMicros();
      for (let i = 0; i < burst; i++) io.to(group).emit("m", stamp(i === burst - 1, round, micros), payload);
    },
    groupSize: (group) => io.of("/").adapter.rooms.get(group)?.size ?? 0,
    connectionCount: () => io.engine.clientsCount,
    close: () =>
      new Promise<void>((resolve) => {
        io.close(() => resolve());
        httpServer.closeAllConnections();
      }),
  };
}
