import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { AllowAnonymous, Authorize, Hub, HubDefinitionError, LoggingModule, SwitchboardServer, type AuthenticationRequest, type Principal } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { buildClient, closeAll, connectClient, negotiate, RawClient, record, RS, settle, startServer, until } from "../../../test-support/harness.js";

afterEach(closeAll);

/** Test tokens: "token-<user>[-admin]". Anything else is invalid. */
const USERS: Record<string, Principal> = {
  "token-alice": { sub: "alice", roles: ["member"] },
  "token-alice-2": { sub: "alice", roles: ["member"] },
  "token-bob": { sub: "bob", roles: [] },
  "token-root": { sub: "root", roles: ["member", "admin"] },
};

function authenticate(request: AuthenticationRequest): Principal | null {
  if (request.token === undefined) return null;
  const user = Object.hasOwn(USERS, request.token) ? USERS[request.token] : undefined;
  if (user === undefined) throw new Error("invalid token");
  return user;
}

const hasRole = (role: string) => (user: Principal) => Array.isArray(user.roles) && user.roles.includes(role);
const policies = { member: hasRole("member"), admin: hasRole("admin") };

@Hub("/hubs/secure")
@Authorize("member")
class SecureHub extends Hub {
  Whoami(): [string | null, unknown] {
    return [this.context.userIdentifier, this.context.user?.sub];
  }
  @AllowAnonymous()
  Public(): string {
    return "public";
  }
  @Authorize("admin")
  AdminOnly(): string {
    return "admin";
  }
  async NotifyUser(user: string, text: string): Promise<void> {
    await this.clients.user(user).send("Note", text);
  }
}

@Hub("/hubs/open")
class OpenHub extends Hub {
  Whoami(): string | null {
    return this.context.userIdentifier;
  }
  @Authorize()
  SignedInOnly(): string {
    return "signed in";
  }
  @Authorize("admin")
  AdminOnly(): string {
    return "admin";
  }
}

const start = () => startServer([SecureHub, OpenHub], { authenticate, policies });

async function secureClient(url: string, token: string) {
  return connectClient(url, "json", (builder) => builder.withUrl(url, { accessTokenFactory: () => token, transport: 1 }));
}

