import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { consoleLogger, Hub, HubError, HubMethod, LoggingModule } from "@switchboard/core";
import { closeAll, connectClient, startServer, until } from "../../../test-support/harness.js";

afterEach(closeAll);

@Hub("/hubs/logged")
class LoggedHub extends Hub {
  Fail(): void {
    throw new Error("boom");
  }
  Refuse(): void {
    throw new HubError("no");
  }
  @HubMethod()
  Add(first: number, second: number): number {
    return first + second;
  }
}

describe("logging", () => {
  it.each([
    ["without modules", []],
    ["with LoggingModule", [LoggingModule]],
  ])("a failed hub method is logged once at error, with its error (%s)", async (_name, modules) => {
    const server = await startServer([LoggedHub], { modules });
    const client = await connectClient(server.url("/hubs/logged"));
    await expect(client.invoke("Fail")).rejects.toThrow("An unexpected error occurred invoking 'Fail' on the server.");
    await expect(client.invoke("Refuse")).rejects.toThrow("no");
    const errors = server.logger.entries.filter((entry) => entry.level === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toBe("Hub method failed.");
    expect((errors[0]!.fields as { err: Error }).err.message).toBe("boom");
  });

  it.each([
    [["x", 1], "first", "parameter 'first' (#1) expects a number, got string"],
    [[1, null], "second", "parameter 'second' (#2) expects a number, got null"],
    [[1], undefined, "'Add' takes 2 arguments, the client sent 1"],
  ])("a binding failure for %j is logged at debug naming the parameter and why, never the value", async (args, parameter, reason) => {
    const server = await startServer([LoggedHub]);
    const client = await connectClient(server.url("/hubs/logged"));
    await expect(client.invoke("Add", ...args)).rejects.toThrow("Failed to invoke 'Add' due to an error on the server.");
    await until(() => server.logger.entries.some((entry) => entry.level === "debug" && entry.message.startsWith("Hub method arguments")));
    const entry = server.logger.entries.find((e) => e.message.startsWith("Hub method arguments"))!;
    expect(entry.level).toBe("debug");
    expect(entry.fields).toMatchObject({ hub: "LoggedHub", target: "Add", parameter, reason });
    expect(entry.message).toBe(`Hub method arguments do not match its parameters: ${reason}.`);
    expect(server.logger.text()).not.toContain('"x"');
  });

  it("consoleLogger(level) filters by level and writes an error's stack only at error level", () => {
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => (lines.push(chunk), true)) as typeof process.stderr.write;
    try {
      const logger = consoleLogger("info");
      const error = Object.assign(new Error("outer", { cause: new Error("inner") }), { code: "E_TEST" });
      logger.debug({ err: error }, "hidden");
      logger.info({ err: error }, "shown without stack");
      logger.error({ err: error }, "shown with stack");
      consoleLogger("silent").error({}, "never");
    } finally {
      process.stderr.write = write;
    }
    const entries = lines.map((line) => JSON.parse(line) as { level: string; msg: string; err: { stack?: string; code?: string; cause?: { message: string; stack?: string } } });
    expect(entries.map((entry) => entry.msg)).toEqual(["shown without stack", "shown with stack"]);
    expect(entries[0]!.err.stack).toBeUndefined();
    expect(entries[0]!.err).toMatchObject({ code: "E_TEST", cause: { message: "inner" } });
    expect(entries[1]!.err.stack).toContain("Error: outer");
    expect(entries[1]!.err.cause!.stack).toContain("Error: inner");
  });
});

describe("a server observer that throws", () => {
  it("is logged and never breaks connects, sends, calls or disconnects", async () => {
    const boom = (): never => {
      throw new Error("observer bug");
    };
    const observer = { connectionStarted: boom, connectionEnded: boom, messageSent: boom, invocationCompleted: boom };
    const server = await startServer([LoggedHub], { observer });
    const client = await connectClient(server.url("/hubs/logged"));
    expect(await client.invoke("Add", 1, 2)).toBe(3);
    await server.server.hubContext(LoggedHub).clients.all.send("Note", "x");
    await client.stop();
    await until(() => server.server.stats().connections === 0);
    const messages = server.logger.entries.filter((entry) => entry.message === "The server observer threw.");
    expect(messages.length).toBe(4);
    expect(messages.every((entry) => entry.level === "error")).toBe(true);
  });
});
