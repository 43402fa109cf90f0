// Model.embed: argument checks, tokenization (Tokenizer.encodeBatch, off the event loop),
// truncation and windows here; the batching, forward passes and pooling are native
// (native/engine/embedding.cc through native/addon/embed_binding.cc): every embed() call
// on a model joins the same engine loop, which merges concurrent calls into shared steps.
import { ErrorCode, withCode } from './errors.js';
import { checkOptions, describe, integer, oneOf, optionalBoolean, optionalSignal, toTokenIds } from './options.js';
import type { Tokenizer } from './tokenizer.js';

export type Pooling = 'mean' | 'last' | 'first';
export type Truncate = 'none' | 'start' | 'end';

export interface EmbedWindow {
  /** Tokens per window (at most n_positions). */
  size: number;
  /** Tokens between window starts (1 ... size); size - stride tokens overlap. */
  stride: number;
}

export interface EmbedOptions {
  /** 'mean' (default) over the text's tokens, 'last' token, or 'first' token. */
  pooling?: Pooling;
  /** Scale each vector to unit L2 length (default false). */
  normalize?: boolean;
  /**
   * Which hidden state, as an index of transformers' hidden_states: 0 = token + position
   * embeddings, l = output of block l, n_layer = the last block. Negative counts from the
   * end: -1 (default) = the last.
   */
  layer?: number;
  /**
   * Apply the final LayerNorm (ln_f) to that hidden state. Default: true for the last
   * layer (transformers' last_hidden_state), false for the others (hidden_states[layer]).
   * finalNorm: false on the last layer gives the last block's raw output.
   */
  finalNorm?: boolean;
  /**
   * Texts longer than n_positions tokens: 'none' (default) rejects them (RangeError naming
   * the item), 'end' drops tokens from the end, 'start' drops them from the start.
   */
  truncate?: Truncate;
  /**
   * Split each text into overlapping windows of `size` tokens, `stride` apart (the last
   * window ends at the text's end), embed each, and average the window vectors (then
   * normalize). Texts of at most `size` tokens are one window.
   */
  window?: EmbedWindow;
  /**
   * Cancels the call: its Promise rejects with an ERR_GPT2_ABORTED error and its texts that
   * have not run yet are dropped from the engine's queue.
   */
  signal?: AbortSignal;
}

export type EmbedInput = string | readonly (string | Uint32Array | readonly number[])[];

/** @internal what lib/embed.ts needs of the native model. */
export interface NativeEmbedder {
  /** `handle`, when given, gets a cancel() method (see EmbedOptions.signal). */
  embed(ids: Uint32Array[], pooling: number, layer: number, finalNorm: boolean, normalize: boolean,
    handle?: { cancel?: () => boolean }): Promise<Float32Array[]>;
}

const POOLING_CODE = { mean: 1, last: 2, first: 3 } as const;
const EMBED_KEYS = ['pooling', 'normalize', 'layer', 'finalNorm', 'truncate', 'window', 'signal'] as const;
const WHERE = 'Model.embed';

interface Resolved {
  pooling: Pooling;
  normalize: boolean;
  layer: number;
  finalNorm: boolean;
  truncate: Truncate;
  window?: EmbedWindow;
  signal?: AbortSignal;
}

function resolveOptions(opts: unknown, nLayer: number, nPositions: number): Resolved {
  const o = checkOptions(opts, EMBED_KEYS, WHERE);
  const pooling = o.pooling === undefined ? 'mean' : oneOf(o.pooling, ['mean', 'last', 'first'] as const, 'pooling', WHERE);
  const truncate = o.truncate === undefined ? 'none' : oneOf(o.truncate, ['none', 'start', 'end'] as const, 'truncate', WHERE);
  let layer = o.layer === undefined ? -1 : integer(o.layer, 'layer', WHERE);
  if (layer < -(nLayer + 1) || layer > nLayer) {
    throw withCode(new RangeError(`${WHERE}: layer ${layer} is out of range (${-(nLayer + 1)} ... ${nLayer})`), ErrorCode.OutOfRange);
  }
  if (layer < 0) layer += nLayer + 1;
  const r: Resolved = {
    pooling, truncate, layer,
    normalize: optionalBoolean(o.normalize, 'normalize', WHERE) ?? false,
    finalNorm: optionalBoolean(o.finalNorm, 'finalNorm', WHERE) ?? layer === nLayer,
  };
  if (o.window !== undefined) {
    const w = checkOptions(o.window, ['size', 'stride'], `${WHERE}: window`);
    const size = integer(w.size, 'window.size', WHERE);
    const stride = integer(w.stride, 'window.stride', WHERE);
    if (size < 1 || size > nPositions) {
      throw withCode(new RangeError(`${WHERE}: window.size must be 1 ... n_positions (${nPositions}) (got ${size})`), ErrorCode.OutOfRange);
    }
    if (stride < 1 || stride > size) {
      throw withCode(new RangeError(`${WHERE}: window.stride must be 1 ... window.size (${size}) (got ${stride})`), ErrorCode.OutOfRange);
    }
    r.window = { size, stride };
  }
  r.signal = optionalSignal(o.signal, WHERE);
  return r;
}

