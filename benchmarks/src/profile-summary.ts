/**
 * `node benchmarks/dist/profile-summary.js <file.cpuprofile> [rows]`: the functions with the most
 * self time in a V8 CPU profile (as written by `npm run bench -- --cpu-prof` or
 * `node --cpu-prof`), idle time left out of the percentages.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount: number;
}

const [path, rowsArgument] = process.argv.slice(2);
if (path === undefined) {
  process.stderr.write("usage: node benchmarks/dist/profile-summary.js <file.cpuprofile> [rows]\n");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(path, "utf8")) as { nodes: ProfileNode[] };
const self = new Map<string, number>();
let busy = 0;
for (const node of profile.nodes) {
  const { functionName, url, lineNumber } = node.callFrame;
  if (functionName === "(idle)") continue;
  const where = url.replace(/^file:\/\/.*?\/(packages|benchmarks|node_modules)\//, "$1/");
  const key = `${functionName || "(anonymous)"}  ${where}${where ? `:${lineNumber + 1}` : ""}`;
  self.set(key, (self.get(key) ?? 0) + node.hitCount);
  busy += node.hitCount;
}
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(rowsArgument ?? 30));
process.stdout.write(`${busy} busy samples\n`);
for (const [key, hits] of rows) process.stdout.write(`${((100 * hits) / busy).toFixed(1).padStart(5)}%  ${key}\n`);
