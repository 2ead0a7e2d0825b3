import type { AuthorizationPolicy } from "../hubs/authorization.js";
import { DependencyResolutionError, GroupNameError, HubError } from "../contracts/errors.js";
import type { Hub } from "../hubs/hub.js";
import { bindingProblem, callArguments, type HubDescriptor, type HubMethodDescriptor } from "../hubs/hub-descriptor.js";
import type { UploadStream } from "../hubs/upload-stream.js";
import type { HubConnection } from "../connections/hub-connection.js";
import { MessageType, type CompletionMessage, type InvocationMessage, type StreamInvocationMessage } from "../contracts/hub-messages.js";
import { pumpStream, toAsyncIterable } from "./stream-pump.js";
import type { GroupManager } from "../fan-out/group-manager.js";
import type { Logger } from "../contracts/logger.js";
import type { InvocationOutcome } from "../contracts/server-observer.js";
import type { InvocationContext } from "../pipeline/hub-module.js";
import type { HubPipeline } from "../pipeline/hub-pipeline.js";
import { SerializedRecord } from "../contracts/transport.js";

/** The texts clients see (ASP.NET's, §7.3), so existing client code and tests keep working. */
export const ErrorText = {
  unexpected: (target: string) => `An unexpected error occurred invoking '${target}' on the server.`,
  unknownMethod: (target: string) => `Unknown hub method '${target}'`,
  binding: (target: string) => `Failed to invoke '${target}' due to an error on the server.`,
  streamingMismatch: (target: string) => `The client attempted to invoke the non-streaming '${target}' method with a streaming invocation.`,
  nonStreamingMismatch: (target: string) => `The client attempted to invoke the streaming '${target}' method with a non-streaming invocation.`,
  streamFailed: "An error occurred on the server while streaming results.",
  idInUse: (id: string) => `Invocation ID '${id}' is already in use.`,
  unauthorized: (target: string) => `Failed to invoke '${target}' because user is unauthorized`,
} as const;

/** What the dispatcher needs from its hub endpoint. */
export interface DispatchContext {
  readonly descriptor: HubDescriptor;
  readonly groupManager: GroupManager;
  readonly logger: Logger;
  readonly detailedErrors: boolean;
  readonly pipeline: HubPipeline;
  readonly options: { readonly policies: ReadonlyMap<string, AuthorizationPolicy> };
}

/** Thrown inside the pipeline when the (possibly rewritten) arguments do not fit the method. */
class BindingError extends Error {
  readonly parameter: string | undefined;
  constructor(method: HubMethodDescriptor, message: InvocationMessage | StreamInvocationMessage, args: unknown) {
    const streams = message.streamIds?.length ?? 0;
    const problem = !Array.isArray(args)
      ? { parameter: undefined, reason: "a module set ctx.arguments to something that is not an array" }
      : (bindingProblem(method, args) ??
        { parameter: undefined, reason: streams > 0 ? `the client sent ${streams} stream${streams === 1 ? "" : "s"}, which do not fit the method's UploadStream parameters` : "the arguments do not fit" });
    super(problem.reason);
    this.parameter = problem.parameter;
  }
}

/** Builds the error text a client sees for an exception thrown by a hub method. */
export function invocationErrorText(target: string, error: unknown, detailed: boolean): string {
  // A bad group name usually comes from the caller's own arguments; the fixed text is safe to show.
  if (error instanceof HubError || error instanceof GroupNameError) return error.message;
  if (!detailed) return ErrorText.unexpected(target);
  const detail = error instanceof Error ? `${error.name}: ${error.message}` : safeString(error);
  return `${ErrorText.unexpected(target)} ${detail}`;
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return typeof value;
  }
}

/** Creates a hub instance for one call and gives it the connection's context, clients and groups. */
export function activateHub(context: DispatchContext, connection: HubConnection): Hub<any> {
  let hub: Hub<any>;
  try {
    hub = connection.container.resolve(context.descriptor.hubClass);
  } catch (cause) {
    throw new DependencyResolutionError(`Hub '${context.descriptor.name}' could not be constructed: ${(cause as Error)?.message ?? cause}`, { cause });
  }
  hub.context = connection.callerContext;
  hub.clients = connection.callerClients as Hub<any>["clients"];
  hub.groups = context.groupManager;
  return hub;
}

