// The measurements of one bench row (one model on one device and dtype), through the public
// API only: prefill with Model.forward, decode and time to first token with concurrent
// Model.generate() streams, embedding with Model.embed. Inputs come from a seeded generator so
// that every row (and every run) sees the same token ids. Runs inside the row's child process
// (child.ts), so peak RSS is the row's own.
import type { Model } from '../model.js';

export interface BenchSettings {
  /** Tokens per prompt (prefill, decode prompts, longest embedding text). */
  promptTokens: number;
  /** Tokens generated per request in the decode runs (>= 2: decode is timed after the first tokens). */
  newTokens: number;
  /** Concurrent generate() requests, one decode run each. */
  batchSizes: number[];
  /** Prompts in the prefill forward. */
  prefillBatch: number;
  /** Texts per Model.embed call (lengths mixed between promptTokens / 8 and promptTokens). */
  embedTexts: number;
  /** Timed runs per workload; the median is reported. */
  repeat: number;
  /** Untimed runs per workload before timing. */
  warmup: number;
  /** Seed of the inputs (and of random weights). */
  seed: number;
}

/** Metric id -> value. null: not measurable here (e.g. peak device memory is not exposed). */
export type Metrics = Record<string, number | null>;

export interface RowMeasurement {
  metrics: Metrics;
  /** Every timed sample behind a median metric (same ids). */
  samples: Record<string, number[]>;
  /** The most sequences one engine step held during the row (forward, embed and generate steps alike). */
  maxStepSequences: number;
  /** Per decode batch size: sequences per engine step during its timed runs (median): how much of the
   *  batch the engine really ran together (prefills are staggered, early requests finish first). */
  decodeStepSequences: Record<string, number>;
}

/** Metric ids; report.ts gives each a label, unit and direction. */
export const metricId = {
  load: 'load_s',
  prefill: 'prefill_tok_s',
  decode: (b: number) => `decode_tok_s@${b}`,
  generate: (b: number) => `generate_tok_s@${b}`,
  ttft: (b: number) => `ttft_ms@${b}`,
  embed: 'embed_texts_s',
  peakRss: 'peak_rss_bytes',
  weights: 'weight_bytes',
  kvCache: 'kv_cache_bytes',
  peakDevice: 'peak_device_bytes',
} as const;

/** mulberry32: a small, fast, seedable generator (uniform in [0, 1)). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomIds(rand: () => number, n: number, vocab: number): Uint32Array {
  return Uint32Array.from({ length: n }, () => Math.floor(rand() * vocab));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** KV-cache tokens that let the largest decode batch run at once (the engine admits a request
 *  only when its worst case fits, so a smaller cache would serialise the batch). */
export function kvCacheTokensFor(s: BenchSettings, nPositions: number): number {
  const block = 16; // the KV block size (native/model/gpt2_model.h): raise this with it
  const perSequence = Math.ceil((s.promptTokens + s.newTokens) / block) * block + block;
  return Math.max(4 * nPositions, Math.max(...s.batchSizes) * perSequence);
}

const now = () => performance.now();

interface DecodeRun {
  decodeTokS: number;
  generateTokS: number;
  ttftMs: number[];
  stepSequences: number;
}

/** `batch` concurrent greedy generate() requests of newTokens each, EOS ignored. */
async function decodeRun(model: Model, prompts: Uint32Array[], newTokens: number): Promise<DecodeRun> {
  const before = model.engineStats;
  const start = now();
  const gens = prompts.map((p) => model.generate(p, { maxNewTokens: newTokens, ignoreEos: true }));
  // Arrival time of every token, per request.
  const streams = await Promise.all(
    gens.map(async (g) => {
      const times: number[] = [];
      for await (const _ of g) times.push(now());
      return times;
    }),
  );
  const total = streams.reduce((a, t) => a + t.length, 0);
  // Decode: from the moment every request has its first token (all prompts prefilled, so every
  // step is a pure decode step of the whole batch) to the last token.
  const allStarted = Math.max(...streams.map((t) => t[0]));
  const end = Math.max(...streams.map((t) => t[t.length - 1]));
  const decoded = streams.reduce((a, t) => a + t.filter((x) => x > allStarted).length, 0);
  const after = model.engineStats;
  return {
    stepSequences: (after.sequences - before.sequences) / Math.max(1, after.steps - before.steps),
    decodeTokS: decoded > 0 && end > allStarted ? decoded / ((end - allStarted) / 1000) : NaN,
    generateTokS: total / ((end - start) / 1000),
    ttftMs: streams.map((t) => t[0] - start),
  };
}

/**
 * Runs every workload of `s` on `model`: warm-up runs, then `repeat` timed runs each, medians.
 * `onStep` is called after each timed run (progress). Load time and memory are the caller's.
 */
export async function measureModel(model: Model, s: BenchSettings, onStep?: () => void): Promise<RowMeasurement> {
  const vocab = model.config.vocab_size;
  const rand = seededRandom(s.seed);
  // Fresh prompts for every run, drawn in the same order in every row (so rows see the same ids):
  // a cache keyed on the prompt could not make a repeat cheaper.
  const prompts = (n: number) => Array.from({ length: n }, () => randomIds(rand, s.promptTokens, vocab));
  const minLen = Math.max(1, Math.floor(s.promptTokens / 8));
  const texts = Array.from({ length: s.embedTexts }, () =>
    randomIds(rand, minLen + Math.floor(rand() * (s.promptTokens - minLen + 1)), vocab),
  );

  const samples: Record<string, number[]> = {};
  const add = (id: string, v: number) => (samples[id] ??= []).push(v);
  const stepSequences: Record<string, number[]> = {};
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t = now();
    await fn();
    return (now() - t) / 1000;
  };

  for (let w = 0; w < s.warmup; w++) {
    await model.forward(prompts(s.prefillBatch), { logits: 'last' });
    // Short runs at each batch size: thread pools, KV blocks and (CUDA) decode graphs get set up.
    for (const b of s.batchSizes) await decodeRun(model, prompts(b), Math.min(s.newTokens, 4));
    await model.embed(texts.slice(0, Math.min(texts.length, 8)));
  }

  for (let r = 0; r < s.repeat; r++) {
    const prefillInput = prompts(s.prefillBatch);
    const t = await timed(() => model.forward(prefillInput, { logits: 'last' }));
    add(metricId.prefill, (s.prefillBatch * s.promptTokens) / t);
    onStep?.();
    for (const b of s.batchSizes) {
      const d = await decodeRun(model, prompts(b), s.newTokens);
      if (Number.isFinite(d.decodeTokS)) add(metricId.decode(b), d.decodeTokS);
      add(metricId.generate(b), d.generateTokS);
      add(metricId.ttft(b), median(d.ttftMs));
      (stepSequences[b] ??= []).push(d.stepSequences);
      onStep?.();
    }
    const e = await timed(() => model.embed(texts));
    add(metricId.embed, s.embedTexts / e);
    onStep?.();
  }

  const metrics: Metrics = {};
  for (const [id, xs] of Object.entries(samples)) metrics[id] = median(xs);
  const stats = model.stats;
  metrics[metricId.weights] = stats.weightBytes;
  metrics[metricId.kvCache] = stats.kvCacheBytes;
  const decodeStepSequences = Object.fromEntries(Object.entries(stepSequences).map(([b, xs]) => [b, median(xs)]));
  return { metrics, samples, maxStepSequences: model.engineStats.maxStepSequences, decodeStepSequences };
}

/** Timed steps of measureModel (for a progress total). */
export function stepsPerRow(s: BenchSettings): number {
  return s.repeat * (s.batchSizes.length + 2);
}
