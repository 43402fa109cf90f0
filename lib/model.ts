// Model: a GPT-2 checkpoint (or random weights) on a backend, with a stateless ragged
// forward() and stateful sequences over the paged KV cache. The heavy lifting is native
// (native/model/gpt2_model.cc through native/addon/model_binding.cc); this file checks
// arguments and shapes results.
import { embed, type EmbedInput, type EmbedOptions, type NativeEmbedder } from './embed.js';
import { ErrorCode, withCode } from './errors.js';
import { modelDirFor } from './hub/index.js';
import { native } from './native.js';
import { checkOptions, oneOf, describe, finiteNumber, integer, optionalBoolean, optionalSignal, toTokenIds } from './options.js';
import { Generation, type GenerationResult, type NativeGeneration } from './generation.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import { Sequence, type NativeSequence } from './sequence.js';
import { Tokenizer } from './tokenizer.js';

/** GPT-2 hyper-parameters, with Hugging Face's field names (config.json). */
export interface GPT2Config {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner: number;
  activation_function: string;
  layer_norm_epsilon: number;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  reorder_and_upcast_attn: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number | null;
}

export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;
export type DType = 'float32' | 'bfloat16' | 'float16';

export interface LoadOptions {
  /** 'auto' (default): CUDA when usable, else the CPU (see Model.deviceReason). */
  device?: Device;
  /** Weight precision. float32 (default) reproduces transformers within 1e-4. */
  dtype?: DType;
  /** Compute threads (default: the machine's cores). The process has one pool: the first model sizes it. */
  threads?: number;
  /** KV-cache capacity in tokens, shared by all sequences of the model (default 4 * n_positions). */
  kvCacheTokens?: number;
}

export type RandomOptions = LoadOptions & { seed?: number };

/** Model.engineStats: counters of the model's engine loop since load. */
export interface EngineStats {
  /** Forward steps run (each a batch of sequences from any requests). */
  steps: number;
  /** The most sequences one step held. */
  maxStepSequences: number;
  /** Input tokens run, summed over steps (prompt chunks and decode rows). */
  tokens: number;
  /** Sequences run, summed over steps (tokens / sequences per step is the batch shape). */
  sequences: number;
  failedSteps: number;
  /** Steps by sequences per step: [i] counts steps with at most 2^i sequences (the last: more). */
  stepSequenceBuckets: number[];
  /** Steps by tokens per step: [i] counts steps with at most 16 * 2^i tokens (the last: more). */
  stepTokenBuckets: number[];
}
export type LogitsMode = 'last' | 'all' | 'none';

export interface ForwardOptions {
  /** Which positions get logits: 'last' (default), 'all', or 'none'. */
  logits?: LogitsMode;
  /** Also return transformers' hidden_states (n_layer + 1 entries per sequence). */
  hiddenStates?: boolean;
}

export interface ForwardResult {
  /** Per sequence: [vocab] for 'last', row-major [seq, vocab] for 'all'; absent for 'none'. */
  logits?: Float32Array[];
  /** Per sequence, per layer: row-major [seq, n_embd]. [0] = embeddings, last = after ln_f. */
  hiddenStates?: Float32Array[][];
  /** Per sequence: row-major [seq, n_embd], after ln_f (transformers' last_hidden_state). */
  lastHiddenState: Float32Array[];
}

/** @internal the raw native model (native/addon/model_binding.cc). */
export interface NativeModel extends NativeEmbedder {
  config(): string;
  info(): { device: string; deviceReason: string; dtype: string; disposed: boolean; weightBytes?: number;
    kvCacheTokens?: number; kvCacheBytes?: number; kvBlockSize?: number; kvFreeBlocks?: number;
    engineSteps?: number; engineMaxStepSequences?: number; engineTokens?: number; engineSequences?: number;
    engineFailedSteps?: number; engineStepSequenceBuckets?: number[]; engineStepTokenBuckets?: number[] };
  forward(ids: Uint32Array[], logits: Int32Array, hiddenStates: boolean): Promise<{
    logits: (Float32Array | null)[]; lastHiddenState: Float32Array[]; hiddenStates?: Float32Array[][] }>;
  sequence(): NativeSequence;
  dispose(): void;
}

