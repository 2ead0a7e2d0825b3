import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { AllowAnonymous, Authorize, Hub, HubMethod, NotHubMethod, type AuthenticationRequest, type Principal } from "@switchboard/core";
import { closeAll, connectClient, startServer } from "../../../test-support/harness.js";

afterEach(closeAll);

/** Test tokens: anonymous, "member" (bob), "admin" (root: member and admin). */
const USERS: Record<string, Principal> = {
  "token-bob": { sub: "bob", roles: ["member"] },
  "token-root": { sub: "root", roles: ["member", "admin"] },
  "token-eve": { sub: "eve", roles: [] },
};
function authenticate(request: AuthenticationRequest): Principal | null {
  if (request.token === undefined) return null;
  const user = Object.hasOwn(USERS, request.token) ? USERS[request.token] : undefined;
  if (user === undefined) throw new Error("invalid token");
  return user;
}
const hasRole = (role: string) => (user: Principal) => Array.isArray(user.roles) && user.roles.includes(role);
const policies = { member: hasRole("member"), admin: hasRole("admin") };

const client = (url: string, token?: string) =>
  connectClient(url, "json", (builder) => builder.withUrl(url, token === undefined ? { transport: 1 } : { accessTokenFactory: () => token, transport: 1 }));
const UNAUTHORIZED = /because user is unauthorized/;

class AdminBase extends Hub {
  @Authorize("admin")
  Purge(): string {
    return "purged";
  }
  @Authorize("member")
  Report(): string {
    return "report";
  }
  @NotHubMethod()
  resetAllState(): string {
    return "reset";
  }
  @HubMethod("Renamed")
  original(): string {
    return "renamed";
  }
}

@Hub("/hubs/derived")
class DerivedHub extends AdminBase {
  // No decorators: the base's @Authorize, @NotHubMethod and @HubMethod name must still hold.
  override Purge(): string {
    return super.Purge();
  }
  @Authorize("admin")
  override Report(): string {
    return super.Report();
  }
  override resetAllState(): string {
    return super.resetAllState();
  }
  override original(): string {
    return super.original();
  }
}

@Authorize("member")
class MembersBase extends Hub {
  Hello(): string {
    return "hello";
  }
  @AllowAnonymous()
  Open(): string {
    return "open";
  }
  @AllowAnonymous()
  AlsoOpen(): string {
    return "also open";
  }
  @Authorize("admin")
  Audit(): string {
    return "audit";
  }
}

@Hub("/hubs/members")
class MembersHub extends MembersBase {
  override Hello(): string {
    return super.Hello();
  }
  // Overridden without @AllowAnonymous: the most derived declaration decides, so the hub's policy applies.
  override Open(): string {
    return super.Open();
  }
}

@Hub("/hubs/admins")
@Authorize("admin")
class AdminsHub extends MembersBase {
  // Most derived says @AllowAnonymous: the hubs' policies (member and admin) are skipped…
  @AllowAnonymous()
  override Hello(): string {
    return super.Hello();
  }
  // …but method-level @Authorize from anywhere in the chain is never skipped.
  @AllowAnonymous()
  override Audit(): string {
    return super.Audit();
  }
}

const start = () => startServer([DerivedHub, MembersHub, AdminsHub], { authenticate, policies });