/** Window starts over n tokens: 0, stride, ... and a last one ending at n. */
export function windowStarts(n: number, size: number, stride: number): number[] {
  if (n <= size) return [0];
  const starts: number[] = [];
  for (let s = 0; s + size < n; s += stride) starts.push(s);
  if (starts[starts.length - 1] !== n - size) starts.push(n - size);
  return starts;
}

export async function embed(
  model: NativeEmbedder,
  config: { n_layer: number; n_positions: number; vocab_size: number },
  tokenizer: () => Tokenizer,
  input: unknown,
  opts: unknown,
): Promise<Float32Array[]> {
  const o = resolveOptions(opts, config.n_layer, config.n_positions);
  const items: unknown[] = typeof input === 'string' ? [input] : Array.isArray(input) ? input : [];
  if (typeof input !== 'string' && !Array.isArray(input)) {
    throw withCode(new TypeError(`${WHERE}: input must be a string or an array of strings / token-id arrays (got ${describe(input)})`), ErrorCode.InvalidArg);
  }
  if (items.length === 0) throw withCode(new RangeError(`${WHERE}: no texts given (an empty array)`), ErrorCode.OutOfRange);

  // Token ids per item: strings through encodeBatch (parallel, off the event loop).
  const ids: (Uint32Array | undefined)[] = new Array(items.length);
  const textAt: number[] = [];
  items.forEach((item, i) => {
    if (typeof item === 'string') {
      if (item.length === 0) throw withCode(new RangeError(`${WHERE}: item ${i} is an empty string`), ErrorCode.OutOfRange);
      textAt.push(i);
    } else if (item instanceof Uint32Array || Array.isArray(item)) {
      ids[i] = toTokenIds(item, config.vocab_size, `${WHERE}: item ${i}`);
    } else {
      throw withCode(
        new TypeError(`${WHERE}: item ${i} must be a string or a Uint32Array of token ids (got ${describe(item)})`),
        ErrorCode.InvalidArg,
      );
    }
  });
  checkNotAborted(o.signal);
  if (textAt.length > 0) {
    const encoded = await tokenizer().encodeBatch(textAt.map((i) => items[i] as string));
    textAt.forEach((at, k) => { ids[at] = encoded[k]!; });
  }

  checkNotAborted(o.signal);
  // Truncation, or windows: each item becomes one or more native inputs.
  const inputs: Uint32Array[] = [];
  const spans: [number, number][] = [];
  ids.forEach((t, i) => {
    t = t!;
    const begin = inputs.length;
    if (o.window) {
      for (const s of windowStarts(t.length, o.window.size, o.window.stride)) inputs.push(t.subarray(s, s + o.window.size));
    } else if (t.length > config.n_positions) {
      if (o.truncate === 'none') {
        throw withCode(
          new RangeError(`${WHERE}: item ${i} has ${t.length} tokens, more than n_positions (${config.n_positions}); pass truncate: 'end' | 'start' or window`),
          ErrorCode.OutOfRange,
        );
      }
      inputs.push(o.truncate === 'end' ? t.subarray(0, config.n_positions) : t.subarray(t.length - config.n_positions));
    } else {
      if (t.length === 0) throw withCode(new RangeError(`${WHERE}: item ${i} has no tokens`), ErrorCode.OutOfRange);
      inputs.push(t);
    }
    spans.push([begin, inputs.length]);
  });

  const windowed = inputs.length !== items.length;
  const vectors = await runCancellable(o.signal, (handle) =>
    model.embed(inputs, POOLING_CODE[o.pooling], o.layer, o.finalNorm, o.normalize && !windowed, handle));
  if (!windowed) return vectors;
  return spans.map(([begin, end]) => {
    if (end - begin === 1 && !o.normalize) return vectors[begin]!;
    const out = new Float32Array(vectors[begin]!.length);
    for (let w = begin; w < end; w++) {
      const v = vectors[w]!;
      for (let d = 0; d < out.length; d++) out[d]! += v[d]! / (end - begin);
    }
    if (o.normalize) normalizeInPlace(out);
    return out;
  });
}

function checkNotAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw withCode(new Error(`${WHERE}: aborted`), ErrorCode.Aborted);
}

/** Runs the native call; an abort of `signal` meanwhile cancels it (the native side rejects). */
async function runCancellable<T>(signal: AbortSignal | undefined, call: (handle: { cancel?: () => boolean }) => Promise<T>): Promise<T> {
  const handle: { cancel?: () => boolean } = {};
  if (!signal) return call(handle);
  const onAbort = () => handle.cancel?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await call(handle);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** v /= |v|₂ (a zero vector stays zero). */
export function normalizeInPlace(v: Float32Array): Float32Array {
  let ss = 0;
  for (let d = 0; d < v.length; d++) ss += v[d]! * v[d]!;
  if (ss > 0) {
    const inv = 1 / Math.sqrt(ss);
    for (let d = 0; d < v.length; d++) v[d]! *= inv;
  }
  return v;
}
