// Generation: one generate() request. The native engine (native/engine/generation.cc)
// decodes on the model's engine thread, batched with every other request; this side turns
// the streamed token ids into UTF-8-safe text deltas, matches stop strings across token
// boundaries (holding back text that could still become one, trimming the match), and
// collects results.
//
// Ending: EOS / a stop token / a stop string -> 'stop'; maxNewTokens or n_positions ->
// 'length'; AbortSignal, abort() or Model.dispose() -> 'abort' (result() resolves, it does
// not reject). Errors (e.g. ERR_GPT2_KV_CACHE_FULL) reject result()/results() and make the
// iterator throw; a promise is only created when asked for, so an ignored failure is never
// an unhandled rejection.
import type { Sampler } from './sampler.js';
import type { Tokenizer, TokenDecoder } from './tokenizer.js';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationToken {
  tokenId: number;
  /** Text this token completes (may be '' inside a multi-byte character or a possible stop string). */
  text: string;
  /** log-softmax of the raw logits at the chosen token (with `logprobs`). */
  logprob?: number;
  /** The most likely alternatives, best first (with `logprobs: n`). */
  topLogprobs?: { tokenId: number; logprob: number }[];
}

export interface GenerationUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface GenerationResult {
  text: string;
  /** New tokens only; the stop string / stop token / EOS that ended the sequence is not included. */
  tokenIds: Uint32Array;
  finishReason: FinishReason;
  usage: GenerationUsage;
  /** Beam search: transformers' sequences_scores; sampling: mean logprob of the tokens. */
  score?: number;
  /** Per token (with `logprobs`). */
  logprobs?: number[];
}

/** @internal the handle returned by the native generate(). */
export interface NativeGeneration {
  abort(): void;
  stopRow(row: number): void;
}

interface TokenBatch {
  rows: Int32Array; tokens: Uint32Array; logprobs: Float32Array; topN: number; topIds: Uint32Array; topLogprobs: Float32Array;
}
interface FinishedRow { tokenIds: Uint32Array; score: number; finishReason: FinishReason }

/** @internal what Model.generate passes in. */
export interface GenerationSetup {
  tokenizer: Tokenizer | undefined;
  promptTokens: number;
  rows: number;
  beams: boolean;
  stop: string[];
  logprobs: boolean;
  keepAlive: unknown; // the Model, alive while this runs
}

class Row {
  tokens: number[] = [];
  logprobs: number[] = [];
  text = '';
  emitted: GenerationToken[] = [];
  pending: GenerationToken[] = []; // decoded, not yet released (could be the start of a stop string)
  pendingLp: number[] = [];
  sumLogprob = 0;
  decoder: TokenDecoder | undefined;
  stopped = false; // by a stop string, here
  constructor(tokenizer: Tokenizer | undefined) {
    this.decoder = tokenizer?.decoder();
  }
}

export class Generation implements AsyncIterable<GenerationToken> {
  #setup: GenerationSetup;
  #native: NativeGeneration | undefined;
  #rows: Row[];
  #finished: GenerationResult[] | undefined;
  #error: unknown;
  #settled = false;
  #done: Promise<void>;
  #resolveDone!: () => void;
  #wake: (() => void)[] = [];
  #onAbort: (() => void) | undefined;
  #signal: AbortSignal | undefined;

  /** @internal use Model.generate() */
  constructor(setup: GenerationSetup) {
    this.#setup = setup;
    this.#rows = Array.from({ length: setup.rows }, () => new Row(setup.tokenizer));
    this.#done = new Promise((resolve) => { this.#resolveDone = resolve; });
  }

