import { setImmediate as nextTurn } from "node:timers/promises";
import { measure } from "mitata";
import { SwitchboardServer, type HubModule, type ServerOptions } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import type { Profile } from "../profiles.js";
import { median, round, type ScenarioResult } from "../results.js";
import { payloadOf } from "../e2e/stamp.js";
import { QUIET_LOGGER } from "../bench-hub.js";
import { mitataOptions, timeGroupSend, turnCost, warmUp, type Progress } from "./hot-path.js";
import { SinkServer, type SinkConnection } from "./sink-server.js";

/**
 * The cost of the pipeline: no module versus one pass-through module (it calls `next()` and
 * nothing else) on the two paths a module can sit on: a group send (`outgoing`, once per send)
 * and a hub method invocation (`invoke`). Kept apart from the hot path so it can be skipped where
 * the server has no `modules` option.
 */

const PASS_THROUGH: HubModule = {
  invoke: (_context, next) => next(),
  outgoing: (_context, next) => next(),
};

const NOOP_INVOCATION = Buffer.from('{"type":1,"invocationId":"1","target":"Noop","arguments":[]}\u001e');
/** Turns an invocation may take to answer before the benchmark gives up. */
const MAX_TURNS = 1_000;

/** Whether this build of `SwitchboardServer` accepts and keeps a `modules` option. */
export function supportsModules(): boolean {
  const probe = new SwitchboardServer({ protocols: [new JsonHubProtocol()], logger: QUIET_LOGGER, modules: [] } as ServerOptions);
  void probe.close();
  return "modules" in probe.options;
}

async function timeInvocation(caller: SinkConnection, baseline: number, minTimeMs: number, samples: number): Promise<number> {
  const call = async (): Promise<void> => {
    const before = caller.sink.records;
    caller.handle.receive(NOOP_INVOCATION);
    for (let turn = 0; caller.sink.records === before; turn++) {
      if (turn === MAX_TURNS) throw new Error("Noop was not answered");
      await nextTurn();
    }
  };
  await warmUp(call, minTimeMs / 2);
  const stats = await measure(call, mitataOptions(minTimeMs, samples));
  return Math.max(1, stats.p50 - baseline);
}

interface Variant {
  readonly modules: number;
  readonly server: SinkServer;
  readonly connections: SinkConnection[];
  readonly sendNs: number[];
  readonly invocationNs: number[];
}

/**
 * Both variants are built first and then timed alternately, a short mitata run each, so neither
 * profits from running second (warmer JIT, settled heap); the first alternation is a warm-up.
 */
export async function pipelineCost(profile: Profile, progress: Progress, notes: string[]): Promise<ScenarioResult[]> {
  if (!supportsModules()) {
    const note = "pipeline: skipped, SwitchboardServer has no `modules` option in this build";
    progress(note);
    notes.push(note);
    return [];
  }
  const { members, minTimeMs } = profile.pipeline;
  const payload = payloadOf(64);
  const variants: Variant[] = [];
  try {
    for (const modules of [0, 1]) {
      const server = new SinkServer({ modules: modules === 0 ? [] : [PASS_THROUGH] } as Partial<ServerOptions>);
      const variant: Variant = { modules, server, connections: [], sendNs: [], invocationNs: [] };
      variants.push(variant);
      for (let i = 0; i < members; i++) {
        const connection = await server.open("json");
        await server.context.groups.add(connection.id, "g");
        variant.connections.push(connection);
      }
    }
    const baseline = await turnCost(minTimeMs, profile.repetitions);
    for (let repetition = 0; repetition <= profile.repetitions; repetition++) {
      progress(`pipeline: no module vs one pass-through module, alternation ${repetition}/${profile.repetitions}`);
      for (const variant of variants) {
        const send = await timeGroupSend(variant.server, ["g"], variant.connections, payload, baseline, minTimeMs, 5);
        const invocation = await timeInvocation(variant.connections[0]!, baseline, minTimeMs, 5);
        if (repetition === 0) continue;
        variant.sendNs.push(send.nsPerSend);
        variant.invocationNs.push(invocation);
      }
    }
  } finally {
    for (const variant of variants) await variant.server.close();
  }
  return variants.flatMap((variant): ScenarioResult[] => {
    const send = median(variant.sendNs);
    return [
      { name: "pipeline group send", system: "switchboard", protocol: "json", members, payloadBytes: 64, modules: variant.modules, nsPerRecipient: round(send / members), opsPerSecond: round(1e9 / Math.max(1, send)), repetitions: variant.sendNs.length },
      { name: "pipeline invocation", system: "switchboard", protocol: "json", modules: variant.modules, opsPerSecond: round(1e9 / median(variant.invocationNs)), repetitions: variant.invocationNs.length },
    ];
  });
}
