import "reflect-metadata";
import { container as rootContainer, inject, injectable } from "tsyringe";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, SwitchboardServer, type HubClass, type ServerOptions } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MemoryLogger } from "../../../test-support/harness.js";

const servers: SwitchboardServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

function serve(options: Partial<ServerOptions>): SwitchboardServer {
  const server = new SwitchboardServer({ protocols: [new JsonHubProtocol()], container: rootContainer.createChildContainer(), ...options } as ServerOptions);
  servers.push(server);
  return server;
}

@injectable()
class Clock {
  now(): number {
    return 0;
  }
}

describe("setup mistakes fail at startup with an SB_ERR_* naming the fix", () => {
  it("a hub with constructor parameters but no emitted metadata names both tsconfig flags", () => {
    // Decorating by hand emits no design:paramtypes: what tsc does with emitDecoratorMetadata off.
    class NoMetadataHub extends Hub {
      constructor(readonly clock: Clock) {
        super();
      }
    }
    Hub("/no-metadata")(NoMetadataHub);
    const error = catchError(() => serve({ hubs: [NoMetadataHub] }));
    expect(error).toMatchObject({ code: "SB_ERR_HUB_DEFINITION" });
    expect(error.message).toContain("'NoMetadataHub' has 1 constructor parameter");
    expect(error.message).toContain('"experimentalDecorators": true');
    expect(error.message).toContain('"emitDecoratorMetadata": true');
  });

  it("the same hub without metadata is accepted when every parameter has @inject(token)", () => {
    class InjectedHub extends Hub {
      constructor(readonly clock: Clock) {
        super();
      }
    }
    inject(Clock)(InjectedHub, undefined, 0);
    Hub("/injected")(InjectedHub);
    expect(() => serve({ hubs: [InjectedHub] })).not.toThrow();
  });

  it("a hub compiled with metadata is accepted", () => {
    @Hub("/with-metadata")
    class WithMetadataHub extends Hub {
      constructor(readonly clock: Clock) {
        super();
      }
    }
    expect(() => serve({ hubs: [WithMetadataHub] })).not.toThrow();
  });

  it("new SwitchboardServer() with no options shows the smallest valid call", () => {
    const error = catchError(() => new (SwitchboardServer as unknown as new () => SwitchboardServer)());
    expect(error).toMatchObject({ code: "SB_ERR_OPTIONS" });
    expect(error.message).toContain("new SwitchboardServer({ protocols: [new JsonHubProtocol()]");
  });

  it("no protocols names the package to get one from", () => {
    const error = catchError(() => new SwitchboardServer({} as ServerOptions));
    expect(error).toMatchObject({ code: "SB_ERR_OPTIONS", message: expect.stringContaining("@switchboard/protocol-json") });
  });

  it.each([
    ["a class", () => Hub],
    ["an object", () => ({ ChatHub: Hub })],
    ["a string", () => "ChatHub"],
  ])("hubs given as %s (not an array) says it must be an array", (_name, hubs) => {
    const error = catchError(() => serve({ hubs: hubs() as unknown as HubClass[] }));
    expect(error).toMatchObject({ code: "SB_ERR_OPTIONS", message: "Option 'hubs' must be an array of hub classes, e.g. hubs: [ChatHub]." });
  });

  it("undefined in hubs (a circular import) or an instance is named", () => {
    expect(catchError(() => serve({ hubs: [undefined as unknown as HubClass] }))).toMatchObject({ code: "SB_ERR_HUB_DEFINITION", message: expect.stringContaining("circular import") });
    expect(catchError(() => serve({ hubs: [{} as unknown as HubClass] }))).toMatchObject({ code: "SB_ERR_HUB_DEFINITION", message: expect.stringContaining("not an instance") });
  });

  it("the same hub class registered twice says where to remove it", () => {
    @Hub("/twice")
    class TwiceHub extends Hub {}
    const server = serve({ hubs: [TwiceHub] });
    const error = catchError(() => server.addHub(TwiceHub));
    expect(error).toMatchObject({ code: "SB_ERR_HUB_DEFINITION", message: "Hub 'TwiceHub' is registered twice: list it once, either in the 'hubs' option or in one addHub() call." });
    expect(catchError(() => serve({ hubs: [TwiceHub, TwiceHub] }))).toMatchObject({ code: "SB_ERR_HUB_DEFINITION" });
  });

  it("an unknown option key is a warning naming the closest valid one; a far-off key gets no guess", () => {
    const logger = new MemoryLogger();
    serve({ logger, maxMesageSize: 10, keepAlive: 5, zzz: 1 } as Partial<ServerOptions>);
    const warnings = logger.entries.filter((entry) => entry.level === "warn").map((entry) => entry.message);
    expect(warnings).toEqual([
      "Unknown server option 'maxMesageSize' is ignored. Did you mean 'maxMessageSize'?",
      "Unknown server option 'keepAlive' is ignored. Did you mean 'keepAliveInterval'?",
      "Unknown server option 'zzz' is ignored.",
    ]);
  });

  it("valid options log no warning", () => {
    const logger = new MemoryLogger();
    serve({ logger, maxMessageSize: 1000, detailedErrors: false });
    expect(logger.entries).toEqual([]);
  });
});

function catchError(action: () => unknown): Error & { code?: string } {
  try {
    action();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error("expected a throw");
}