export interface GenerateOptions {
  /** New tokens at most (default 20). Generation also ends at n_positions ('length'). */
  maxNewTokens?: number;
  /** How tokens are chosen (default: greedy). A Sampler or its options. */
  sampler?: Sampler | SamplerOptions;
  /** Stop strings: matched across token boundaries, trimmed from the text. */
  stop?: string | string[];
  /** Token ids that end a sequence (besides EOS), not included in the result. */
  stopTokenIds?: number[];
  /** Do not stop at the model's EOS token. */
  ignoreEos?: boolean;
  /** Beam search with this many beams (transformers 4.41 scoring; deterministic). */
  numBeams?: number;
  /** Sequences to return: sampled rows sharing the prompt's KV blocks, or the best beams.
   *  The iterator streams the first row (for beams: the best sequence, at the end). */
  numReturnSequences?: number;
  /** Beam search: score = sum of logprobs / length ^ lengthPenalty (default 1). */
  lengthPenalty?: number;
  /** Beam search: stop as soon as numBeams hypotheses are complete (default false). */
  earlyStopping?: boolean;
  /** Seed of the random stream (overrides the sampler's). */
  seed?: number;
  /** true: each token's logprob; n: also the n most likely alternatives. */
  logprobs?: boolean | number;
  signal?: AbortSignal;
  /** A prompt too long for n_positions: 'none' (default) throws; 'start' drops its oldest tokens. */
  truncate?: 'none' | 'start';
}

const GENERATE_KEYS = ['maxNewTokens', 'sampler', 'stop', 'stopTokenIds', 'ignoreEos', 'numBeams', 'numReturnSequences',
  'lengthPenalty', 'earlyStopping', 'seed', 'logprobs', 'signal', 'truncate'] as const;

interface ModelBinding {
  generate(model: NativeModel, prompt: Uint32Array, opts: Record<string, unknown>,
    onEvent: (kind: string, payload: unknown) => void): NativeGeneration;
  modelLoad(dir: string, opts: LoadOptions): Promise<NativeModel>;
  modelRandom(spec: string, isJson: boolean, seed: number, opts: LoadOptions): Promise<NativeModel>;
}
const binding = native as unknown as ModelBinding;

const GPT2_VOCAB_SIZE = 50257;
const LOAD_KEYS = ['device', 'dtype', 'threads', 'kvCacheTokens'] as const;
/** Model.random's preset names. */
export const PRESETS = ['gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', 'distilgpt2'] as const;

export const LOGITS_MODE = { none: 0, last: 1, all: 2 } as const;

function checkLoadOptions(opts: Record<string, unknown>, where: string): LoadOptions {
  const out: LoadOptions = {};
  if (opts.device !== undefined) {
    const d = opts.device;
    if (typeof d !== 'string' || !/^(auto|cpu|cuda|cuda:\d+)$/.test(d)) {
      throw withCode(new TypeError(`${where}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (got ${describe(d)})`), ErrorCode.InvalidArg);
    }
    out.device = d as Device;
  }
  if (opts.dtype !== undefined) out.dtype = oneOf(opts.dtype, ['float32', 'bfloat16', 'float16'] as const, 'dtype', where);
  for (const key of ['threads', 'kvCacheTokens'] as const) {
    if (opts[key] === undefined) continue;
    const v = integer(opts[key], key, where);
    if (v < 1 || v > (key === 'threads' ? 1024 : 2 ** 31 - 1)) {
      throw withCode(new RangeError(`${where}: ${key} must be at least 1 (got ${v})`), ErrorCode.OutOfRange);
    }
    out[key] = v;
  }
  return out;
}

export class Model {
  #native: NativeModel;
  #config: GPT2Config;
  #info: ReturnType<NativeModel['info']>;
  #tokenizer: Tokenizer | undefined;
  #disposed = false;

  private constructor(nativeModel: NativeModel, tokenizer: Tokenizer | undefined) {
    this.#native = nativeModel;
    this.#tokenizer = tokenizer;
    this.#config = Object.freeze(JSON.parse(nativeModel.config()) as GPT2Config);
    this.#info = nativeModel.info();
  }

