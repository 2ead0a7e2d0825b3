/**
 * The in-process benchmark process (hot path, pipeline, churn), pinned to the server core and run
 * with `--expose-gc` so mitata can collect garbage between benchmarks. The runner sends `run`.
 */
import { emit, serveCommands } from "../ipc.js";
import { PROFILES, type ProfileName } from "../profiles.js";
import type { ScenarioResult } from "../results.js";
import { churn } from "./churn.js";
import { hotPath } from "./hot-path.js";
import { pipelineCost } from "./pipeline.js";

const progress = (text: string): void => emit("progress", text);

serveCommands({
  async run({ profile: name }: { profile: ProfileName }): Promise<{ scenarios: ScenarioResult[]; notes: string[] }> {
    const profile = PROFILES[name];
    const notes: string[] = [];
    const scenarios = [...(await hotPath(profile, progress)), ...(await pipelineCost(profile, progress, notes)), ...(await churn(profile, progress))];
    return { scenarios, notes };
  },
  close() {
    setImmediate(() => process.exit(0));
  },
});

emit("ready");
