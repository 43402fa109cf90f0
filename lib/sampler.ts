// Sampler: how the next token is chosen. Checked here, applied natively on the engine
// thread (native/engine/sampler.h) in transformers' order: logitBias, repetitionPenalty,
// presence/frequencyPenalty, noRepeatNgramSize, then (unless greedy) temperature, topK,
// topP, minP, typicalP and one draw from the request's own seeded random stream.
import { ErrorCode, withCode } from './errors.js';
import { checkOptions, describe, finiteNumber, integer } from './options.js';

export interface SamplerOptions {
  /** 0 = greedy (argmax after the penalties). Default 1, as transformers' do_sample. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 50, as transformers. */
  topK?: number;
  /** Nucleus sampling mass in (0, 1]; 1 = off (default). */
  topP?: number;
  /** Drop tokens less likely than minP x the most likely one, in [0, 1]; 0 = off (default). */
  minP?: number;
  /** Locally typical sampling mass in (0, 1]; 1 = off (default). */
  typicalP?: number;
  /** transformers' repetition_penalty (> 0; 1 = off): over the prompt and the generated tokens. */
  repetitionPenalty?: number;
  /** OpenAI's presence penalty (subtracted once from every generated token's logit). */
  presencePenalty?: number;
  /** OpenAI's frequency penalty (subtracted per occurrence in the generated tokens). */
  frequencyPenalty?: number;
  /** Never repeat an n-gram of this size (0 = off). */
  noRepeatNgramSize?: number;
  /** Added to the raw logits of these token ids (before everything else). */
  logitBias?: Record<number, number>;
  /** Seed of the random stream (default: random). Same seed + same prompt = same tokens. */
  seed?: number;
}

export const SAMPLER_KEYS = ['temperature', 'topK', 'topP', 'minP', 'typicalP', 'repetitionPenalty', 'presencePenalty',
  'frequencyPenalty', 'noRepeatNgramSize', 'logitBias', 'seed'] as const;

function rangeError(where: string, msg: string): RangeError {
  return withCode(new RangeError(`${where}: ${msg}`), ErrorCode.OutOfRange);
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly typicalP: number;
  readonly repetitionPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly noRepeatNgramSize: number;
  readonly logitBias: ReadonlyArray<readonly [number, number]>;
  readonly seed: number | undefined;

  constructor(opts?: SamplerOptions) {
    const where = 'Sampler';
    const o = checkOptions(opts, SAMPLER_KEYS, where) as SamplerOptions;
    this.temperature = o.temperature === undefined ? 1 : finiteNumber(o.temperature, 'temperature', where);
    if (this.temperature < 0) throw rangeError(where, `temperature must be >= 0 (got ${this.temperature})`);
    this.topK = o.topK === undefined ? 50 : integer(o.topK, 'topK', where);
    if (this.topK < 0) throw rangeError(where, `topK must be >= 0 (got ${this.topK})`);
    this.topP = o.topP === undefined ? 1 : finiteNumber(o.topP, 'topP', where);
    if (!(this.topP > 0 && this.topP <= 1)) throw rangeError(where, `topP must be in (0, 1] (got ${this.topP})`);
    this.minP = o.minP === undefined ? 0 : finiteNumber(o.minP, 'minP', where);
    if (!(this.minP >= 0 && this.minP <= 1)) throw rangeError(where, `minP must be in [0, 1] (got ${this.minP})`);
    this.typicalP = o.typicalP === undefined ? 1 : finiteNumber(o.typicalP, 'typicalP', where);
    if (!(this.typicalP > 0 && this.typicalP <= 1)) throw rangeError(where, `typicalP must be in (0, 1] (got ${this.typicalP})`);
    this.repetitionPenalty = o.repetitionPenalty === undefined ? 1 : finiteNumber(o.repetitionPenalty, 'repetitionPenalty', where);
    if (!(this.repetitionPenalty > 0)) throw rangeError(where, `repetitionPenalty must be > 0 (got ${this.repetitionPenalty})`);
    this.presencePenalty = o.presencePenalty === undefined ? 0 : finiteNumber(o.presencePenalty, 'presencePenalty', where);
    this.frequencyPenalty = o.frequencyPenalty === undefined ? 0 : finiteNumber(o.frequencyPenalty, 'frequencyPenalty', where);
    for (const k of ['presencePenalty', 'frequencyPenalty'] as const) {
      if (Math.abs(this[k]) > 100) throw rangeError(where, `${k} must be in [-100, 100] (got ${this[k]})`);
    }
    this.noRepeatNgramSize = o.noRepeatNgramSize === undefined ? 0 : integer(o.noRepeatNgramSize, 'noRepeatNgramSize', where);
    if (this.noRepeatNgramSize < 0) throw rangeError(where, `noRepeatNgramSize must be >= 0 (got ${this.noRepeatNgramSize})`);
    const bias: [number, number][] = [];
    if (o.logitBias !== undefined) {
      if (o.logitBias === null || typeof o.logitBias !== 'object' || Array.isArray(o.logitBias)) {
        throw withCode(new TypeError(`${where}: logitBias must be an object { tokenId: bias }`), ErrorCode.InvalidArg);
      }
      for (const [k, v] of Object.entries(o.logitBias)) {
        const id = Number(k);
        if (!Number.isInteger(id) || id < 0) throw rangeError(where, `logitBias key '${k}' is not a token id`);
        bias.push([id, finiteNumber(v, `logitBias[${k}]`, where)]);
      }
    }
    this.logitBias = Object.freeze(bias);
    if (o.seed !== undefined && (!Number.isSafeInteger(o.seed) || o.seed < 0)) {
      throw rangeError(where, `seed must be a non-negative safe integer (got ${describe(o.seed)})`);
    }
    this.seed = o.seed;
    Object.freeze(this);
  }

  /** The deterministic sampler (temperature 0): what generate() uses without a sampler. */
  static greedy(): Sampler {
    return new Sampler({ temperature: 0 });
  }

  get greedy(): boolean {
    return this.temperature === 0;
  }

  /** @internal the fields the native engine reads. */
  toNative(): Record<string, unknown> {
    return { temperature: this.temperature, topK: this.topK, topP: this.topP, minP: this.minP, typicalP: this.typicalP,
      repetitionPenalty: this.repetitionPenalty, presencePenalty: this.presencePenalty, frequencyPenalty: this.frequencyPenalty,
      noRepeatNgramSize: this.noRepeatNgramSize, logitBias: this.logitBias.map((p) => [...p]) };
  }
}
