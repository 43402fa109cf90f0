// Sequence: one token sequence's KV-cache state on a model. append() continues from the
// cached tokens exactly like passing past_key_values to transformers; fork() shares the
// cached blocks copy-on-write; truncate(n) forgets positions n...; dispose() returns the
// blocks. Appends are queued: each starts when the previous one has finished.
import { ErrorCode, withCode } from './errors.js';
import { checkOptions, describe, oneOf, toTokenIds } from './options.js';
import type { LogitsMode, Model } from './model.js';

/** @internal the raw native sequence (native/addon/sequence_binding.cc). */
export interface NativeSequence {
  append(ids: Uint32Array, logits: number): Promise<Float32Array | null>;
  fork(): NativeSequence;
  truncate(n: number): void;
  dispose(): void;
  readonly length: number;
}

const MODES = { none: 0, last: 1, all: 2 } as const;

export class Sequence {
  #model: Model; // keeps the model (and its native memory) alive while the sequence is
  #native: NativeSequence;
  #length = 0; // committed positions
  #pendingTokens = 0;
  #pending = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #disposed = false;

  /** @internal use Model.sequence() */
  constructor(model: Model, nativeSequence: NativeSequence, length = 0) {
    this.#model = model;
    this.#native = nativeSequence;
    this.#length = length;
  }

  /** Tokens in the cache (appends that have finished). */
  get length(): number {
    return this.#length;
  }

  /**
   * Feeds tokens after the cached ones. logits: 'last' (default) gives [vocab] for the
   * last new token, 'all' row-major [n, vocab], 'none' nothing.
   */
  append(ids: Uint32Array | number[], opts?: { logits?: LogitsMode }): Promise<{ logits?: Float32Array }> {
    try {
      this.#check('Sequence.append');
      const o = checkOptions(opts, ['logits'], 'Sequence.append');
      const mode = o.logits === undefined ? 'last' : oneOf(o.logits, ['last', 'all', 'none'] as const, 'logits', 'Sequence.append');
      const cfg = this.#model.config;
      const t = toTokenIds(ids, cfg.vocab_size, 'Sequence.append');
      const total = this.#length + this.#pendingTokens + t.length;
      if (total > cfg.n_positions) {
        throw withCode(
          new RangeError(`Sequence.append: the sequence would be ${total} tokens long, more than n_positions (${cfg.n_positions})`),
          ErrorCode.OutOfRange,
        );
      }
      this.#pending++;
      this.#pendingTokens += t.length;
      const start = async () => {
        try {
          this.#check('Sequence.append');
          const logits = await this.#native.append(t, MODES[mode]);
          this.#length += t.length;
          return mode === 'none' ? {} : { logits: logits! };
        } finally {
          this.#pending--;
          this.#pendingTokens -= t.length;
        }
      };
      // Start at once when idle (so a dispose() right after still lets it finish);
      // otherwise after the previous append. Queued appends not yet started when the
      // model or sequence is disposed reject with ERR_GPT2_DISPOSED.
      const run = this.#pending === 1 ? start() : this.#tail.then(start);
      this.#tail = run.catch(() => undefined);
      return run;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A new sequence sharing this one's cached tokens (copy-on-write). */
  fork(): Sequence {
    this.#check('Sequence.fork');
    this.#idle('Sequence.fork');
    return new Sequence(this.#model, this.#native.fork(), this.#length);
  }

  /** Keeps the first n cached tokens. */
  truncate(n: number): void {
    this.#check('Sequence.truncate');
    this.#idle('Sequence.truncate');
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      throw withCode(new TypeError(`Sequence.truncate: n must be a non-negative integer (got ${describe(n)})`), ErrorCode.InvalidArg);
    }
    if (n > this.#length) {
      throw withCode(new RangeError(`Sequence.truncate: n (${n}) is more than the sequence length (${this.#length})`), ErrorCode.OutOfRange);
    }
    this.#native.truncate(n);
    this.#length = n;
  }

  /** Returns the cached blocks to the model's KV cache. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#native.dispose();
  }

  #check(where: string): void {
    if (this.#disposed) throw withCode(new Error(`${where}: the sequence has been disposed`), ErrorCode.Disposed);
    if (this.#model.disposed) throw withCode(new Error(`${where}: the model has been disposed`), ErrorCode.Disposed);
  }
  #idle(where: string): void {
    if (this.#pending > 0) {
      throw withCode(new Error(`${where}: an append() is still running on this sequence (await it first)`), ErrorCode.InvalidArg);
    }
  }
}
