/**
 * How big and how long each part of the benchmark runs. `full` is `npm run bench`, `quick` is
 * `npm run bench -- --quick` (under 60 s), `tiny` is the configuration the harness test uses to
 * prove the whole pipeline works (a few seconds; its numbers mean nothing).
 */
export type ProfileName = "full" | "quick" | "tiny";

export interface Profile {
  readonly name: ProfileName;
  /** Timed repetitions of every scenario (at least 5); the median is reported. */
  readonly repetitions: number;
  readonly hotPath: {
    /** Group sizes of the in-process hot path. */
    readonly sizes: readonly number[];
    /** Application payload sizes in bytes (one string argument). */
    readonly payloads: readonly number[];
    /** mitata's minimum measuring time per benchmark, in milliseconds. */
    readonly minTimeMs: number;
  };
  readonly pipeline: { readonly members: number; readonly minTimeMs: number };
  readonly churn: {
    readonly connections: number;
    readonly groups: number;
    /** Join+leave pairs per timed batch. */
    readonly pairsPerBatch: number;
    /** Groups the disconnecting connections are in. */
    readonly disconnectGroups: number;
    /** Connections disconnected per timed batch. */
    readonly disconnectsPerBatch: number;
    readonly minTimeMs: number;
  };
  readonly e2e: {
    /** Group sizes over loopback; sizes the fd limit cannot hold are skipped with a note. */
    readonly sizes: readonly number[];
    /** Messages sent per event-loop turn. */
    readonly bursts: readonly number[];
    /** Group sizes of the Switchboard MessagePack variant (empty: none). */
    readonly messagePackSizes: readonly number[];
    /** Group sizes of the Switchboard JSON variant with stateful reconnect negotiated (empty: none). */
    readonly statefulSizes: readonly number[];
    readonly payloadBytes: number;
    /** Timed repetitions per system and scenario (at least 5; the systems take turns). */
    readonly repetitions: number;
    /** Length of one timed repetition, and of the untimed warm-up before the first. */
    readonly repetitionMs: number;
    /**
     * Rounds a timed repetition runs at least (past `repetitionMs`), unless it has run
     * `maxRepetitionMs`: with 10,000 members a round takes 100-200 ms, and 600 ms held 3-5 rounds.
     */
    readonly minRounds: number;
    readonly maxRepetitionMs: number;
    /**
     * Switchboard JSON, every size and burst: rounds alternating between its group send and the
     * floor's loop on the same sockets, for this long and at least this many rounds (capped at
     * `maxRepetitionMs` × 10).
     */
    readonly sameProcessMs: number;
    readonly sameProcessMinRounds: number;
    readonly warmupMs: number;
    /** Upper bound on rounds per repetition (closed loop: one round = one send or burst to the group). */
    readonly maxRounds: number;
  };
  readonly memory: {
    /** Idle connections at the two measuring points; the per-connection figure is the slope. */
    readonly low: number;
    readonly high: number;
  };
  /** Two servers of each system on one Redis (`--only scaleout`); payload as `e2e.payloadBytes`. */
  readonly scaleOut: {
    /** Members of the one group, spread evenly over the two servers. */
    readonly members: number;
    /** Messages sent per event-loop turn. */
    readonly bursts: readonly number[];
    /** Timed repetitions per system and burst (at least 5; the systems take turns). */
    readonly repetitions: number;
    readonly repetitionMs: number;
    readonly warmupMs: number;
    readonly maxRounds: number;
  };
  /**
   * `--only instructions`: the end-to-end servers of Switchboard (JSON) and the floor under
   * callgrind; user-space instructions counted over `rounds` after `warmupRounds` (V8 has
   * optimized the send path by then).
   */
  readonly instructions: {
    readonly members: number;
    readonly bursts: readonly number[];
    readonly warmupRounds: number;
    readonly rounds: number;
  };
}

const FULL: Profile = {
  name: "full",
  repetitions: 5,
  hotPath: { sizes: [1, 10, 100, 1_000, 10_000], payloads: [64, 1024], minTimeMs: 400 },
  pipeline: { members: 1_000, minTimeMs: 400 },
  churn: { connections: 100_000, groups: 10_000, pairsPerBatch: 10_000, disconnectGroups: 100, disconnectsPerBatch: 200, minTimeMs: 400 },
  e2e: { sizes: [100, 1_000, 10_000], bursts: [1, 10], messagePackSizes: [1_000], statefulSizes: [1_000], payloadBytes: 64, repetitions: 9, repetitionMs: 600, minRounds: 12, maxRepetitionMs: 2_000, sameProcessMs: 6_000, sameProcessMinRounds: 100, warmupMs: 1_000, maxRounds: 100_000 },
  memory: { low: 1_000, high: 10_000 },
  scaleOut: { members: 1_000, bursts: [1, 10], repetitions: 9, repetitionMs: 600, warmupMs: 1_000, maxRounds: 100_000 },
  instructions: { members: 1_000, bursts: [1, 10], warmupRounds: 400, rounds: 100 },
};

const QUICK: Profile = {
  name: "quick",
  repetitions: 5,
  hotPath: { sizes: [1, 100, 1_000], payloads: [64, 1024], minTimeMs: 40 },
  pipeline: { members: 1_000, minTimeMs: 30 },
  churn: { connections: 10_000, groups: 1_000, pairsPerBatch: 5_000, disconnectGroups: 100, disconnectsPerBatch: 100, minTimeMs: 40 },
  e2e: { sizes: [100, 1_000], bursts: [1, 10], messagePackSizes: [1_000], statefulSizes: [1_000], payloadBytes: 64, repetitions: 5, repetitionMs: 150, minRounds: 1, maxRepetitionMs: 150, sameProcessMs: 1_000, sameProcessMinRounds: 10, warmupMs: 150, maxRounds: 20_000 },
  memory: { low: 200, high: 1_000 },
  // Longer repetitions than e2e: three processes share the servers' core, and Redis's share is small.
  scaleOut: { members: 200, bursts: [1, 10], repetitions: 5, repetitionMs: 300, warmupMs: 300, maxRounds: 20_000 },
  instructions: { members: 200, bursts: [1, 10], warmupRounds: 200, rounds: 50 },
};

const TINY: Profile = {
  name: "tiny",
  repetitions: 5,
  hotPath: { sizes: [1, 10], payloads: [64], minTimeMs: 5 },
  pipeline: { members: 10, minTimeMs: 5 },
  churn: { connections: 500, groups: 50, pairsPerBatch: 200, disconnectGroups: 10, disconnectsPerBatch: 10, minTimeMs: 5 },
  e2e: { sizes: [10], bursts: [1, 10], messagePackSizes: [10], statefulSizes: [10], payloadBytes: 64, repetitions: 5, repetitionMs: 20, minRounds: 1, maxRepetitionMs: 20, sameProcessMs: 40, sameProcessMinRounds: 2, warmupMs: 20, maxRounds: 1_000 },
  memory: { low: 5, high: 20 },
  scaleOut: { members: 10, bursts: [1, 10], repetitions: 5, repetitionMs: 20, warmupMs: 20, maxRounds: 1_000 },
  instructions: { members: 10, bursts: [1], warmupRounds: 10, rounds: 5 },
};

export const PROFILES: Readonly<Record<ProfileName, Profile>> = { full: FULL, quick: QUICK, tiny: TINY };
