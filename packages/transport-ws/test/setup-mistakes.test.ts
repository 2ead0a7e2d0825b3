import "reflect-metadata";
import { createServer, type Server } from "node:http";
import { container as rootContainer } from "tsyringe";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { WebSocketTransport, type WebSocketTransportOptions } from "../src/index.js";
import { MemoryLogger, connectClient } from "../../../test-support/harness.js";

@Hub("/hub")
class EchoHub extends Hub {
  Echo(value: string): string {
    return value;
  }
}

const servers: SwitchboardServer[] = [];
const httpServers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await Promise.all(httpServers.splice(0).map((http) => new Promise((resolve) => http.close(resolve))));
});

function hubServer(logger = new MemoryLogger()): SwitchboardServer {
  const server = new SwitchboardServer({ hubs: [EchoHub], protocols: [new JsonHubProtocol()], container: rootContainer.createChildContainer(), logger });
  servers.push(server);
  return server;
}

function catchError(action: () => unknown): Error & { code?: string } {
  try {
    action();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error("expected a throw");
}

describe("transport setup mistakes fail at startup with an SB_ERR_* naming the fix", () => {
  it("new WebSocketTransport(httpServer) (the Socket.IO habit) shows the right order", () => {
    const http = createServer();
    const error = catchError(() => new WebSocketTransport(http as never));
    expect(error).toMatchObject({ code: "SB_ERR_OPTIONS", message: expect.stringContaining("new WebSocketTransport(switchboard).attach(httpServer)") });
  });

  it("something that is no server at all is named", () => {
    expect(catchError(() => new WebSocketTransport({} as never))).toMatchObject({ code: "SB_ERR_OPTIONS", message: expect.stringContaining("needs a SwitchboardServer") });
    expect(catchError(() => new WebSocketTransport(undefined as never))).toMatchObject({ code: "SB_ERR_OPTIONS" });
  });

  it("a second transport attached to the same http.Server is refused; the first keeps serving", async () => {
    const http = createServer();
    httpServers.push(http);
    const first = new WebSocketTransport(hubServer()).attach(http);
    const error = catchError(() => new WebSocketTransport(hubServer()).attach(http));
    expect(error).toMatchObject({ code: "SB_ERR_OPTIONS", message: expect.stringContaining("already has a Switchboard transport") });
    const port = await new Promise<number>((resolve) => http.listen(0, "127.0.0.1", () => resolve((http.address() as { port: number }).port)));
    const client = await connectClient(`http://127.0.0.1:${port}/hub`);
    expect(await client.invoke("Echo", "still served")).toBe("still served");
    await client.stop();
    await first.stop();
    // Once the first has stopped, the http.Server is free for another.
    expect(() => new WebSocketTransport(hubServer()).attach(http)).not.toThrow();
  });

  it("attach() of something that is not an http.Server says what it needs", () => {
    const error = catchError(() => new WebSocketTransport(hubServer()).attach({} as never));
    expect(error).toMatchObject({ code: "SB_ERR_OPTIONS", message: expect.stringContaining("needs an http.Server") });
  });

  it("an unknown transport option is a warning with the closest valid name", () => {
    const logger = new MemoryLogger();
    new WebSocketTransport(hubServer(logger), { maxPayloadSize: 1 << 20 } as WebSocketTransportOptions);
    expect(logger.entries.map((entry) => entry.message)).toEqual(["Unknown WebSocketTransport option 'maxPayloadSize' is ignored. Did you mean 'maxPayload'?"]);
  });
});
