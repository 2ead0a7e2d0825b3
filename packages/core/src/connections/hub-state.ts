import type { DependencyContainer } from "tsyringe";
import type { CloseMessage, InvocationMessage, StreamInvocationMessage } from "../contracts/hub-messages.js";
import type { HubCallerContext } from "../hubs/hub-caller-context.js";
import type { ConnectionStreams } from "./connection-streams.js";

/**
 * What a connection keeps once hub code has run for it (an invocation, a lifecycle hook, a stream
 * or a client result): its DI scope, the objects handed to hubs, and the invocation queue. Made on
 * first use and then kept: a connection that only idles has one empty field on `HubConnection`
 * instead of nine (72 bytes), and one that is used pays one object header (24 bytes) more.
 * Nothing of a send reads it.
 */
export class HubState {
  /** The connection's DI scope. */
  container: DependencyContainer | undefined = undefined;
  /** `context.items`. */
  items: Map<unknown, unknown> | undefined = undefined;
  /** The `clients` of the connection's hub instances. */
  callerClients: unknown = undefined;
  callerContext: HubCallerContext | undefined = undefined;
  /** Streams and client results. */
  streams: ConnectionStreams | undefined = undefined;
  /** Invocations started and not finished yet. */
  running = 0;
  /** Invocations waiting for a slot (`maxParallelInvocations`). */
  waiting: (InvocationMessage | StreamInvocationMessage)[] | undefined = undefined;
  /** A protocol fault whose Close waits until the invocations read before the bad record have started. */
  pendingFault: { readonly message: CloseMessage; readonly error: Error | undefined } | undefined = undefined;
  onInvocationDone: (() => void) | undefined = undefined;
}
