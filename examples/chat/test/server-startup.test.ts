import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const entry = fileURLToPath(new URL("../dist/server.js", import.meta.url));
const blockers: Server[] = [];
afterEach(async () => {
  await Promise.all(blockers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** Runs the demo's entry point until it exits (bounded: it must exit on its own). */
function runDemo(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the demo did not exit; stdout: ${stdout} stderr: ${stderr}`));
    }, 15_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("the demo's startup mistakes are one clear line, not a stack", () => {
  it.each(["abc", "-1", "70000", "5000x", ""])("PORT=%j", async (port) => {
    const { code, stderr } = await runDemo({ PORT: port, HOST: "127.0.0.1" });
    expect(code).toBe(1);
    expect(stderr).toBe(`chat demo: PORT must be a port number from 0 to 65535, got '${port}'.\n`);
  });

  it("a busy port names the port and how to pick another", async () => {
    const blocker = createServer();
    blockers.push(blocker);
    const port = await new Promise<number>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as { port: number }).port)));
    const { code, stderr } = await runDemo({ PORT: String(port), HOST: "127.0.0.1" });
    expect(code).toBe(1);
    expect(stderr).toBe(`chat demo: port ${port} on 127.0.0.1 is already in use: stop what is using it, or pick another port (PORT=${port + 1} npm start).\n`);
  });
});