describe("authorization over the prototype chain", () => {
  it("keeps a base method's @Authorize when a subclass overrides it without decorators", async () => {
    const server = await start();
    const bob = await client(server.url("/hubs/derived"), "token-bob");
    await expect(bob.invoke("Purge")).rejects.toThrow(UNAUTHORIZED);
    const root = await client(server.url("/hubs/derived"), "token-root");
    expect(await root.invoke("Purge")).toBe("purged");
  });

  it("requires the union of the policies declared on the base and on the override", async () => {
    const server = await start();
    const eve = await client(server.url("/hubs/derived"), "token-eve");
    await expect(eve.invoke("Report")).rejects.toThrow(UNAUTHORIZED);
    const bob = await client(server.url("/hubs/derived"), "token-bob"); // member, not admin
    await expect(bob.invoke("Report")).rejects.toThrow(UNAUTHORIZED);
    const root = await client(server.url("/hubs/derived"), "token-root");
    expect(await root.invoke("Report")).toBe("report");
  });

  it("inherits class-level @Authorize from a base class: anonymous negotiate is 401, policies apply", async () => {
    const server = await start();
    const negotiate = await fetch(`${server.url("/hubs/members")}/negotiate?negotiateVersion=1`, { method: "POST" });
    expect(negotiate.status).toBe(401);
    const eve = await client(server.url("/hubs/members"), "token-eve");
    await expect(eve.invoke("Hello")).rejects.toThrow(UNAUTHORIZED);
    const bob = await client(server.url("/hubs/members"), "token-bob");
    expect(await bob.invoke("Hello")).toBe("hello");
  });

  it("applies @AllowAnonymous only where the most derived declaration says so", async () => {
    const server = await start();
    const eve = await client(server.url("/hubs/members"), "token-eve");
    await expect(eve.invoke("Open")).rejects.toThrow(UNAUTHORIZED); // override dropped @AllowAnonymous
    expect(await eve.invoke("AlsoOpen")).toBe("also open"); // inherited as declared
  });

  it("requires every class-level @Authorize of the chain, and @AllowAnonymous never skips method policies", async () => {
    const server = await start();
    const bob = await client(server.url("/hubs/admins"), "token-bob"); // member, not admin
    await expect(bob.invoke("AlsoOpen")).resolves.toBe("also open");
    expect(await bob.invoke("Hello")).toBe("hello"); // @AllowAnonymous on the override
    await expect(bob.invoke("Audit")).rejects.toThrow(UNAUTHORIZED); // the base's method @Authorize stays
    const eve = await client(server.url("/hubs/admins"), "token-eve");
    await expect(eve.invoke("Open")).resolves.toBe("open");
    const root = await client(server.url("/hubs/admins"), "token-root");
    expect(await root.invoke("Audit")).toBe("audit");
  });
});

describe("method exposure over the prototype chain", () => {
  it("keeps a base @NotHubMethod hidden when a subclass overrides it", async () => {
    const server = await start();
    const root = await client(server.url("/hubs/derived"), "token-root");
    await expect(root.invoke("resetAllState")).rejects.toThrow("Unknown hub method 'resetAllState'");
  });

  it("keeps a base @HubMethod name when a subclass overrides it", async () => {
    const server = await start();
    const root = await client(server.url("/hubs/derived"), "token-root");
    expect(await root.invoke("Renamed")).toBe("renamed");
    await expect(root.invoke("original")).rejects.toThrow("Unknown hub method 'original'");
  });
});

@Hub("/hubs/helpers")
class HelpersHub extends Hub {
  @HubMethod()
  Send(text: string): string {
    return this.format(text);
  }
  // TypeScript `private` is not visible at run time: exposed unless hidden.
  private format(text: string): string {
    return `<${text}>`;
  }
  _internalReset(): string {
    return "reset";
  }
}

@Hub("/hubs/helpers-all")
class HelpersAllHub extends HelpersHub {}

describe("method exposure model", () => {
  it("exposes every method by default (TypeScript private included) and warns about '_' names at startup", async () => {
    const server = await startServer([HelpersHub]);
    const caller = await client(server.url("/hubs/helpers"));
    expect(await caller.invoke("format", "x")).toBe("<x>");
    expect(await caller.invoke("_internalReset")).toBe("reset");
    const warning = server.logger.entries.find((entry) => entry.level === "warn" && /start with '_'/.test(entry.message));
    expect(warning?.fields).toMatchObject({ hub: "HelpersHub", methods: ["_internalReset"] });
  });

  it("with hubMethods: 'decorated' on the server, only @HubMethod() methods are invocable", async () => {
    const server = await startServer([HelpersHub], { hubMethods: "decorated" });
    const caller = await client(server.url("/hubs/helpers"));
    expect(await caller.invoke("Send", "x")).toBe("<x>");
    await expect(caller.invoke("format", "x")).rejects.toThrow("Unknown hub method 'format'");
    await expect(caller.invoke("_internalReset")).rejects.toThrow("Unknown hub method '_internalReset'");
    expect(server.logger.entries.some((entry) => entry.level === "warn")).toBe(false);
  });

  it("with hubMethods: 'decorated' on one hub only, and refuses an unknown exposure value", async () => {
    const server = await startServer([]);
    server.server.addHub(HelpersHub, undefined, { hubMethods: "decorated" });
    server.server.addHub(HelpersAllHub);
    const caller = await client(server.url("/hubs/helpers"));
    await expect(caller.invoke("format", "x")).rejects.toThrow("Unknown hub method 'format'");
    const other = await client(server.url("/hubs/helpers-all"));
    expect(await other.invoke("format", "x")).toBe("<x>");
    expect(await other.invoke("Send", "y")).toBe("<y>"); // inherited @HubMethod
    expect(() => server.server.addHub(MembersHub, undefined, { hubMethods: "Decorated" as never })).toThrow(/must be "all" or "decorated"/);
  });
});
