// The public Tokenizer: GPT-2 byte-level BPE, native (native/tokenizer/), exact to the
// original GPT-2 encoder / tiktoken's `gpt2` encoding.
import { join } from 'node:path';

import { ErrorCode, withCode } from './errors.js';
import { native, packageRoot } from './native.js';

/** The raw binding's tokenizer object (native/addon/tokenizer_binding.cc). */
export interface NativeTokenizer {
  encode(text: string, allowedSpecial?: 'all' | readonly string[]): Uint32Array;
  encodeInto(text: string, scratch: Uint32Array, allowedSpecial?: 'all' | readonly string[]): number | Uint32Array;
  count(text: string, allowedSpecial?: 'all' | readonly string[]): number;
  encodeBatch(texts: readonly string[], allowedSpecial?: 'all' | readonly string[]): Promise<Uint32Array[]>;
  decode(ids: Uint32Array): string;
  decodeBytes(ids: Uint32Array): Uint8Array;
  specialTokens(): Record<string, number>;
  readonly vocabSize: number;
  readonly eosTokenId: number;
}

interface TokenizerBinding {
  tokenizerGpt2(assetDir: string): NativeTokenizer;
  tokenizerFromDir(dir: string): Promise<NativeTokenizer>;
  tokenizerDirHasFiles(dir: string): boolean;
}
const binding = native as unknown as TokenizerBinding;

export interface EncodeOptions {
  /** Special tokens (e.g. `<|endoftext|>`) recognised in the text: 'all' or a list.
   *  By default every special token is plain text (tiktoken's encode_ordinary). */
  allowedSpecial?: 'all' | readonly string[];
}

/** A streaming decoder: feed ids as they come, get text that never splits a character. */
export interface TokenDecoder {
  /** Text of ids, less any incomplete UTF-8 character at the end (kept for the next write). */
  write(ids: ArrayLike<number>): string;
  /** Flushes what is held: an incomplete character becomes U+FFFD. */
  end(): string;
}

/** Internal: the native tokenizer object of a Tokenizer, for other parts of the package
 *  (the Model passes it to native code, which calls UnwrapTokenizer). */
export const nativeTokenizer: unique symbol = Symbol('gpt2-node.nativeTokenizer');

/** Bundled GPT-2 vocabulary (vocab.json + merges.txt, byte-identical to Hugging Face's). */
export const gpt2AssetDir = join(packageRoot, 'assets', 'gpt2');

// Short encodes land here (per environment: every worker has its own module instance).
const scratch = new Uint32Array(4096);

function toIds(ids: ArrayLike<number>): Uint32Array {
  if (ids instanceof Uint32Array) return ids;
  if (ids === null || typeof ids !== 'object' || typeof (ids as { length?: unknown }).length !== 'number') {
    throw withCode(new TypeError('ids must be an array of token ids'), ErrorCode.InvalidArg);
  }
  const n = ids.length;
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      throw withCode(new TypeError(`ids[${i}] must be an integer token id, got ${String(id)}`), ErrorCode.InvalidArg);
    }
    if (id < 0 || id > 0xffffffff) {
      throw withCode(new RangeError(`token id ${id} at index ${i} is not in the vocabulary`), ErrorCode.OutOfRange);
    }
    out[i] = id;
  }
  return out;
}

export class Tokenizer {
  declare readonly [nativeTokenizer]: NativeTokenizer;
  readonly #native: NativeTokenizer;

  private constructor(handle: NativeTokenizer) {
    this.#native = handle;
    Object.defineProperty(this, nativeTokenizer, { value: handle, enumerable: false });
  }

  /** Loads vocab.json + merges.txt, or tokenizer.json, from a folder (off the event loop). */
  static async fromPretrained(dir: string): Promise<Tokenizer> {
    if (typeof dir !== 'string') throw withCode(new TypeError('dir must be a string'), ErrorCode.InvalidArg);
    return new Tokenizer(await binding.tokenizerFromDir(dir));
  }

  /** The GPT-2 tokenizer from the bundled vocabulary; offline, loaded once per process. */
  static gpt2(): Tokenizer {
    return new Tokenizer(binding.tokenizerGpt2(gpt2AssetDir));
  }

  /** Internal: the tokenizer of a model folder, or the bundled GPT-2 one when the folder
   *  has no tokenizer files and `fallbackToGpt2` is set. */
  static async fromModelDir(dir: string, fallbackToGpt2: boolean): Promise<Tokenizer | undefined> {
    if (binding.tokenizerDirHasFiles(dir)) return Tokenizer.fromPretrained(dir);
    return fallbackToGpt2 ? Tokenizer.gpt2() : undefined;
  }

  /** Internal: wraps a native tokenizer object (e.g. one a native Model returns). */
  static fromNative(handle: NativeTokenizer): Tokenizer {
    return new Tokenizer(handle);
  }

  encode(text: string, opts?: EncodeOptions): Uint32Array {
    const allowed = opts?.allowedSpecial;
    const r = allowed === undefined ? this.#native.encodeInto(text, scratch) : this.#native.encodeInto(text, scratch, allowed);
    return typeof r === 'number' ? scratch.slice(0, r) : r;
  }

  /** Encodes many texts in parallel on the compute threads, off the event loop. The
   *  arrays are views into one shared ArrayBuffer. */
  encodeBatch(texts: readonly string[], opts?: EncodeOptions): Promise<Uint32Array[]> {
    try {
      return this.#native.encodeBatch(texts, opts?.allowedSpecial);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  decode(ids: ArrayLike<number>): string {
    return this.#native.decode(toIds(ids));
  }

  decoder(): TokenDecoder {
    // TextDecoder in stream mode holds incomplete UTF-8 tails and replaces invalid
    // bytes with U+FFFD, so the stream's text equals decode() of all ids together.
    const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    const tok = this.#native;
    return {
      write(ids: ArrayLike<number>): string {
        return utf8.decode(tok.decodeBytes(toIds(ids)), { stream: true });
      },
      end(): string {
        return utf8.decode();
      },
    };
  }

  count(text: string, opts?: EncodeOptions): number {
    const allowed = opts?.allowedSpecial;
    return allowed === undefined ? this.#native.count(text) : this.#native.count(text, allowed);
  }

  /** Special tokens by text (`{ '<|endoftext|>': 50256 }` for GPT-2). */
  get specialTokens(): Record<string, number> {
    return this.#native.specialTokens();
  }

  get vocabSize(): number {
    return this.#native.vocabSize;
  }

  /** Id of `<|endoftext|>` (or of the first special token); -1 when there is none. */
  get eosTokenId(): number {
    return this.#native.eosTokenId;
  }
}