  /**
   * Loads a Hugging Face GPT-2 folder (config.json + model.safetensors, or shards), or a hub id
   * ('openai-community/gpt2'), downloaded into the Hugging Face cache first. A folder that
   * exists wins over a hub id of the same name.
   */
  static async load(dirOrHubId: string, opts?: LoadOptions): Promise<Model> {
    if (typeof dirOrHubId !== 'string' || dirOrHubId.length === 0) {
      throw withCode(new TypeError(`Model.load: dir must be a non-empty string (got ${describe(dirOrHubId)})`), ErrorCode.InvalidArg);
    }
    const o = checkLoadOptions(checkOptions(opts, LOAD_KEYS, 'Model.load'), 'Model.load');
    const dir = await modelDirFor(dirOrHubId);
    const nativeModel = await binding.modelLoad(dir, o);
    try {
      const vocab = (JSON.parse(nativeModel.config()) as GPT2Config).vocab_size;
      // A folder without tokenizer files gets the bundled GPT-2 tokenizer when the vocabulary is GPT-2's.
      return new Model(nativeModel, await Tokenizer.fromModelDir(dir, vocab === GPT2_VOCAB_SIZE));
    } catch (err) {
      nativeModel.dispose();
      throw err;
    }
  }

  /**
   * Deterministic random weights (benchmarks, tests): a preset name or a partial config
   * (config.json field names, on top of gpt2's). Same seed, same weights.
   */
  static async random(config: (typeof PRESETS)[number] | Partial<GPT2Config>, opts?: RandomOptions): Promise<Model> {
    const all = checkOptions(opts, [...LOAD_KEYS, 'seed'], 'Model.random');
    const o = checkLoadOptions(all, 'Model.random');
    const seed = all.seed ?? 0;
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) {
      throw withCode(new TypeError(`Model.random: seed must be a non-negative integer (got ${describe(seed)})`), ErrorCode.InvalidArg);
    }
    const withTokenizer = (m: NativeModel) =>
      new Model(m, (JSON.parse(m.config()) as GPT2Config).vocab_size === GPT2_VOCAB_SIZE ? Tokenizer.gpt2() : undefined);
    if (typeof config === 'string') return withTokenizer(await binding.modelRandom(config, false, seed, o));
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw withCode(new TypeError(`Model.random: config must be a preset name (${PRESETS.join(', ')}) or an object`), ErrorCode.InvalidArg);
    }
    return withTokenizer(await binding.modelRandom(JSON.stringify(config), true, seed, o));
  }

  /** The model's hyper-parameters (Hugging Face field names). */
  get config(): GPT2Config {
    return this.#config;
  }
  /**
   * The model's tokenizer: the folder's vocab.json + merges.txt (or tokenizer.json), else
   * the bundled GPT-2 one when vocab_size is 50257. Throws when there is neither.
   */
  get tokenizer(): Tokenizer {
    if (!this.#tokenizer) {
      throw withCode(
        new Error(`Model.tokenizer: this model has no tokenizer files and its vocab_size (${this.#config.vocab_size}) is not GPT-2's`),
        ErrorCode.InvalidArg,
      );
    }
    return this.#tokenizer;
  }
  /** The backend in use: 'cpu' or 'cuda:N'. */
  get device(): string {
    return this.#info.device;
  }
  /** Why CUDA was not used when device 'auto' was asked for (undefined otherwise). */
  get deviceReason(): string | undefined {
    return this.#info.deviceReason || undefined;
  }
  get dtype(): DType {
    return this.#info.dtype as DType;
  }
  /** Memory and KV-cache figures (bytes, tokens). */
  get stats(): { weightBytes: number; kvCacheTokens: number; kvCacheBytes: number; kvBlockSize: number; kvFreeBlocks: number } {
    this.#check('Model.stats');
    const i = this.#native.info();
    return { weightBytes: i.weightBytes!, kvCacheTokens: i.kvCacheTokens!, kvCacheBytes: i.kvCacheBytes!,
      kvBlockSize: i.kvBlockSize!, kvFreeBlocks: i.kvFreeBlocks! };
  }
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Runs sequences through the model without a cache (one ragged batch, no padding).
   * Results are per sequence, row-major [positions, width].
   */
  async forward(ids: Uint32Array | Uint32Array[] | number[] | number[][], opts?: ForwardOptions): Promise<ForwardResult> {
    this.#check('Model.forward');
    const o = checkOptions(opts, ['logits', 'hiddenStates'], 'Model.forward');
    const logits = o.logits === undefined ? 'last' : oneOf(o.logits, ['last', 'all', 'none'] as const, 'logits', 'Model.forward');
    optionalBoolean(o.hiddenStates, 'hiddenStates', 'Model.forward');
    const list = isBatch(ids) ? (ids as unknown[]) : [ids];
    if (list.length === 0) throw withCode(new RangeError('Model.forward: no sequences given'), ErrorCode.OutOfRange);
    const seqs = list.map((s, i) => {
      const label = list.length === 1 && !isBatch(ids) ? 'Model.forward' : `Model.forward: sequence ${i}`;
      const t = toTokenIds(s, this.#config.vocab_size, label);
      if (t.length > this.#config.n_positions) {
        throw withCode(
          new RangeError(`${label}: ${t.length} tokens is more than n_positions (${this.#config.n_positions})`),
          ErrorCode.OutOfRange,
        );
      }
      return t;
    });
    const modes = new Int32Array(seqs.length).fill(LOGITS_MODE[logits]);
    const r = await this.#native.forward(seqs, modes, o.hiddenStates === true);
    const out: ForwardResult = { lastHiddenState: r.lastHiddenState };
    if (logits !== 'none') out.logits = r.logits as Float32Array[];
    if (o.hiddenStates === true) out.hiddenStates = r.hiddenStates!;
    return out;
  }

  /**
   * One vector per text (or token-id array), in input order. Concurrent calls on one model
   * are batched together by its engine; a text's vector does not depend on what else runs
   * with it. See EmbedOptions for pooling, layer, finalNorm, normalize, truncate, window.
   */
  embed(input: EmbedInput, opts?: EmbedOptions): Promise<Float32Array[]> {
    try {
      this.#check('Model.embed');
      return embed(this.#native, this.#config, () => this.tokenizer, input, opts);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Engine counters since load: forward steps, what they held, and batch-size histograms. */
  get engineStats(): EngineStats {
    this.#check('Model.engineStats');
    const i = this.#native.info();
    return {
      steps: i.engineSteps ?? 0,
      maxStepSequences: i.engineMaxStepSequences ?? 0,
      tokens: i.engineTokens ?? 0,
      sequences: i.engineSequences ?? 0,
      failedSteps: i.engineFailedSteps ?? 0,
      stepSequenceBuckets: i.engineStepSequenceBuckets ?? [],
      stepTokenBuckets: i.engineStepTokenBuckets ?? [],
    };
  }

  /** A stateful sequence with its own KV cache, for custom decoding loops. */
  sequence(): Sequence {
    this.#check('Model.sequence');
    return new Sequence(this, this.#native.sequence());
  }

  /**
   * Generates from a prompt (text or token ids; '' starts from <|endoftext|>) on the model's
   * engine thread, batched with every other request. Iterate for streamed tokens, or await
   * result() / results(). Option errors throw here (TypeError / RangeError naming the option).
   */
  generate(prompt: string | Uint32Array | number[], opts?: GenerateOptions): Generation {
    this.#check('Model.generate');
    const where = 'Model.generate';
    const o = checkOptions(opts, GENERATE_KEYS, where) as GenerateOptions;
    const cfg = this.#config;
    const intOpt = (value: unknown, name: string, min: number, max: number, fallback: number): number => {
      if (value === undefined) return fallback;
      const v = integer(value, name, where);
      if (v < min || v > max) throw withCode(new RangeError(`${where}: ${name} must be in [${min}, ${max}] (got ${v})`), ErrorCode.OutOfRange);
      return v;
    };
    const maxNewTokens = intOpt(o.maxNewTokens, 'maxNewTokens', 1, cfg.n_positions, 20);
    const numBeams = intOpt(o.numBeams, 'numBeams', 1, 64, 1);
    const numReturn = intOpt(o.numReturnSequences, 'numReturnSequences', 1, numBeams > 1 ? numBeams : 64, 1);
    const sampler = o.sampler === undefined ? Sampler.greedy() : o.sampler instanceof Sampler ? o.sampler : new Sampler(o.sampler);
    if (numBeams > 1 && !sampler.greedy) {
      throw withCode(new RangeError(`${where}: numBeams > 1 is beam search, which is deterministic: use a sampler with temperature 0`), ErrorCode.OutOfRange);
    }
    const seed = o.seed ?? sampler.seed ?? Math.floor(Math.random() * 2 ** 32);
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw withCode(new RangeError(`${where}: seed must be a non-negative safe integer (got ${describe(seed)})`), ErrorCode.OutOfRange);
    }
    let logprobs = -1;
    if (o.logprobs === true) logprobs = 0;
    else if (typeof o.logprobs === 'number') logprobs = intOpt(o.logprobs, 'logprobs', 0, 100, 0);
    else if (o.logprobs !== undefined && o.logprobs !== false) {
      throw withCode(new TypeError(`${where}: logprobs must be a boolean or a count of alternatives (got ${describe(o.logprobs)})`), ErrorCode.InvalidArg);
    }
    const stop = o.stop === undefined ? [] : typeof o.stop === 'string' ? [o.stop] : o.stop;
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) {
      throw withCode(new TypeError(`${where}: stop must be a non-empty string or an array of them`), ErrorCode.InvalidArg);
    }
    if (stop.length > 0 && numBeams > 1) throw withCode(new RangeError(`${where}: stop strings are not supported with numBeams > 1`), ErrorCode.OutOfRange);
    if (stop.length > 0 && !this.#tokenizer) throw withCode(new RangeError(`${where}: stop strings need a tokenizer`), ErrorCode.OutOfRange);
    const stopIds = o.stopTokenIds === undefined ? [] : Array.from(toTokenIds(o.stopTokenIds, cfg.vocab_size, `${where}: stopTokenIds`));
    const eos = cfg.eos_token_id;
    optionalBoolean(o.ignoreEos, 'ignoreEos', where);
    if (eos !== null && eos !== undefined && o.ignoreEos !== true && !stopIds.includes(eos)) stopIds.push(eos);
    const truncate = o.truncate === undefined ? 'none' : oneOf(o.truncate, ['none', 'start'] as const, 'truncate', where);
    if (o.lengthPenalty !== undefined) finiteNumber(o.lengthPenalty, 'lengthPenalty', where);
    optionalBoolean(o.earlyStopping, 'earlyStopping', where);
    optionalSignal(o.signal, where);
    let ids: Uint32Array;
    if (typeof prompt === 'string') ids = prompt.length ? this.tokenizer.encode(prompt) : new Uint32Array(0);
    else if ((prompt as ArrayLike<number>)?.length === 0 && (ArrayBuffer.isView(prompt) || Array.isArray(prompt))) ids = new Uint32Array(0);
    else ids = toTokenIds(prompt, cfg.vocab_size, `${where}: prompt`);
    // An empty prompt starts from <|endoftext|>, as transformers does with bos_token_id.
    if (ids.length === 0) ids = Uint32Array.of(cfg.bos_token_id ?? cfg.eos_token_id ?? 0);
    if (ids.length >= cfg.n_positions || (truncate === 'start' && ids.length + maxNewTokens > cfg.n_positions)) {
      if (truncate !== 'start') {
        throw withCode(new RangeError(`${where}: the prompt has ${ids.length} tokens, which leaves no room for new tokens in n_positions (${cfg.n_positions}); pass truncate: 'start' to drop its oldest tokens`), ErrorCode.OutOfRange);
      }
      ids = ids.slice(ids.length - Math.max(1, cfg.n_positions - maxNewTokens));
    }
    const generation = new Generation({ tokenizer: this.#tokenizer, promptTokens: ids.length, rows: numBeams > 1 ? 1 : numReturn,
      beams: numBeams > 1, stop, logprobs: logprobs >= 0, keepAlive: this });
    const handle = binding.generate(this.#native, ids, { ...sampler.toNative(), maxNewTokens, numBeams, numReturnSequences: numReturn,
      lengthPenalty: o.lengthPenalty ?? 1, earlyStopping: o.earlyStopping ?? false, seed, logprobs,
      stopTokenIds: Uint32Array.from(stopIds) }, generation.onEvent);
    generation.attach(handle, o.signal);
    return generation;
  }

  /** Runs every prompt (batched by the engine) and resolves with their first results, in order. */
  async generateBatch(prompts: (string | Uint32Array | number[])[], opts?: GenerateOptions): Promise<GenerationResult[]> {
    if (!Array.isArray(prompts)) throw withCode(new TypeError('Model.generateBatch: prompts must be an array'), ErrorCode.InvalidArg);
    const gens = prompts.map((p) => this.generate(p, opts)); // all queued before the first await
    return Promise.all(gens.map((g) => g.result()));
  }

  /**
   * Frees the weights and KV cache (after any running call finishes). Running generations
   * end with finishReason 'abort'. Idempotent.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#native.dispose();
  }

  #check(where: string): void {
    if (this.#disposed) throw withCode(new Error(`${where}: the model has been disposed`), ErrorCode.Disposed);
  }
}

function isBatch(ids: unknown): boolean {
  return Array.isArray(ids) && ids.length > 0 && typeof ids[0] !== 'number';
}