export function complete(connection: HubConnection, context: DispatchContext, message: CompletionMessage): void {
  const protocol = connection.protocol!;
  let bytes: Uint8Array;
  try {
    bytes = protocol.write(message);
  } catch (error) {
    // The result could not be encoded (e.g. a BigInt in JSON): the caller still gets an answer.
    context.logger.error({ connectionId: connection.connectionId, err: error }, "A hub method result could not be encoded.");
    bytes = protocol.write({ type: MessageType.Completion, invocationId: message.invocationId, error: "The hub method result could not be serialized." });
  }
  connection.enqueue(new SerializedRecord(bytes));
}

/** Answers a failed invocation with an error Completion, unless it was sent without an id. */
function fail(context: DispatchContext, connection: HubConnection, id: string | undefined, error: string): void {
  if (id !== undefined && id !== "") complete(connection, context, { type: MessageType.Completion, invocationId: id, error });
}

/** True when the connection's user passes every `@Authorize` requirement of `method`. */
async function authorized(context: DispatchContext, connection: HubConnection, method: HubMethodDescriptor, args: readonly unknown[]): Promise<boolean> {
  const user = connection.user;
  if (user === null) return false;
  for (const requirement of method.authorization) {
    for (const name of requirement.policies) {
      const policy = context.options.policies.get(name);
      if (policy === undefined) return false;
      try {
        const policyContext = { hubName: context.descriptor.name, methodName: method.name, arguments: args, connection: connection.callerContext };
        if ((await policy(user, policyContext)) !== true) return false;
      } catch (error) {
        context.logger.error({ connectionId: connection.connectionId, policy: name, err: error }, "An authorization policy threw; the call is refused.");
        return false;
      }
    }
  }
  return true;
}

const NO_STREAMS: readonly UploadStream[] = Object.freeze([]);
/** The signal of invocations that cannot be cancelled by the client (it still aborts at disconnect). */
function connectionSignal(connection: HubConnection): AbortSignal {
  return connection.streams.closed;
}

/**
 * Runs one client invocation: finds the method (case-insensitively, through a `Map`), checks
 * authorization and arguments, resolves a hub instance from the connection's DI scope, runs the
 * `invoke` modules around the call (skipped entirely when there are none), and answers with exactly
 * one Completion when the client sent an invocation id (and nothing otherwise).
 */
export async function dispatchInvocation(context: DispatchContext, connection: HubConnection, message: InvocationMessage | StreamInvocationMessage): Promise<InvocationOutcome | undefined> {
  const id = message.invocationId;
  const target = message.target;
  const method = context.descriptor.methods.get(target.toLowerCase());
  if (method === undefined) {
    context.logger.debug({ connectionId: connection.connectionId, target }, "Unknown hub method.");
    fail(context, connection, id, ErrorText.unknownMethod(target));
    return undefined; // not reported: the name is the client's choice
  }
  const streaming = message.type === MessageType.StreamInvocation;
  // A stream is registered before anything awaits, so its CancelInvocation can never miss it.
  const streamId = streaming ? message.invocationId! : "";
  let controller: AbortController | undefined;
  if (streaming) {
    try {
      controller = connection.streams.startStream(streamId);
    } catch (error) {
      fail(context, connection, id, (error as Error).message);
      return "binding_failed";
    }
    if (controller === undefined) {
      fail(context, connection, id, ErrorText.idInUse(streamId));
      return "binding_failed";
    }
  }
  const streamIds = message.streamIds;
  let streams = NO_STREAMS;
  if (streamIds !== undefined && streamIds.length > 0) {
    try {
      streams = connection.streams.openUploads(streamIds);
    } catch (error) {
      if (controller !== undefined) connection.streams.endStream(streamId, controller);
      context.logger.debug({ connectionId: connection.connectionId, target, err: error }, "Upload streams refused.");
      fail(context, connection, id, (error as Error).message);
      return "binding_failed";
    }
  }
  let handedOff = false;
  try {
    const outcome = await invokeMethod(context, connection, message, method, streams, controller);
    handedOff = outcome === "streaming";
    return outcome === "streaming" ? "completed" : outcome;
  } finally {
    if (!handedOff) {
      if (controller !== undefined) connection.streams.endStream(streamId, controller);
      if (streamIds !== undefined && streams.length > 0) connection.streams.releaseUploads(streamIds, streams);
    }
  }
}

