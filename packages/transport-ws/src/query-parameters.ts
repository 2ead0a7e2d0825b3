/** The query of a request URL: the first value of each name, percent-decoded as `URLSearchParams` does. */
export function parseQuery(search: string): Map<string, string> {
  const query = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(search)) if (!query.has(key)) query.set(key, value);
  return query;
}

/** URLs up to this many characters are parsed again on each `get` rather than kept parsed. */
const REPARSE_LIMIT = 256;

/** The part of `url` after its first `?` (empty without one). */
function searchOf(url: string): string {
  const mark = url.indexOf("?");
  return mark === -1 ? "" : url.slice(mark + 1);
}

/**
 * The query parameters of a connection's request, read-only, as {@link parseQuery} reads them,
 * kept as the request URL alone: a connection keeps its request for its whole life, and a parsed
 * `Map` would cost every connection about 200 bytes that hub code rarely reads. `get` and `has`
 * parse a short URL again on each call (the server reads a couple of names once, at connect); a
 * long one, and the first call that needs them all (`size`, iteration, `forEach`), make the map
 * and keep it.
 */
export class QueryParameters implements ReadonlyMap<string, string> {
  readonly #url: string;
  #parsed: Map<string, string> | undefined = undefined;

  // Static, not an instance method: a private instance method costs every instance a brand slot.
  static #all(query: QueryParameters): Map<string, string> {
    return (query.#parsed ??= parseQuery(searchOf(query.#url)));
  }

  /** `url`: the request target (`/path?a=1&b=2`), as `IncomingMessage.url` gives it. */
  constructor(url: string) {
    this.#url = url;
  }

  get(name: string): string | undefined {
    // A long query (the client chooses its length) is parsed once and kept, so hub code that
    // reads it on every invocation never pays for re-parsing what the client made long.
    if (this.#parsed !== undefined || this.#url.length > REPARSE_LIMIT) return QueryParameters.#all(this).get(name);
    // URLSearchParams.get answers the first value of the name, as parseQuery keeps it.
    return new URLSearchParams(searchOf(this.#url)).get(name) ?? undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  get size(): number {
    return QueryParameters.#all(this).size;
  }

  forEach(callback: (value: string, key: string, map: ReadonlyMap<string, string>) => void, thisArg?: unknown): void {
    for (const [key, value] of QueryParameters.#all(this)) callback.call(thisArg, value, key, this);
  }

  entries(): MapIterator<[string, string]> {
    return QueryParameters.#all(this).entries();
  }

  keys(): MapIterator<string> {
    return QueryParameters.#all(this).keys();
  }

  values(): MapIterator<string> {
    return QueryParameters.#all(this).values();
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return QueryParameters.#all(this)[Symbol.iterator]();
  }

  get [Symbol.toStringTag](): string {
    return "QueryParameters";
  }
}
