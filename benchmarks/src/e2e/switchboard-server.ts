import type { Socket } from "node:net";
import { SwitchboardServer, type HubConnection } from "@switchboard/core";
import { WebSocket } from "ws";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { RedisBackplane } from "@switchboard/redis";
import { WebSocketTransport } from "@switchboard/transport-ws";
import { BenchHub, QUIET_LOGGER } from "../bench-hub.js";
import { CountingBackplane } from "../scaleout/counting-backplane.js";
import type { FanoutServer } from "./fanout-server.js";
import { floorFrame } from "./floor-frame.js";
import { nowMicros, stamp } from "./stamp.js";

/** What the floor's loop reads of a connection's transport: it is ws's socket itself (see transport-ws). */
type WsSocket = { readonly readyState: number; readonly _socket: Socket | null };

/** A send that could not be published to Redis (its local recipients got it): loud, so the run fails. */
function onPublishFailed(error: unknown): void {
  process.stderr.write(`[bench error] a send was not published to Redis: ${(error as Error)?.message ?? String(error)}\n`);
}

/**
 * Switchboard as an application would run it: JSON and MessagePack offered, default limits and
 * keep-alive, and sends through `server.hubContext(Hub).clients.group(name).send(...)`. With
 * `redisUrl`, scaled out on `RedisBackplane` (default options: sharded pub/sub on Redis 7+).
 */
export async function startSwitchboard(redisUrl?: string): Promise<FanoutServer> {
  const backplane = redisUrl === undefined ? undefined : new CountingBackplane(new RedisBackplane({ url: redisUrl, logger: QUIET_LOGGER }));
  const server = new SwitchboardServer({ hubs: [BenchHub], protocols: [new JsonHubProtocol(), new MessagePackHubProtocol()], logger: QUIET_LOGGER, ...(backplane === undefined ? {} : { backplane }) });
  await server.ready;
  const transport = new WebSocketTransport(server);
  const address = await transport.listen(0, "127.0.0.1");
  const hub = server.hubContext(BenchHub);
  const endpoint = server.endpoint("/bench")!;
  return {
    port: address.port,
    send:
      backplane === undefined
        ? (group, burst, round, payload) => {
            const micros = nowMicros();
            for (let i = 0; i < burst; i++) void hub.clients.group(group).send("m", stamp(i === burst - 1, round, micros), payload);
          }
        : (group, burst, round, payload) => {
            const micros = nowMicros();
            // Each send settles once Redis took it; a failure must not go unnoticed.
            for (let i = 0; i < burst; i++) hub.clients.group(group).send("m", stamp(i === burst - 1, round, micros), payload).catch(onPublishFailed);
          },
    ...(backplane === undefined
      ? {
          sendFloor(group: string, burst: number, round: number, payload: string): void {
            const members = endpoint.lifetimeManager.groups.membersOf(group);
            if (members === undefined) return;
            const frame = floorFrame(burst, round, payload);
            setImmediate(() => {
              for (const member of members as Iterable<HubConnection>) {
                const socket = member.transport as unknown as WsSocket;
                if (socket.readyState === WebSocket.OPEN) socket._socket!.write(frame);
              }
            });
          },
        }
      : {}),
    groupSize: (group) => hub.groups.count(group),
    connectionCount: () => endpoint.connections.size,
    ...(backplane === undefined ? {} : { scaleOut: { received: () => backplane.received, subscribed: () => backplane.subscribed() } }),
    close: () => server.close(),
  };
}