/** Calls the method and answers it; "streaming" when a stream now runs on its own (see stream-pump.ts). */
async function invokeMethod(
  context: DispatchContext,
  connection: HubConnection,
  message: InvocationMessage | StreamInvocationMessage,
  method: HubMethodDescriptor,
  streams: readonly UploadStream[],
  controller: AbortController | undefined,
): Promise<InvocationOutcome | "streaming"> {
  const id = message.invocationId;
  const target = message.target;
  const signal = controller?.signal ?? connectionSignal(connection);
  if (method.authorization.length > 0 && !(await authorized(context, connection, method, message.arguments))) {
    context.logger.debug({ connectionId: connection.connectionId, target }, "Unauthorized hub method call.");
    fail(context, connection, id, ErrorText.unauthorized(target));
    return "unauthorized";
  }
  let result: unknown;
  try {
    if (!context.pipeline.hasInvoke) {
      const call = callArguments(method, message.arguments, streams, signal);
      if (call === undefined) throw new BindingError(method, message, message.arguments);
      result = method.invoke.apply(activateHub(context, connection), call);
      if (result !== null && typeof result === "object" && typeof (result as PromiseLike<unknown>).then === "function") result = await result;
    } else {
      const invocation: InvocationContext = {
        hubName: context.descriptor.name,
        hub: activateHub(context, connection),
        methodName: method.name,
        arguments: [...message.arguments],
        invocationId: id,
        connection: connection.callerContext,
        services: connection.container,
      };
      result = await context.pipeline.invoke(invocation, (ctx) => {
        const call = Array.isArray(ctx.arguments) ? callArguments(method, ctx.arguments, streams, signal) : undefined;
        if (call === undefined) throw new BindingError(method, message, ctx.arguments);
        return method.invoke.apply(ctx.hub, call);
      });
    }
  } catch (error) {
    if (error instanceof BindingError) {
      // Debug only: a client can send anything. The reason names types, never argument values.
      context.logger.debug({ connectionId: connection.connectionId, hub: context.descriptor.name, target, parameter: error.parameter, reason: error.message }, `Hub method arguments do not match its parameters: ${error.message}.`);
      fail(context, connection, id, ErrorText.binding(target));
      return "binding_failed";
    }
    // The caller is answered first: whatever the logger or an onError module does cannot stop it.
    fail(context, connection, id, invocationErrorText(target, error, context.detailedErrors));
    // Expected, client-facing outcomes are not server errors: keep them out of the error log.
    const level = error instanceof HubError || error instanceof GroupNameError ? "debug" : "error";
    context.logger[level]({ connectionId: connection.connectionId, hub: context.descriptor.name, target, err: error }, "Hub method failed.");
    context.pipeline.reportError({ hubName: context.descriptor.name, stage: "invoke", connection: connection.callerContext, methodName: method.name }, error);
    return level === "debug" ? "hub_error" : "failed";
  }
  const iterable = toAsyncIterable(result);
  if (controller !== undefined) {
    if (iterable === undefined) {
      fail(context, connection, id, ErrorText.streamingMismatch(target));
      return "binding_failed";
    }
    pumpStream(context, connection, message.invocationId!, iterable, controller, message.streamIds, streams);
    return "streaming";
  }
  if (iterable !== undefined) {
    // A stream asked for with invoke/send: never started (a generator runs nothing before its first next()).
    void closeIterable(iterable);
    fail(context, connection, id, ErrorText.nonStreamingMismatch(target));
    return "binding_failed";
  }
  if (id !== undefined && id !== "") {
    complete(connection, context, { type: MessageType.Completion, invocationId: id, hasResult: true, result: result === undefined ? null : result });
  }
  return "completed";
}

async function closeIterable(iterable: AsyncIterable<unknown>): Promise<void> {
  try {
    await iterable[Symbol.asyncIterator]().return?.();
  } catch {
    // The stream's own cleanup failed; nothing was sent from it.
  }
}