describe("authentication", () => {
  it("T25b answers 401 on negotiate and on upgrade for a hub that requires it, without or with a bad token", async () => {
    const server = await start();
    const url = server.url("/hubs/secure");
    expect((await fetch(`${url}/negotiate?negotiateVersion=1`, { method: "POST" })).status).toBe(401);
    const bad = await fetch(`${url}/negotiate?negotiateVersion=1`, { method: "POST", headers: { Authorization: "Bearer nope" } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("www-authenticate")).toBe("Bearer");
    await expect(RawClient.open(`ws://127.0.0.1:${server.port}/hubs/secure`)).rejects.toMatchObject({ status: 401 });
    await expect(RawClient.open(`ws://127.0.0.1:${server.port}/hubs/secure?access_token=nope`)).rejects.toMatchObject({ status: 401 });
    const client = buildClient(url);
    await expect(client.start()).rejects.toThrow(/401|Unauthorized/);
  });

  it("accepts the official client's bearer token and exposes user and userIdentifier", async () => {
    const server = await start();
    const client = await secureClient(server.url("/hubs/secure"), "token-alice");
    expect(await client.invoke("Whoami")).toEqual(["alice", "alice"]);
  });

  it("accepts the access_token query parameter browsers use for WebSockets", async () => {
    const server = await start();
    const response = await fetch(`${server.url("/hubs/secure")}/negotiate?negotiateVersion=1`, { method: "POST", headers: { Authorization: "Bearer token-alice" } });
    const { connectionToken } = (await response.json()) as { connectionToken: string };
    const raw = await RawClient.open(`ws://127.0.0.1:${server.port}/hubs/secure?id=${connectionToken}&access_token=token-alice`);
    raw.sendText(`{"protocol":"json","version":1}${RS}`);
    expect((await raw.nextFrame()).data.toString()).toBe(`{}${RS}`);
    raw.sendText(`{"type":1,"invocationId":"1","target":"Whoami","arguments":[]}${RS}`);
    expect((await raw.nextFrame()).data.toString()).toBe(`{"type":3,"invocationId":"1","result":["alice","alice"]}${RS}`);
  });

  it("T29 binds the connection token to the user who negotiated it: another user gets 403", async () => {
    const server = await start();
    const url = server.url("/hubs/secure");
    const response = await fetch(`${url}/negotiate?negotiateVersion=1`, { method: "POST", headers: { Authorization: "Bearer token-alice" } });
    const { connectionToken } = (await response.json()) as { connectionToken: string };
    const ws = `ws://127.0.0.1:${server.port}/hubs/secure?id=${connectionToken}`;
    await expect(RawClient.open(ws, { Authorization: "Bearer token-bob" })).rejects.toMatchObject({ status: 403 });
    // The same user with another token of theirs is the same principal: accepted.
    const raw = await RawClient.open(ws, { Authorization: "Bearer token-alice-2" });
    raw.sendText(`{"protocol":"json","version":1}${RS}`);
    expect((await raw.nextFrame()).data.toString()).toBe(`{}${RS}`);
  });

  it("binds anonymous tokens too: an anonymous token presented by a signed-in user is refused", async () => {
    const server = await start();
    const { connectionToken } = await negotiate(server, "/hubs/open");
    await expect(RawClient.open(`ws://127.0.0.1:${server.port}/hubs/open?id=${connectionToken}`, { Authorization: "Bearer token-bob" })).rejects.toMatchObject({ status: 403 });
  });

  it("T25d never writes tokens to the logs", async () => {
    const server = await startServer([SecureHub, OpenHub], { authenticate, policies, modules: [LoggingModule] });
    const client = await secureClient(server.url("/hubs/secure"), "token-root");
    await client.invoke("Whoami");
    await fetch(`${server.url("/hubs/secure")}/negotiate?negotiateVersion=1`, { method: "POST", headers: { Authorization: "Bearer token-invalid-SECRET" } });
    await RawClient.open(`ws://127.0.0.1:${server.port}/hubs/secure?access_token=SECRET-QUERY`).catch(() => undefined);
    const { connectionToken } = await negotiate(server, "/hubs/open");
    await client.stop();
    await settle(50);
    const logs = server.logger.text();
    expect(server.logger.entries.length).toBeGreaterThan(2);
    for (const secret of ["token-root", "SECRET", connectionToken]) expect(logs).not.toContain(secret);
  });
});

describe("authentication expiry", () => {
  /** The token is the `exp` claim itself (seconds since the epoch). */
  const expiring = (request: AuthenticationRequest): Principal | null => (request.token === undefined ? null : { sub: "alice", exp: Number(request.token) });
  const inSeconds = (ms: number) => String((Date.now() + ms) / 1000);

  it("T25e closes a connection when its authentication expires, with a clear error, when closeOnAuthenticationExpiration is on", async () => {
    const server = await startServer([OpenHub], { authenticate: expiring, policies, closeOnAuthenticationExpiration: true, keepAliveInterval: 200 });
    const url = server.url("/hubs/open");
    const client = await secureClient(url, inSeconds(400));
    const closed = new Promise<Error | undefined>((resolve) => client.onclose(resolve));
    expect(await client.invoke("Whoami")).toBe("alice");
    const error = await closed;
    expect(error?.message).toContain("Connection closed with an error. The authentication expired.");
    const expired = await fetch(`${url}/negotiate?negotiateVersion=1`, { method: "POST", headers: { Authorization: `Bearer ${inSeconds(-1000)}` } });
    expect(expired.status).toBe(401);
    const lasting = await secureClient(url, inSeconds(3_600_000));
    await settle(300);
    expect(await lasting.invoke("Whoami")).toBe("alice");
  });

  it("leaves connections open past their exp claim when closeOnAuthenticationExpiration is off (the default)", async () => {
    const server = await startServer([OpenHub], { authenticate: expiring, policies, keepAliveInterval: 200 });
    const client = await secureClient(server.url("/hubs/open"), inSeconds(-1000));
    await settle(300);
    expect(await client.invoke("Whoami")).toBe("alice");
  });
});

describe("authorization", () => {
  it("T25a applies hub policies to every method except @AllowAnonymous ones, and keeps the connection open", async () => {
    const server = await start();
    const bob = await secureClient(server.url("/hubs/secure"), "token-bob"); // authenticated, not a member
    await expect(bob.invoke("Whoami")).rejects.toThrow(/^Failed to invoke 'Whoami' because user is unauthorized$/);
    expect(await bob.invoke("Public")).toBe("public");
    const alice = await secureClient(server.url("/hubs/secure"), "token-alice");
    expect(await alice.invoke("Whoami")).toEqual(["alice", "alice"]);
    await expect(alice.invoke("AdminOnly")).rejects.toThrow("Failed to invoke 'AdminOnly' because user is unauthorized");
    const root = await secureClient(server.url("/hubs/secure"), "token-root");
    expect(await root.invoke("AdminOnly")).toBe("admin");
  });

  it("requires a signed-in user for method-level @Authorize on an open hub", async () => {
    const server = await start();
    const anonymous = await connectClient(server.url("/hubs/open"));
    expect(await anonymous.invoke("Whoami")).toBeNull();
    await expect(anonymous.invoke("SignedInOnly")).rejects.toThrow("Failed to invoke 'SignedInOnly' because user is unauthorized");
    const bob = await secureClient(server.url("/hubs/open"), "token-bob");
    expect(await bob.invoke("SignedInOnly")).toBe("signed in");
    await expect(bob.invoke("AdminOnly")).rejects.toThrow("because user is unauthorized");
    expect(await anonymous.invoke("Whoami")).toBeNull(); // still connected
  });

  it("refuses at startup a hub naming a policy the server does not have", () => {
    @Hub("/hubs/unknown-policy")
    class UnknownPolicyHub extends Hub {
      @Authorize("nope")
      Method(): void {}
    }
    const server = new SwitchboardServer({ protocols: [new JsonHubProtocol()], policies });
    expect(() => server.addHub(UnknownPolicyHub)).toThrow(HubDefinitionError);
    void server.close();
  });

  it("treats a throwing policy as a refusal", async () => {
    const server = await startServer([OpenHub], {
      authenticate,
      policies: {
        admin: () => {
          throw new Error("policy store down");
        },
      },
    });
    const root = await secureClient(server.url("/hubs/open"), "token-root");
    await expect(root.invoke("AdminOnly")).rejects.toThrow("because user is unauthorized");
    expect(await root.invoke("Whoami")).toBe("root");
  });
});

describe("users", () => {
  it("clients.user(id) reaches every connection of that user and no one else", async () => {
    const server = await start();
    const url = server.url("/hubs/secure");
    const aliceOne = await secureClient(url, "token-alice");
    const aliceTwo = await secureClient(url, "token-alice-2");
    const root = await secureClient(url, "token-root");
    const [one, two, other] = [record(aliceOne, "Note"), record(aliceTwo, "Note"), record(root, "Note")];
    await root.invoke("NotifyUser", "alice", "for alice");
    await until(() => one.length === 1 && two.length === 1);
    await settle(50);
    expect(one).toEqual([["for alice"]]);
    expect(two).toEqual([["for alice"]]);
    expect(other).toEqual([]);
  });
});
