import { metrics, type Attributes, type Counter, type Histogram, type MeterProvider, type UpDownCounter } from "@opentelemetry/api";
import type { ConnectionEndStatus, InvocationOutcome, ServerObserver, ServerStats } from "@switchboard/core";

/** Options of {@link SwitchboardMetrics}. */
export interface SwitchboardMetricsOptions {
  /** Where the meters come from. Default: the global one (`metrics.getMeterProvider()`). */
  readonly meterProvider?: MeterProvider;
}

/** The meter ASP.NET Core records its SignalR connection metrics on; dashboards built for it work as is. */
export const ASPNETCORE_METER = "Microsoft.AspNetCore.Http.Connections";
/** The meter of Switchboard's own instruments. */
export const SWITCHBOARD_METER = "@switchboard/metrics";

/** Bucket boundaries in seconds that the semantic conventions give for `signalr.server.connection.duration`. */
const CONNECTION_DURATION_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];
const INVOCATION_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const FANOUT_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];

/**
 * OpenTelemetry metrics for a Switchboard server: give it as the server's `observer` option.
 *
 * On meter `Microsoft.AspNetCore.Http.Connections`, with ASP.NET Core's names and attributes:
 * `signalr.server.active_connections` (by `signalr.transport`) and
 * `signalr.server.connection.duration` (seconds, by `signalr.transport` and
 * `signalr.connection.status`: `normal_closure`, `timeout`, `app_shutdown`, and `slow_consumer`).
 *
 * On meter `@switchboard/metrics`, by `switchboard.hub` (and `switchboard.protocol`,
 * `switchboard.hub.method`, `switchboard.invocation.outcome` where said):
 * `switchboard.groups` and `switchboard.connection.buffered_bytes` (gauges, read at collection),
 * `switchboard.messages.sent` and `switchboard.messages.delivered` (by protocol),
 * `switchboard.fanout.size` (recipients per send), `switchboard.connection.slow_consumer_closes`,
 * `switchboard.invocation.duration` (seconds, by method and outcome).
 *
 * ```ts
 * new SwitchboardServer({ protocols, hubs, observer: new SwitchboardMetrics() });
 * ```
 */
export class SwitchboardMetrics implements ServerObserver {
  readonly #activeConnections: UpDownCounter;
  readonly #connectionDuration: Histogram;
  readonly #sent: Counter;
  readonly #delivered: Counter;
  readonly #fanout: Histogram;
  readonly #slowConsumers: Counter;
  readonly #invocationDuration: Histogram;
  readonly #provider: MeterProvider;
  /** Attribute sets are built once per distinct key, not per record. */
  readonly #attributes = new Map<string, Attributes>();
  #attached = false;

  constructor(options: SwitchboardMetricsOptions = {}) {
    this.#provider = options.meterProvider ?? metrics.getMeterProvider();
    const connections = this.#provider.getMeter(ASPNETCORE_METER);
    this.#activeConnections = connections.createUpDownCounter("signalr.server.active_connections", {
      unit: "{connection}",
      description: "Number of connections that are currently active on the server.",
    });
    this.#connectionDuration = connections.createHistogram("signalr.server.connection.duration", {
      unit: "s",
      description: "The duration of connections on the server.",
      advice: { explicitBucketBoundaries: CONNECTION_DURATION_BUCKETS },
    });
    const own = this.#provider.getMeter(SWITCHBOARD_METER);
    this.#sent = own.createCounter("switchboard.messages.sent", { unit: "{message}", description: "Hub sends encoded in a protocol (one per send and protocol with recipients)." });
    this.#delivered = own.createCounter("switchboard.messages.delivered", { unit: "{message}", description: "Messages queued to recipients by hub sends." });
    this.#fanout = own.createHistogram("switchboard.fanout.size", {
      unit: "{connection}",
      description: "Recipients of one hub send.",
      advice: { explicitBucketBoundaries: FANOUT_BUCKETS },
    });
    this.#slowConsumers = own.createCounter("switchboard.connection.slow_consumer_closes", { unit: "{connection}", description: "Connections closed for not reading their messages (maxBufferedBytes)." });
    this.#invocationDuration = own.createHistogram("switchboard.invocation.duration", {
      unit: "s",
      description: "Duration of hub method calls.",
      advice: { explicitBucketBoundaries: INVOCATION_DURATION_BUCKETS },
    });
  }

  attached(stats: () => ServerStats): void {
    if (this.#attached) throw new Error("A SwitchboardMetrics instance observes one server; create one per server.");
    this.#attached = true;
    const own = this.#provider.getMeter(SWITCHBOARD_METER);
    const groups = own.createObservableGauge("switchboard.groups", { unit: "{group}", description: "Groups with at least one member." });
    const buffered = own.createObservableGauge("switchboard.connection.buffered_bytes", { unit: "By", description: "Bytes queued or written to connections but not yet on the network." });
    own.addBatchObservableCallback(
      (result) => {
        for (const [hub, counts] of Object.entries(stats().hubs)) {
          const attributes = this.#attrs(`hub|${hub}`, () => ({ "switchboard.hub": hub }));
          result.observe(groups, counts.groups, attributes);
          result.observe(buffered, counts.bufferedBytes, attributes);
        }
      },
      [groups, buffered],
    );
  }

  connectionStarted(_hub: string, transport: string): void {
    this.#activeConnections.add(1, this.#attrs(`t|${transport}`, () => ({ "signalr.transport": transport })));
  }

  connectionEnded(hub: string, transport: string, status: ConnectionEndStatus, durationSeconds: number): void {
    this.#activeConnections.add(-1, this.#attrs(`t|${transport}`, () => ({ "signalr.transport": transport })));
    this.#connectionDuration.record(durationSeconds, this.#attrs(`ts|${transport}|${status}`, () => ({ "signalr.transport": transport, "signalr.connection.status": status })));
    if (status === "slow_consumer") this.#slowConsumers.add(1, this.#attrs(`hub|${hub}`, () => ({ "switchboard.hub": hub })));
  }

  messageSent(hub: string, protocols: readonly string[], deliveries: readonly number[]): void {
    let total = 0;
    for (let i = 0; i < deliveries.length; i++) {
      const count = deliveries[i]!;
      if (count === 0) continue;
      total += count;
      const attributes = this.#attrs(`hp|${hub}|${protocols[i]}`, () => ({ "switchboard.hub": hub, "switchboard.protocol": protocols[i]! }));
      this.#sent.add(1, attributes);
      this.#delivered.add(count, attributes);
    }
    this.#fanout.record(total, this.#attrs(`hub|${hub}`, () => ({ "switchboard.hub": hub })));
  }

  invocationCompleted(hub: string, method: string, outcome: InvocationOutcome, durationSeconds: number): void {
    // `method` is always a method the hub declares (never a client's string): cardinality is bounded.
    const attributes = this.#attrs(`hmo|${hub}|${method}|${outcome}`, () => ({ "switchboard.hub": hub, "switchboard.hub.method": method, "switchboard.invocation.outcome": outcome }));
    this.#invocationDuration.record(durationSeconds, attributes);
  }

  #attrs(key: string, make: () => Attributes): Attributes {
    let attributes = this.#attributes.get(key);
    if (attributes === undefined) this.#attributes.set(key, (attributes = Object.freeze(make())));
    return attributes;
  }
}
