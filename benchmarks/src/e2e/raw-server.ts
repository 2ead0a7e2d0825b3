import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Socket } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import type { FanoutServer } from "./fanout-server.js";
import { floorFrame } from "./floor-frame.js";

const kGroups = Symbol("groups");
type Member = WebSocket & { [kGroups]?: string[]; _socket?: Socket };

const OK = Buffer.from("ok");

/**
 * The floor: plain `ws`, no framework. A send serializes the SignalR JSON record once (so clients
 * receive the very bytes Switchboard sends), frames it once into ONE buffer, and writes that
 * buffer straight to every member's TCP socket. A burst is concatenated into one record list and
 * one frame (the best case of corking). Joining is a text message `join:<group>`, answered `ok`.
 */
export async function startRaw(): Promise<FanoutServer> {
  const groups = new Map<string, Member[]>();
  const all = new Set<Member>();
  const httpServer = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false, clientTracking: false });

  function onMessage(this: Member, data: Buffer): void {
    const text = data.toString("utf8");
    if (!text.startsWith("join:")) return;
    const group = text.slice(5);
    let members = groups.get(group);
    if (members === undefined) groups.set(group, (members = []));
    members.push(this);
    this[kGroups]!.push(group);
    this.send(OK);
  }
  function onClose(this: Member): void {
    all.delete(this);
    for (const group of this[kGroups] ?? []) {
      const members = groups.get(group);
      if (members === undefined) continue;
      const index = members.indexOf(this);
      if (index !== -1) members.splice(index, 1);
      if (members.length === 0) groups.delete(group);
    }
  }
  function onError(): void {}

  wss.on("connection", (socket: WebSocket) => {
    const member = socket as Member;
    member[kGroups] = [];
    all.add(member);
    member.on("error", onError);
    member.on("message", onMessage);
    member.on("close", onClose);
  });
  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    port: (httpServer.address() as AddressInfo).port,
    send(group, burst, round, payload) {
      const members = groups.get(group);
      if (members === undefined) return;
      const frame = floorFrame(burst, round, payload);
      for (const member of members) if (member.readyState === WebSocket.OPEN) member._socket!.write(frame);
    },
    groupSize: (group) => groups.get(group)?.length ?? 0,
    connectionCount: () => all.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const member of all) member.terminate();
        wss.close();
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      }),
  };
}