  /** @internal */
  attach(nativeGeneration: NativeGeneration, signal: AbortSignal | undefined): void {
    this.#native = nativeGeneration;
    if (!signal) return;
    if (signal.aborted) {
      nativeGeneration.abort();
      return;
    }
    this.#signal = signal;
    this.#onAbort = () => nativeGeneration.abort();
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** @internal the native engine's events (never throws into native code). */
  onEvent = (kind: string, payload: unknown): void => {
    try {
      if (kind === 'tokens') this.#onTokens(payload as TokenBatch);
      else if (kind === 'finish') this.#onFinish(payload as FinishedRow[]);
      else this.#settle(undefined, payload);
    } catch (err) {
      this.#settle(undefined, err);
    }
  };

  /** Stops the request within one engine step; result() then reports finishReason 'abort'. */
  abort(): void {
    if (!this.#settled) this.#native?.abort();
  }

  /** The first (for beams: the best) sequence. */
  async result(): Promise<GenerationResult> {
    return (await this.results())[0]!;
  }

  /** numReturnSequences results, best first (by score). */
  async results(): Promise<GenerationResult[]> {
    await this.#done;
    if (this.#error !== undefined) throw this.#error;
    return this.#finished!;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationToken> {
    let next = 0;
    for (;;) {
      const row = this.#rows[0]!;
      while (next < row.emitted.length) yield row.emitted[next++]!;
      if (this.#settled) {
        if (this.#error !== undefined) throw this.#error;
        if (next >= row.emitted.length) return;
        continue;
      }
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  #onTokens(b: TokenBatch): void {
    for (let i = 0; i < b.tokens.length; i++) {
      const row = this.#rows[b.rows[i]!];
      if (!row || row.stopped) continue; // tokens in flight after a stop string
      const t: GenerationToken = { tokenId: b.tokens[i]!, text: row.decoder ? row.decoder.write([b.tokens[i]!]) : '' };
      if (this.#setup.logprobs) {
        t.logprob = b.logprobs[i]!;
        if (b.topN > 0) {
          t.topLogprobs = [];
          for (let j = 0; j < b.topN; j++) t.topLogprobs.push({ tokenId: b.topIds[i * b.topN + j]!, logprob: b.topLogprobs[i * b.topN + j]! });
        }
      }
      row.pending.push(t);
      row.pendingLp.push(b.logprobs[i]!);
      this.#release(row, b.rows[i]!);
    }
    this.#notify();
  }

  // Moves pending tokens to emitted, except those whose text could still begin a stop
  // string; on a match, keeps the text before it, drops the rest and stops the row.
  #release(row: Row, index: number): void {
    const stops = this.#setup.stop;
    if (stops.length === 0) {
      row.pending.forEach((t, i) => this.#emit(row, t, row.pendingLp[i]!));
      row.pending = [];
      row.pendingLp = [];
      return;
    }
    const buffer = row.pending.map((t) => t.text).join('');
    let at = -1;
    for (const s of stops) {
      const i = buffer.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      let offset = 0;
      row.pending.forEach((t, i) => {
        if (offset >= at) return;
        const keep = Math.min(t.text.length, at - offset);
        offset += t.text.length;
        this.#emit(row, { ...t, text: t.text.slice(0, keep) }, row.pendingLp[i]!);
      });
      row.pending = [];
      row.pendingLp = [];
      row.stopped = true;
      this.#native?.stopRow(index);
      return;
    }
    // The longest suffix of the buffer that is a proper prefix of a stop string is held back.
    let hold = 0;
    for (const s of stops) {
      for (let n = Math.min(s.length - 1, buffer.length); n > hold; n--) {
        if (buffer.endsWith(s.slice(0, n))) { hold = n; break; }
      }
    }
    let offset = 0;
    let released = 0;
    for (const t of row.pending) {
      if (offset + t.text.length > buffer.length - hold) break;
      offset += t.text.length;
      released++;
    }
    for (let i = 0; i < released; i++) this.#emit(row, row.pending[i]!, row.pendingLp[i]!);
    row.pending = row.pending.slice(released);
    row.pendingLp = row.pendingLp.slice(released);
  }

  #emit(row: Row, t: GenerationToken, lp: number): void {
    row.sumLogprob += lp;
    row.emitted.push(t);
    row.tokens.push(t.tokenId);
    row.text += t.text;
    if (t.logprob !== undefined) row.logprobs.push(t.logprob);
  }

  #onFinish(finished: FinishedRow[]): void {
    const { promptTokens, tokenizer } = this.#setup;
    const usage = (n: number): GenerationUsage => ({ promptTokens, completionTokens: n, totalTokens: promptTokens + n });
    let results: GenerationResult[];
    if (this.#setup.beams) {
      // Beams arrive whole at the end: the best one is also what the iterator yields.
      results = finished.map((f) => ({ text: tokenizer ? tokenizer.decode(f.tokenIds) : '', tokenIds: f.tokenIds,
        finishReason: f.finishReason, usage: usage(f.tokenIds.length), score: f.score }));
      const best = finished[0];
      if (best) {
        const row = this.#rows[0]!;
        for (const id of best.tokenIds) this.#emit(row, { tokenId: id, text: row.decoder ? row.decoder.write([id]) : '' }, 0);
        const tail = row.decoder?.end() ?? '';
        if (tail && row.emitted.length > 0) row.emitted[row.emitted.length - 1]!.text += tail;
      }
    } else {
      results = this.#rows.map((row, i) => {
        const f = finished[i]!;
        if (!row.stopped) {
          row.pending.forEach((t, j) => this.#emit(row, t, row.pendingLp[j]!)); // no stop string can complete any more
          row.pending = [];
          row.pendingLp = [];
          const tail = row.decoder?.end() ?? '';
          if (tail) {
            row.text += tail;
            if (row.emitted.length > 0) row.emitted[row.emitted.length - 1]!.text += tail;
          }
        }
        const r: GenerationResult = { text: row.text, tokenIds: Uint32Array.from(row.tokens),
          finishReason: row.stopped ? 'stop' : f.finishReason, usage: usage(row.tokens.length) };
        if (this.#rows.length > 1) r.score = row.tokens.length ? row.sumLogprob / row.tokens.length : f.score;
        if (this.#setup.logprobs) r.logprobs = row.logprobs;
        return r;
      });
      if (results.length > 1) {
        // Best first; row 0 (what the iterator streamed) stays first among equals.
        const order = results.map((r, i) => ({ r, i }));
        order.sort((a, b) => (b.r.score ?? 0) - (a.r.score ?? 0) || a.i - b.i);
        results = order.map((o) => o.r);
      }
    }
    this.#settle(results, undefined);
  }

  #settle(results: GenerationResult[] | undefined, error: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#finished = results;
    this.#error = error;
    if (this.#signal && this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort);
    this.#resolveDone();
    this.#notify();
  }
}

export type { Sampler };
