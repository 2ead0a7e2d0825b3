import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The core's folders, lowest layer first. A folder may import (types included) only from the
// folders before it, so there is no cycle between folders and the hot path (fan-out) cannot
// reach up into connections, the pipeline or the server.
const LAYERS = ["contracts", "fan-out", "hubs", "connections", "pipeline", "server"] as const;

const src = resolve(dirname(fileURLToPath(import.meta.url)), "../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith(".ts") ? [path] : [];
  });
}

/** Every module specifier of `import … from`, `import type … from`, `export … from` and bare `import "…"`. */
function specifiers(text: string): string[] {
  return [...text.matchAll(/^\s*(?:import|export)\b[^;]*?(?:from\s+)?"([^"]+)";/gm)].map((match) => match[1]!);
}

function folderOf(path: string): string {
  return relative(src, path).split("/")[0]!;
}

const files = sourceFiles(src);

describe("core layout", () => {
  it("keeps every source file in one of the layer folders (index.ts aside)", () => {
    const stray = files.filter((file) => relative(src, file) !== "index.ts" && !(LAYERS as readonly string[]).includes(folderOf(file)));
    expect(stray).toEqual([]);
  });

  it("has no import from a later layer, type-only imports included", () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      const rank = LAYERS.indexOf(from as (typeof LAYERS)[number]);
      if (rank === -1) continue;
      for (const specifier of specifiers(readFileSync(file, "utf8"))) {
        if (!specifier.startsWith(".")) continue;
        const to = folderOf(resolve(dirname(file), specifier));
        if (LAYERS.indexOf(to as (typeof LAYERS)[number]) > rank) violations.push(`${relative(src, file)} → ${specifier}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("knows no codec and no transport library", () => {
    const banned = /^(ws|@msgpack\/|@switchboard\/(?!core))/;
    const found = files.flatMap((file) => specifiers(readFileSync(file, "utf8")).filter((s) => banned.test(s)).map((s) => `${relative(src, file)} → ${s}`));
    expect(found).toEqual([]);
  });

  // The contracts plugin authors implement stay small (style.md: about six members at most).
  it.each([
    ["contracts/transport.ts", "TransportConnection"],
    ["contracts/hub-protocol.ts", "HubProtocol"],
    ["contracts/hub-lifetime-manager.ts", "HubLifetimeManager"],
    ["contracts/backplane.ts", "Backplane"],
    ["contracts/membership-store.ts", "MembershipStore"],
    ["contracts/backplane.ts", "GroupDirectory"],
    ["contracts/used-token-store.ts", "UsedTokenStore"],
    ["pipeline/hub-module.ts", "HubModule"],
    ["pipeline/hub-module.ts", "RejoinModule"],
  ])("%s: %s has six members or fewer", (file, name) => {
    const text = readFileSync(join(src, file), "utf8");
    const start = text.search(new RegExp(`export interface ${name}\\b[^{]*\\{`));
    expect(start).toBeGreaterThanOrEqual(0);
    const body = text.slice(text.indexOf("{", start) + 1, text.indexOf("\n}", start));
    // Members start at two spaces of indentation; comments and continuation lines do not count.
    const members = body.split("\n").filter((line) => /^ {2}(readonly )?[A-Za-z_$][\w$]*\??[(:<]/.test(line));
    expect(members.length).toBeGreaterThan(0);
    expect(members.length).toBeLessThanOrEqual(6);
  });
});
