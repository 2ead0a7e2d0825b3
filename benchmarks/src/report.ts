import { INSTRUCTIONS, SAME_PROCESS, type ScenarioResult, type SystemName } from "./results.js";

/**
 * Turns the scenarios into tables (aligned text for stdout, Markdown for RESULTS.md): end-to-end
 * throughput with the Switchboard/Socket.IO and Switchboard/raw ratios, latency, memory, the
 * in-process figures, and the targets of the issue, met or missed.
 */

export interface Table {
  readonly title: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

export function formatCount(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)} k`;
  if (abs >= 100) return value.toFixed(0);
  return value.toPrecision(3);
}

function ms(value: number | undefined): string {
  return value === undefined ? "—" : value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0 || !Number.isFinite(a / b)) return "—";
  return `${(a / b).toFixed(2)}×`;
}

function bytes(value: number | undefined): string {
  if (value === undefined) return "—";
  return Math.abs(value) >= 10_240 ? `${(value / 1024).toFixed(1)} KiB` : `${value.toFixed(0)} B`;
}

const E2E_PREFIX = "e2e fan-out";
/** The protocol label of the Switchboard JSON runs with stateful reconnect negotiated. */
const STATEFUL = "json+stateful";

function find(scenarios: readonly ScenarioResult[], system: SystemName, match: (s: ScenarioResult) => boolean): ScenarioResult | undefined {
  return scenarios.find((s) => s.system === system && match(s));
}

/** The e2e rows: Switchboard's protocols against the other systems at the same size and burst. */
function e2eRows(scenarios: readonly ScenarioResult[]): { label: string; sb: ScenarioResult; sio?: ScenarioResult; raw?: ScenarioResult }[] {
  const rows = [];
  const sbRuns = scenarios.filter((s) => s.system === "switchboard" && s.name.startsWith(E2E_PREFIX));
  for (const sb of sbRuns) {
    const same = (s: ScenarioResult): boolean => s.name === sb.name && s.members === sb.members && s.burst === sb.burst && s.payloadBytes === sb.payloadBytes;
    rows.push({ label: `${sb.protocol}, ${sb.members} members, burst ${sb.burst}`, sb, sio: find(scenarios, "socket.io", same), raw: find(scenarios, "raw-ws", same) });
  }
  return rows;
}

const SCALE_OUT_PREFIX = "scale-out fan-out";

/** The scale-out rows: Switchboard against Socket.IO with the same group, servers and burst. */
function scaleOutRows(scenarios: readonly ScenarioResult[]): { label: string; sb?: ScenarioResult; sio?: ScenarioResult }[] {
  const runs = scenarios.filter((s) => s.name.startsWith(SCALE_OUT_PREFIX));
  const keys = [...new Map(runs.map((s) => [`${s.members}/${s.burst}/${s.servers}`, s])).values()];
  return keys.map((key) => {
    const same = (s: ScenarioResult): boolean => s.name === key.name && s.members === key.members && s.burst === key.burst && s.servers === key.servers;
    return { label: `${key.members} members on ${key.servers} servers, burst ${key.burst}`, sb: find(runs, "switchboard", same), sio: find(runs, "socket.io", same) };
  });
}

function perDelivery(s: ScenarioResult | undefined): string {
  if (s === undefined) return "—";
  return `${(s.userMicrosPerDelivery! + s.systemMicrosPerDelivery!).toFixed(3)} + ${s.redisMicrosPerDelivery!.toFixed(3)}`;
}

function count(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "—" : value.toFixed(2);
}

function scaleOutTables(scenarios: readonly ScenarioResult[]): Table[] {
  const rows = scaleOutRows(scenarios);
  if (rows.length === 0) return [];
  const both = rows.flatMap(({ label, sb, sio }) => [
    ...(sb === undefined ? [] : [{ label, system: "Switchboard", s: sb }]),
    ...(sio === undefined ? [] : [{ label, system: "Socket.IO", s: sio }]),
  ]);
  return [
    {
      title: "Scale-out over Redis: deliveries per CPU-second of both servers + redis-server (median)",
      header: ["scenario", "Switchboard", "Socket.IO + redis-adapter", "SB/Socket.IO", "SB CPU µs per delivery, servers + Redis", "Socket.IO CPU µs per delivery, servers + Redis"],
      rows: rows.map(({ label, sb, sio }) => [label, formatCount(sb?.deliveriesPerCpuSecond), formatCount(sio?.deliveriesPerCpuSecond), ratio(sb?.deliveriesPerCpuSecond, sio?.deliveriesPerCpuSecond), perDelivery(sb), perDelivery(sio)]),
    },
    {
      title: "Scale-out over Redis: wall-clock deliveries per second and send → receive latency in ms, p50 / p99 / last recipient (median)",
      header: ["scenario", "Switchboard", "Socket.IO", "SB latency", "Socket.IO latency"],
      rows: rows.map(({ label, sb, sio }) => [label, formatCount(sb?.deliveriesPerSecond), formatCount(sio?.deliveriesPerSecond), ...[sb, sio].map((s) => (s === undefined ? "—" : `${ms(s.p50Ms)} / ${ms(s.p99Ms)} / ${ms(s.lastRecipientMs)}`))]),
    },
    {
      title: "Scale-out over Redis: cross-server traffic per message sent to the group (median)",
      header: ["scenario", "system", "Redis PUBLISH + SPUBLISH", "received from Redis: sending server", "received from Redis: other server"],
      rows: both.map(({ label, system, s }) => [label, system, count(s.redisPublishesPerMessage), count(s.sendingServerReceivedPerMessage), count(s.otherServerReceivedPerMessage)]),
    },
  ];
}

export function buildTables(scenarios: readonly ScenarioResult[]): Table[] {
  const tables: Table[] = [];
  const e2e = e2eRows(scenarios);
  if (e2e.length > 0) {
    tables.push({
      title: "End to end: deliveries per server CPU-second (median)",
      header: ["scenario", "Switchboard", "Socket.IO", "raw ws", "SB/Socket.IO", "SB/raw"],
      rows: e2e.map(({ label, sb, sio, raw }) => [label, formatCount(sb.deliveriesPerCpuSecond), formatCount(sio?.deliveriesPerCpuSecond), formatCount(raw?.deliveriesPerCpuSecond), ratio(sb.deliveriesPerCpuSecond, sio?.deliveriesPerCpuSecond), ratio(sb.deliveriesPerCpuSecond, raw?.deliveriesPerCpuSecond)]),
    });
    tables.push({
      title: "End to end: server CPU µs per delivery, user + system (median)",
      header: ["scenario", "Switchboard", "Socket.IO", "raw ws"],
      rows: e2e.map(({ label, sb, sio, raw }) => [label, ...[sb, sio, raw].map((s) => (s === undefined ? "—" : `${s.userMicrosPerDelivery!.toFixed(3)} + ${s.systemMicrosPerDelivery!.toFixed(3)}`))]),
    });
    tables.push({
      title: "End to end: wall-clock deliveries per second, closed loop (median)",
      header: ["scenario", "Switchboard", "Socket.IO", "raw ws", "SB/Socket.IO", "SB/raw"],
      rows: e2e.map(({ label, sb, sio, raw }) => [label, formatCount(sb.deliveriesPerSecond), formatCount(sio?.deliveriesPerSecond), formatCount(raw?.deliveriesPerSecond), ratio(sb.deliveriesPerSecond, sio?.deliveriesPerSecond), ratio(sb.deliveriesPerSecond, raw?.deliveriesPerSecond)]),
    });
    tables.push({
      title: "End to end: send → receive latency in ms, p50 / p99 / last recipient (median)",
      header: ["scenario", "Switchboard", "Socket.IO", "raw ws"],
      rows: e2e.map(({ label, sb, sio, raw }) => [label, ...[sb, sio, raw].map((s) => (s === undefined ? "—" : `${ms(s.p50Ms)} / ${ms(s.p99Ms)} / ${ms(s.lastRecipientMs)}`))]),
    });
  }
  const sameProcess = scenarios.filter((s) => s.name === SAME_PROCESS);
  if (sameProcess.length > 0) {
    tables.push({
      title: "Same process, same sockets: Switchboard's group send against the floor's loop, rounds in turn (CPU of the send and its turn)",
      header: ["scenario", "Switchboard", "floor's loop", "SB/floor", "rounds each"],
      rows: sameProcess.map((s) => [`${s.protocol}, ${s.members} members, burst ${s.burst}`, formatCount(s.deliveriesPerCpuSecond), formatCount(s.floorDeliveriesPerCpuSecond), ratio(s.deliveriesPerCpuSecond, s.floorDeliveriesPerCpuSecond), String(s.rounds)]),
    });
  }
  const counted = scenarios.filter((s) => s.name === INSTRUCTIONS && s.system === "switchboard");
  if (counted.length > 0) {
    const floorOf = (sb: ScenarioResult): ScenarioResult | undefined => find(scenarios, "raw-ws", (s) => s.name === INSTRUCTIONS && s.members === sb.members && s.burst === sb.burst);
    const both = (s: ScenarioResult | undefined): string => (s === undefined ? "—" : `${s.instructionsPerDelivery} / ${s.allThreadsInstructionsPerDelivery}`);
    tables.push({
      title: "User-space instructions per delivery, callgrind, main thread / all threads (fewer is better); the floor's loop run in Switchboard's server, main thread",
      header: ["scenario", "Switchboard", "raw ws", "SB/raw, main thread", "floor's loop in SB's server", "SB/that loop", "that loop/raw", "rounds counted"],
      rows: counted.map((sb) => {
        const floor = floorOf(sb);
        const raw = floor?.instructionsPerDelivery;
        const loop = sb.floorLoopInstructionsPerDelivery;
        return [`${sb.protocol}, ${sb.members} members, burst ${sb.burst}`, both(sb), both(floor), ratio(sb.instructionsPerDelivery, raw), loop === undefined ? "—" : String(loop), ratio(sb.instructionsPerDelivery, loop), ratio(loop, raw), String(sb.rounds)];
      }),
    });
  }
  tables.push(...scaleOutTables(scenarios));
  const memory = scenarios.filter((s) => s.name === "idle memory per connection");
  if (memory.length > 0) {
    const sio = memory.find((s) => s.system === "socket.io");
    tables.push({
      title: "Idle memory per connection (slope between the two counts, after GC)",
      header: ["system", "connections", "heap", "RSS", "heap vs Socket.IO", "RSS vs Socket.IO"],
      rows: memory.map((s) => [s.system, `${s.fromConnections} → ${s.members}`, bytes(s.heapBytesPerConnection), bytes(s.rssBytesPerConnection), ratio(s.heapBytesPerConnection, sio?.heapBytesPerConnection), ratio(s.rssBytesPerConnection, sio?.rssBytesPerConnection)]),
    });
  }
  const hot = scenarios.filter((s) => s.name === "in-process group send");
  if (hot.length > 0) {
    tables.push({
      title: "In-process hot path (sink transports): group send + flush, CPU time",
      header: ["protocol", "payload", "members", "ns per recipient", "deliveries per CPU-s", "serializations per send"],
      rows: hot.map((s) => [s.protocol, `${s.payloadBytes} B`, String(s.members), s.nsPerRecipient!.toFixed(1), formatCount(s.deliveriesPerCpuSecond), String(s.serializationsPerSend)]),
    });
  }
  const pipeline = scenarios.filter((s) => s.name.startsWith("pipeline"));
  if (pipeline.length > 0) {
    tables.push({
      title: "Pipeline: no module vs one pass-through module (in-process)",
      header: ["scenario", "modules", "ops/s", "ns per recipient"],
      rows: pipeline.map((s) => [s.members === undefined ? s.name : `${s.name}, ${s.members} members`, String(s.modules), formatCount(s.opsPerSecond), s.nsPerRecipient === undefined ? "—" : s.nsPerRecipient.toFixed(1)]),
    });
  }
  const churn = scenarios.filter((s) => s.name === "group churn join+leave" || s.name === "disconnect in many groups");
  if (churn.length > 0) {
    const sbChurn = churn.find((s) => s.system === "switchboard" && s.name === "group churn join+leave");
    const label = (s: ScenarioResult): string =>
      s.name === "disconnect in many groups" ? "switchboard: disconnect (connection in N groups)" : `${s.system === "raw-ws" ? "floor (plain Map/Set)" : s.system === "socket.io" ? "socket.io adapter" : "switchboard"}: join+leave pairs`;
    tables.push({
      title: "Group churn (in-process)",
      header: ["scenario", "connections", "groups", "ops/s", "µs per op", "SB vs this"],
      rows: churn.map((s) => [label(s), String(s.members), String(s.groups), formatCount(s.opsPerSecond), (1e6 / s.opsPerSecond!).toFixed(3), s.name === "group churn join+leave" && s.system !== "switchboard" ? ratio(sbChurn?.opsPerSecond, s.opsPerSecond) : "—"]),
    });
  }
  return tables;
}

export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

/** The targets against this run (`undefined` when the run did not measure it). */
export function checkTargets(scenarios: readonly ScenarioResult[]): TargetCheck[] {
  const e2e = (system: SystemName, burst: number): ScenarioResult | undefined =>
    scenarios.find((s) => s.system === system && s.name.startsWith(E2E_PREFIX) && s.members === 1000 && s.burst === burst && s.protocol !== "messagepack" && s.protocol !== STATEFUL);
  const stateful = (burst: number): ScenarioResult | undefined =>
    scenarios.find((s) => s.system === "switchboard" && s.name.startsWith(E2E_PREFIX) && s.members === 1000 && s.burst === burst && s.protocol === STATEFUL);
  const checks: TargetCheck[] = [];
  const versus = (target: string, a: number | undefined, b: number | undefined, goal: number, higherIsBetter = true): void => {
    if (a === undefined || b === undefined) return void checks.push({ target, measured: "not measured", met: undefined });
    const value = a / b;
    checks.push({ target, measured: `${value.toFixed(2)}×`, met: higherIsBetter ? value >= goal : value <= goal });
  };
  versus("single message to 1,000 members: ≥ 1.5× Socket.IO deliveries per CPU-second", e2e("switchboard", 1)?.deliveriesPerCpuSecond, e2e("socket.io", 1)?.deliveriesPerCpuSecond, 1.5);
  versus("single message to 1,000 members: ≥ 0.9× the raw floor", e2e("switchboard", 1)?.deliveriesPerCpuSecond, e2e("raw-ws", 1)?.deliveriesPerCpuSecond, 0.9);
  versus("bursts of 10 to 1,000 members: ≥ 5× Socket.IO", e2e("switchboard", 10)?.deliveriesPerCpuSecond, e2e("socket.io", 10)?.deliveriesPerCpuSecond, 5);
  versus("stateful reconnect on, single messages to 1,000 members: ≥ 0.9× off (≤ 10 % fewer deliveries per CPU-second)", stateful(1)?.deliveriesPerCpuSecond, e2e("switchboard", 1)?.deliveriesPerCpuSecond, 0.9);
  versus("stateful reconnect on, bursts of 10 to 1,000 members: ≥ 0.9× off", stateful(10)?.deliveriesPerCpuSecond, e2e("switchboard", 10)?.deliveriesPerCpuSecond, 0.9);
  const memory = (system: SystemName): ScenarioResult | undefined => scenarios.find((s) => s.system === system && s.name === "idle memory per connection");
  versus("idle heap per connection ≤ 0.5× Socket.IO's", memory("switchboard")?.heapBytesPerConnection, memory("socket.io")?.heapBytesPerConnection, 0.5, false);
  versus("idle RSS per connection ≤ 0.5× Socket.IO's", memory("switchboard")?.rssBytesPerConnection, memory("socket.io")?.rssBytesPerConnection, 0.5, false);
  const scaleOut = (system: SystemName): ScenarioResult | undefined => scenarios.find((s) => s.system === system && s.name.startsWith(SCALE_OUT_PREFIX) && s.burst === 1);
  const members = scaleOut("switchboard")?.members;
  versus(`scale-out, 2 servers + Redis, one message to ${members ?? "N"} members: ≥ 1.5× Socket.IO + redis-adapter deliveries per CPU-second (servers + Redis)`, scaleOut("switchboard")?.deliveriesPerCpuSecond, scaleOut("socket.io")?.deliveriesPerCpuSecond, 1.5);
  const publishes = scenarios.filter((s) => s.system === "switchboard" && s.name.startsWith(SCALE_OUT_PREFIX)).map((s) => s.redisPublishesPerMessage!);
  const publishesTarget = "scale-out: Redis publishes per message sent to a group == 1 (Switchboard, every burst size)";
  if (publishes.length === 0) checks.push({ target: publishesTarget, measured: "not measured", met: undefined });
  else checks.push({ target: publishesTarget, measured: publishes.map((value) => value.toFixed(2)).join(", "), met: publishes.every((value) => value === 1) });
  const churn = scenarios.find((s) => s.system === "switchboard" && s.name === "group churn join+leave");
  checks.push(churn === undefined ? { target: "join+leave ≥ 1 M pairs/s", measured: "not measured", met: undefined } : { target: "join+leave ≥ 1 M pairs/s", measured: `${formatCount(churn.opsPerSecond)} pairs/s`, met: churn.opsPerSecond! >= 1e6 });
  return checks;
}

export function targetsTable(checks: readonly TargetCheck[]): Table {
  return { title: "Targets (measured, never asserted by tests)", header: ["target", "measured", ""], rows: checks.map((c) => [c.target, c.measured, c.met === undefined ? "n/a" : c.met ? "met" : "MISSED"]) };
}

export function renderText(table: Table): string {
  const widths = table.header.map((cell, column) => Math.max(cell.length, ...table.rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ");
  return [table.title, line(table.header), widths.map((w) => "-".repeat(w)).join("  "), ...table.rows.map(line)].join("\n");
}

export function renderMarkdown(table: Table): string {
  const escape = (cell: string): string => cell.replaceAll("|", "\\|");
  const align = table.header.map((_, column) => (column === 0 ? ":--" : "--:"));
  return [`**${table.title}**`, "", `| ${table.header.map(escape).join(" | ")} |`, `| ${align.join(" | ")} |`, ...table.rows.map((row) => `| ${row.map(escape).join(" | ")} |`)].join("\n");
}
