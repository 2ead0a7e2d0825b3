/**
 * A loopback TCP proxy for reconnect tests: it forwards bytes both ways, can cut every connection
 * at once (a network blip: both ends see the TCP connection drop), can hold new connections
 * (accepted, but not forwarded until `release()`), and can drop what the server sends.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

function ignore(): void {}

export class CutProxy {
  readonly #server: Server;
  readonly #target: number;
  readonly #pairs = new Set<readonly [Socket, Socket]>();
  #held: Socket[] | undefined;
  /** While true, bytes from the server are discarded instead of reaching the client. */
  dropFromServer = false;
  /** Connections accepted so far. */
  accepted = 0;
  port = 0;

  private constructor(target: number) {
    this.#target = target;
    this.#server = createServer((socket) => this.#onConnection(socket));
  }

  /** Starts a proxy on a free 127.0.0.1 port that forwards to `127.0.0.1:targetPort`. */
  static async start(targetPort: number): Promise<CutProxy> {
    const proxy = new CutProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, "127.0.0.1", resolve));
    proxy.port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Connections accepted while holding that wait for `release()`. */
  get heldCount(): number {
    return this.#held?.length ?? 0;
  }

  #onConnection(client: Socket): void {
    client.on("error", ignore);
    this.accepted++;
    if (this.#held !== undefined) {
      client.pause();
      this.#held.push(client);
      return;
    }
    this.#forward(client);
  }

  #forward(client: Socket): void {
    if (client.destroyed) return;
    const upstream = connect(this.#target, "127.0.0.1");
    upstream.on("error", ignore);
    const pair = [client, upstream] as const;
    this.#pairs.add(pair);
    client.on("data", (data: Buffer) => upstream.write(data));
    upstream.on("data", (data: Buffer) => {
      if (!this.dropFromServer) client.write(data);
    });
    const end = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.resume();
  }

  /** Drops every forwarded connection at once. */
  cut(): void {
    for (const [client, upstream] of [...this.#pairs]) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** New connections are accepted but not forwarded until `release()`. */
  hold(): void {
    this.#held ??= [];
  }

  /** Forwards the held connections (their buffered bytes included) and stops holding. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const client of held) this.#forward(client);
  }

  async close(): Promise<void> {
    for (const client of this.#held ?? []) client.destroy();
    this.#held = undefined;
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
