import { SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { WebSocketTransport } from "@switchboard/transport-ws";
import { BenchHub, QUIET_LOGGER } from "../bench-hub.js";
import type { FanoutServer } from "./fanout-server.js";
import { nowMicros, stamp } from "./stamp.js";

/**
 * Switchboard as an application would run it: JSON and MessagePack offered, default limits and
 * keep-alive, and sends through `server.hubContext(Hub).clients.group(name).send(...)`.
 */
export async function startSwitchboard(): Promise<FanoutServer> {
  const server = new SwitchboardServer({ hubs: [BenchHub], protocols: [new JsonHubProtocol(), new MessagePackHubProtocol()], logger: QUIET_LOGGER });
  const transport = new WebSocketTransport(server);
  const address = await transport.listen(0, "127.0.0.1");
  const hub = server.hubContext(BenchHub);
  const endpoint = server.endpoint("/bench")!;
  return {
    port: address.port,
    send(group, burst, round, payload) {
      const micros = nowMicros();
      for (let i = 0; i < burst; i++) void hub.clients.group(group).send("m", stamp(i === burst - 1, round, micros), payload);
    },
    groupSize: (group) => hub.groups.count(group),
    connectionCount: () => endpoint.connections.size,
    close: () => server.close(),
  };
}
