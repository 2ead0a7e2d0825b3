/**
 * The progress line on stderr: rewritten in place on a terminal, one line per step otherwise (so
 * logs stay short). stdout carries only the results table.
 */
export class Progress {
  readonly #total: number;
  readonly #started = performance.now();
  readonly #tty = process.stderr.isTTY === true;
  #index = 0;

  constructor(total: number) {
    this.#total = total;
  }

  #prefix(): string {
    return `[${this.#index}/${this.#total} ${((performance.now() - this.#started) / 1e3).toFixed(0)} s]`;
  }

  /** Starts the next step. */
  next(text: string): void {
    this.#index = Math.min(this.#index + 1, this.#total);
    this.#write(text, true);
  }

  /** Rewrites the current step's line. */
  update(text: string): void {
    this.#write(text, false);
  }

  /** A line that stays (a skipped scenario, a warning). */
  note(text: string): void {
    if (this.#tty) process.stderr.write("\r\u001b[K");
    process.stderr.write(`${text}\n`);
  }

  done(): void {
    if (this.#tty) process.stderr.write("\r\u001b[K");
    process.stderr.write(`bench: done in ${((performance.now() - this.#started) / 1e3).toFixed(1)} s\n`);
  }

  #write(text: string, newStep: boolean): void {
    if (this.#tty) process.stderr.write(`\r\u001b[K${this.#prefix()} ${text}`.slice(0, (process.stderr.columns ?? 120) + 8));
    else if (newStep) process.stderr.write(`${this.#prefix()} ${text}\n`);
  }
}
