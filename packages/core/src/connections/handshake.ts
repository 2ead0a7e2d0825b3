import { InvalidMessageError, MessageTooLargeError } from "../contracts/errors.js";

const RECORD_SEPARATOR = 0x1e;
const HANDSHAKE_OK = new Uint8Array([0x7b, 0x7d, RECORD_SEPARATOR]); // {}<RS>
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A parsed handshake request (§3): JSON text ending with 0x1E, also for binary protocols. */
export interface HandshakeRequest {
  readonly protocol: string;
  readonly version: number;
}

/**
 * Accumulates the handshake request across transport messages (a client may split it) and hands
 * back the bytes that followed its separator, which are ordinary hub messages.
 */
export class HandshakeReader {
  #chunks: Uint8Array[] = [];
  #length = 0;
  readonly #maxSize: number;

  constructor(maxSize: number) {
    this.#maxSize = maxSize;
  }

  /**
   * Returns the request and the rest of `data` once the separator has arrived, or `undefined`
   * while it has not. Throws {@link MessageTooLargeError} past `maxSize` and
   * {@link InvalidMessageError} for anything that is not a handshake request.
   */
  read(data: Uint8Array): { request: HandshakeRequest; rest: Uint8Array } | undefined {
    const end = data.indexOf(RECORD_SEPARATOR);
    if (end === -1) {
      if (this.#length + data.length > this.#maxSize) throw new MessageTooLargeError(this.#maxSize);
      this.#chunks.push(data);
      this.#length += data.length;
      return undefined;
    }
    if (this.#length + end > this.#maxSize) throw new MessageTooLargeError(this.#maxSize);
    this.#chunks.push(data.subarray(0, end));
    const body = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    this.#chunks = [];
    this.#length = 0;
    return { request: parseHandshakeRequest(body), rest: data.subarray(end + 1) };
  }
}

function parseHandshakeRequest(body: Uint8Array): HandshakeRequest {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(body));
  } catch (cause) {
    throw new InvalidMessageError("Error reading the handshake request.", { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidMessageError("The handshake request is not a JSON object.");
  }
  const { protocol, version } = value as Record<string, unknown>;
  if (typeof protocol !== "string" || typeof version !== "number" || !Number.isInteger(version)) {
    throw new InvalidMessageError("The handshake request needs a string 'protocol' and an integer 'version'.");
  }
  return { protocol, version };
}

/** `{}` + RS: the handshake succeeded. */
export function handshakeSuccess(): Uint8Array {
  return HANDSHAKE_OK;
}

/** `{"error":"…"}` + RS: the handshake failed; the connection is closed right after. */
export function handshakeError(message: string): Uint8Array {
  return encoder.encode(`${JSON.stringify({ error: message })}\u001e`);
}
