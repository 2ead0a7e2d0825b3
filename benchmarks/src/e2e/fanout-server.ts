/** What the end-to-end server process needs from each system under test. */
export interface FanoutServer {
  /** The 127.0.0.1 port it listens on. */
  readonly port: number;
  /**
   * Sends `burst` messages to every member of `group`, all in this event-loop turn. Each message
   * is `("m", stamp, payload)`; only the last one's stamp carries the `L` flag.
   */
  send(group: string, burst: number, round: number, payload: string): void;
  groupSize(group: string): number;
  connectionCount(): number;
  close(): Promise<void>;
}
