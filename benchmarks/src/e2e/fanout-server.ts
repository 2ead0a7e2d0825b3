/** What the end-to-end server process needs from each system under test. */
export interface FanoutServer {
  /** The 127.0.0.1 port it listens on. */
  readonly port: number;
  /**
   * Sends `burst` messages to every member of `group`, all in this event-loop turn. Each message
   * is `("m", stamp, payload)`; only the last one's stamp carries the `L` flag.
   */
  send(group: string, burst: number, round: number, payload: string): void;
  /**
   * Switchboard only: the same messages written as the raw floor writes them (one frame for the
   * burst, `socket.write` to each member's socket, at the end of the turn), to the same sockets,
   * visiting the members in the group's order. Rounds alternate between this and `send` to
   * compare the two per delivery inside one process (see server-main's `paths-*` commands).
   */
  sendFloor?(group: string, burst: number, round: number, payload: string): void;
  /** Members of `group` connected to this server. */
  groupSize(group: string): number;
  connectionCount(): number;
  /** Scaled out over Redis: what crossed Redis; undefined for a single server. */
  readonly scaleOut?: ScaleOutProbe;
  close(): Promise<void>;
}

/** A scaled-out server's view of its traffic through Redis. */
export interface ScaleOutProbe {
  /** Sends of other servers that Redis brought to this one and its adapter/backplane handed on (its own echoes excluded). */
  received(): number;
  /** Settles once Redis has confirmed this server's subscriptions so far, so the next send reaches it. */
  subscribed(): Promise<void>;
}
