import { MessageType } from "../contracts/hub-messages.js";
import { SerializedRecord } from "../contracts/transport.js";
import type { HubConnection } from "../connections/hub-connection.js";
import type { UploadStream } from "../hubs/upload-stream.js";
import { complete, ErrorText, type DispatchContext } from "./hub-dispatcher.js";

/** Items sent in one event-loop turn before the stream yields, so one stream never holds the loop. */
const ITEMS_PER_TURN = 64;
/** While a connection has more than this share of `maxBufferedBytes` unsent, its streams wait. */
const PAUSE_SHARE = 0.5;
/** How often a paused stream looks at the connection's buffer again (ms). */
const DRAIN_POLL = 10;

/** The async-iterable view of a hub method's result, or undefined when it is not a stream. */
export function toAsyncIterable(value: unknown): AsyncIterable<unknown> | undefined {
  if (value === null || typeof value !== "object") return undefined;
  // Async generators and web ReadableStreams (Node 20) are both async iterable.
  return typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function" ? (value as AsyncIterable<unknown>) : undefined;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, DRAIN_POLL));

/**
 * Sends a streaming method's items as StreamItem messages, then one Completion (§4.2): without a
 * result when it ends or is cancelled (the client ignores what follows its CancelInvocation), with
 * the generic stream error when it throws. It runs on its own, outside the connection's
 * invocation slots, as in ASP.NET. The source is pulled only while the connection drains: it
 * waits while more than half of `maxBufferedBytes` is unsent, and yields the event loop every
 * {@link ITEMS_PER_TURN} items. Cancellation (CancelInvocation or the end of the connection)
 * aborts `controller` and calls the iterator's `return()`, so a generator's `finally` runs.
 */
export function pumpStream(
  context: DispatchContext,
  connection: HubConnection,
  invocationId: string,
  iterable: AsyncIterable<unknown>,
  controller: AbortController,
  streamIds: readonly string[] | undefined,
  streams: readonly UploadStream[],
): void {
  const iterator = iterable[Symbol.asyncIterator]();
  const signal = controller.signal;
  const onAbort = (): void => {
    iterator.return?.().catch(() => undefined);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const limit = (connection.options.maxBufferedBytes * PAUSE_SHARE) | 0;
  void (async () => {
    let failure: unknown;
    let failed = false;
    try {
      let sent = 0;
      for (;;) {
        const step = await iterator.next();
        if (step.done === true || signal.aborted) break;
        const record = new SerializedRecord(connection.protocol!.write({ type: MessageType.StreamItem, invocationId, item: step.value }));
        connection.enqueue(record);
        if (++sent % ITEMS_PER_TURN === 0) await nextTurn();
        while (!signal.aborted && connection.pendingBytes > limit) await pause();
      }
    } catch (error) {
      failure = error;
      failed = !signal.aborted;
    } finally {
      signal.removeEventListener("abort", onAbort);
      connection.streams.endStream(invocationId, controller);
      if (streamIds !== undefined && streams.length > 0) connection.streams.releaseUploads(streamIds, streams);
    }
    if (!connection.connected) return;
    if (!failed) {
      complete(connection, context, { type: MessageType.Completion, invocationId });
      return;
    }
    const detail = context.detailedErrors && failure instanceof Error ? ` ${failure.name}: ${failure.message}` : "";
    complete(connection, context, { type: MessageType.Completion, invocationId, error: ErrorText.streamFailed + detail });
    context.logger.error({ connectionId: connection.connectionId, hub: context.descriptor.name, err: failure }, "A streaming hub method failed.");
    context.pipeline.reportError({ hubName: context.descriptor.name, stage: "invoke", connection: connection.callerContext }, failure);
  })();
}
