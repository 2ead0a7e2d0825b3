/**
 * Why a connection ended, as ASP.NET Core's `signalr.connection.status` names it (plus
 * `slow_consumer`, a custom value the convention allows: closed for not reading its messages).
 */
export type ConnectionEndStatus = "normal_closure" | "timeout" | "app_shutdown" | "slow_consumer";

/** How a hub method call ended. */
export type InvocationOutcome = "completed" | "hub_error" | "failed" | "binding_failed" | "unauthorized";

/** Counts of one hub, from {@link ServerStats}. */
export interface HubStats {
  readonly path: string;
  /** Live connections: handshaking, connected, or waiting in a stateful-reconnect window. */
  readonly connections: number;
  readonly groups: number;
  /** Bytes queued or written but not yet on the network, summed over the hub's connections. */
  readonly bufferedBytes: number;
}

/** A snapshot of a server, for health endpoints and gauges. Costs one pass over the connections. */
export interface ServerStats {
  readonly connections: number;
  readonly groups: number;
  readonly bufferedBytes: number;
  /** By hub class name. */
  readonly hubs: Readonly<Record<string, HubStats>>;
}

/**
 * Told what a server does, for metrics (`@switchboard/metrics` implements it for OpenTelemetry).
 * Given as the server's `observer` option; without one the server makes none of these calls and
 * the send path does not count deliveries. Every member is optional and must not throw.
 */
export interface ServerObserver {
  /** Once, when given to a server: `stats` reads it on demand (for observable gauges). */
  attached?(stats: () => ServerStats): void;
  /** A connection started on `transport` (`web_sockets`, `server_sent_events`, `long_polling`). */
  connectionStarted?(hub: string, transport: string): void;
  connectionEnded?(hub: string, transport: string, status: ConnectionEndStatus, durationSeconds: number): void;
  /**
   * One hub send (not a Completion) went out: `deliveries[i]` recipients got it in `protocols[i]`.
   * The array is the send's own: read it now, do not keep it.
   */
  messageSent?(hub: string, protocols: readonly string[], deliveries: readonly number[]): void;
  /** A call of a method the hub has (unknown names are never reported: clients choose them). */
  invocationCompleted?(hub: string, method: string, outcome: InvocationOutcome, durationSeconds: number): void;
}
