// Model.embed through the engine loop: golden parity (embed_pool cases, and every layer of
// the forward cases' hidden_states), pooling against a plain JS reference over forward(),
// batch invariance, merging of concurrent calls, truncation, windows, and bad input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, Model } from '../lib/index.js';
import { windowStarts } from '../lib/embed.js';
import { cases, expectClose, golden, goldenFile, haveFixtures, manifest, modelDir, modelNames } from './helpers/fixtures.js';

/** Plain reference pooling over row-major [n, E] rows. */
function pool(rows: Float32Array, E: number, pooling: 'mean' | 'first' | 'last'): Float32Array {
  const n = rows.length / E;
  if (pooling === 'first') return rows.slice(0, E);
  if (pooling === 'last') return rows.slice((n - 1) * E);
  const out = new Float32Array(E);
  for (let p = 0; p < n; p++) for (let d = 0; d < E; d++) out[d]! += rows[p * E + d]! / n;
  return out;
}

/** LayerNorm of each row (biased variance), as ln_f. */
function layerNorm(rows: Float32Array, E: number, gamma: Float32Array, beta: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(rows.length);
  for (let r = 0; r < rows.length / E; r++) {
    let mean = 0, v = 0;
    for (let d = 0; d < E; d++) mean += rows[r * E + d]!;
    mean /= E;
    for (let d = 0; d < E; d++) v += (rows[r * E + d]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / E + eps);
    for (let d = 0; d < E; d++) out[r * E + d] = (rows[r * E + d]! - mean) * inv * gamma[d]! + beta[d]!;
  }
  return out;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function ids(n: number, salt: number): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => (i * 7919 + salt * 104729) % 50257);
}

describe.skipIf(!haveFixtures)('Model.embed: golden parity (transformers 4.41.2, float32)', () => {
  const models = new Map<string, Model>();
  beforeAll(async () => {
    for (const name of modelNames) models.set(name, await Model.load(modelDir(name)));
  });
  afterAll(() => { for (const m of models.values()) m.dispose(); });

  for (const c of cases.filter((x) => x.kind === 'embed_pool')) {
    it(`embed_pool ${c.id}: mean pooling of last_hidden_state, from ids and from texts, in one call`, async () => {
      const m = models.get(c.model)!;
      const want = golden(c.expected.pooled!);
      const E = m.config.n_embd;
      const fromIds = await m.embed(c.input.input_ids_unpadded!.map((t) => new Uint32Array(t)));
      expectClose(Float32Array.from(fromIds.flatMap((v) => Array.from(v))), want, c.tolerance, 'pooled (ids)');
      const fromTexts = await m.embed(c.input.texts!);
      fromTexts.forEach((v, i) => expectClose(v, want.subarray(i * E, (i + 1) * E), c.tolerance, `pooled text ${i}`));
      // normalize: the same direction, unit length.
      const unit = await m.embed(c.input.texts!, { normalize: true });
      unit.forEach((v, i) => {
        const w = want.subarray(i * E, (i + 1) * E);
        const norm = Math.hypot(...w);
        expectClose(v, w.map((x) => x / norm), c.tolerance, `normalized text ${i}`);
      });
    });
  }

  for (const c of cases.filter((x) => x.kind === 'forward')) {
    it(`forward ${c.id}: every layer, pooling and finalNorm against hidden_states`, async () => {
      const m = models.get(c.model)!;
      const L = m.config.n_layer, E = m.config.n_embd, T = c.input.input_ids!.length;
      const hs = golden(c.expected.hidden_states!);
      const text = new Uint32Array(c.input.input_ids!);
      const weights = goldenFile(`${manifest.models[c.model].dir}/model.safetensors`);
      const prefix = c.model === 'tiny_prefixed_lmhead' ? 'transformer.' : '';
      const lnf = (rows: Float32Array) => layerNorm(rows, E, weights.get(`${prefix}ln_f.weight`).data,
        weights.get(`${prefix}ln_f.bias`).data, m.config.layer_norm_epsilon);
      const fp16 = c.model === 'tiny_fp16';
      for (const pooling of ['mean', 'first', 'last'] as const) {
        for (let layer = 0; layer <= L; layer++) {
          const rows = hs.subarray(layer * T * E, (layer + 1) * T * E);
          const [v] = await m.embed([text], { pooling, layer });
          expectClose(v!, pool(rows, E, pooling), c.tolerance, `layer ${layer} ${pooling}`);
          // The same layer counted from the end.
          const [neg] = await m.embed([text], { pooling, layer: layer - L - 1 });
          expect(Array.from(neg!)).toEqual(Array.from(v!));
          if (layer < L && !fp16) {
            // ln_f applied to an intermediate layer.
            const [normed] = await m.embed([text], { pooling, layer, finalNorm: true });
            expectClose(normed!, pool(lnf(rows), E, pooling), c.tolerance, `layer ${layer} ${pooling} finalNorm`);
          }
        }
        // finalNorm false on the last layer: the last block's raw output, whose ln_f is last_hidden_state.
        if (pooling !== 'mean' && !fp16) {
          const [raw] = await m.embed([text], { pooling, finalNorm: false });
          const [normed] = await m.embed([text], { pooling });
          expect(maxDiff(raw!, normed!)).toBeGreaterThan(1e-3);
          expectClose(lnf(raw!), normed!, c.tolerance, `ln_f(raw last block) ${pooling}`);
        }
      }
    });
  }
});

describe('Model.embed on random gpt2-shaped weights', () => {
  let m: Model;
  beforeAll(async () => {
    m = await Model.random({ n_layer: 2, n_embd: 64, n_head: 4, n_positions: 96 }, { seed: 3 });
  });
  afterAll(() => m.dispose());

  it('pools like a plain JS reference over forward().lastHiddenState', async () => {
    const texts = [ids(1, 1), ids(7, 2), ids(33, 3), ids(96, 4)];
    const fwd = await m.forward(texts, { logits: 'none' });
    for (const pooling of ['mean', 'first', 'last'] as const) {
      const got = await m.embed(texts, { pooling });
      got.forEach((v, i) => expect(maxDiff(v, pool(fwd.lastHiddenState[i]!, 64, pooling))).toBeLessThan(1e-5));
    }
  });

  it('a text\'s vector does not depend on the rest of the batch (within 1e-5)', async () => {
    const probe = ids(20, 99);
    const [alone] = await m.embed([probe]);
    const others = Array.from({ length: 24 }, (_, i) => ids(1 + ((i * 13) % 90), i));
    // In one call among others, and as one of many concurrent calls.
    const mixed = await m.embed([...others.slice(0, 10), probe, ...others.slice(10)]);
    expect(maxDiff(mixed[10]!, alone!)).toBeLessThan(1e-5);
    const concurrent = await Promise.all([...others.map((t) => m.embed([t])), m.embed([probe])]);
    expect(maxDiff(concurrent[others.length]![0]!, alone!)).toBeLessThan(1e-5);
    // Results come back in input order: each equals that text alone.
    for (const i of [0, 5, 23]) {
      const [a] = await m.embed([others[i]!]);
      expect(maxDiff(mixed[i < 10 ? i : i + 1]!, a!)).toBeLessThan(1e-5);
      expect(maxDiff(concurrent[i]![0]!, a!)).toBeLessThan(1e-5);
    }
  });

  it('merges concurrent embed() calls into shared forward steps', async () => {
    const before = m.engineStats.steps;
    const calls = Array.from({ length: 16 }, (_, i) => m.embed([ids(10 + i, i + 50)]));
    const out = await Promise.all(calls);
    expect(out.every((r) => r.length === 1 && r[0]!.length === 64)).toBe(true);
    const st = m.engineStats;
    expect(st.maxStepSequences).toBeGreaterThan(1);
    expect(st.steps - before).toBeLessThan(16);
  });

  it('truncates at the end or the start, or rejects naming the item', async () => {
    const long = ids(130, 7);
    const [end] = await m.embed([long], { truncate: 'end' });
    const [start] = await m.embed([long], { truncate: 'start' });
    const [head] = await m.embed([long.subarray(0, 96)]);
    const [tail] = await m.embed([long.subarray(130 - 96)]);
    expect(maxDiff(end!, head!)).toBeLessThan(1e-6);
    expect(maxDiff(start!, tail!)).toBeLessThan(1e-6);
    const err = await m.embed([ids(3, 1), long]).catch((e) => e);
    expect(err).toBeInstanceOf(RangeError);
    expect(err.code).toBe(ErrorCode.OutOfRange);
    expect(err.message).toMatch(/item 1 has 130 tokens/);
  });

  it('averages overlapping windows', async () => {
    expect(windowStarts(10, 4, 3)).toEqual([0, 3, 6]);
    expect(windowStarts(11, 4, 3)).toEqual([0, 3, 6, 7]);
    expect(windowStarts(4, 4, 2)).toEqual([0]);
    const long = ids(200, 8);
    const [v] = await m.embed([long], { window: { size: 64, stride: 48 } });
    const parts = await m.embed(windowStarts(200, 64, 48).map((s) => long.subarray(s, s + 64)));
    const mean = new Float32Array(64);
    for (const p of parts) p.forEach((x, d) => { mean[d]! += x / parts.length; });
    expect(maxDiff(v!, mean)).toBeLessThan(1e-6);
    const [unit] = await m.embed([long], { window: { size: 64, stride: 48 }, normalize: true });
    expect(Math.hypot(...unit!)).toBeCloseTo(1, 5);
  });

  it('rejects bad input with typed errors naming the item', async () => {
    const cases: [unknown, unknown, ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor, string, RegExp][] = [
      [[], undefined, RangeError, ErrorCode.OutOfRange, /no texts/],
      [['a', ''], undefined, RangeError, ErrorCode.OutOfRange, /item 1 is an empty string/],
      [['a', 'b', 3], undefined, TypeError, ErrorCode.InvalidArg, /item 2 must be a string/],
      [['a', null], undefined, TypeError, ErrorCode.InvalidArg, /item 1 must be a string/],
      [[new Uint32Array(0)], undefined, RangeError, ErrorCode.OutOfRange, /item 0: no token ids/],
      [[new Uint32Array([1, 60000])], undefined, RangeError, ErrorCode.OutOfRange, /item 0, position 1/],
      [['a'.repeat(5) + ' x'.repeat(200)], undefined, RangeError, ErrorCode.OutOfRange, /item 0 has \d+ tokens/],
      [42, undefined, TypeError, ErrorCode.InvalidArg, /input must be/],
      [['a'], { pooling: 'max' }, TypeError, ErrorCode.InvalidArg, /pooling must be one of/],
      [['a'], { layer: 3 }, RangeError, ErrorCode.OutOfRange, /layer 3 is out of range/],
      [['a'], { layer: -4 }, RangeError, ErrorCode.OutOfRange, /layer -4/],
      [['a'], { layer: 1.5 }, TypeError, ErrorCode.InvalidArg, /layer must be an integer/],
      [['a'], { normalize: 'yes' }, TypeError, ErrorCode.InvalidArg, /normalize must be a boolean/],
      [['a'], { truncate: 'middle' }, TypeError, ErrorCode.InvalidArg, /truncate must be one of/],
      [['a'], { window: { size: 200, stride: 10 } }, RangeError, ErrorCode.OutOfRange, /window.size/],
      [['a'], { window: { size: 20, stride: 30 } }, RangeError, ErrorCode.OutOfRange, /window.stride/],
      [['a'], { nope: 1 }, TypeError, ErrorCode.InvalidArg, /unknown option 'nope'/],
    ];
    for (const [input, opts, kind, code, message] of cases) {
      const err = await m.embed(input as string[], opts as object).then(() => undefined, (e) => e);
      expect(err, `${JSON.stringify(input)?.slice(0, 40)} ${JSON.stringify(opts)}`).toBeInstanceOf(kind);
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
    }
  });

  it('rejects after dispose, and finishes calls made before it', async () => {
    const m2 = await Model.random({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 64 }, { seed: 1 });
    const pending = m2.embed([ids(30, 1), ids(40, 2)]);
    m2.dispose();
    expect((await pending).length).toBe(2);
    const err = await m2.embed(['a']).catch((e) => e);
    expect(err.code).toBe(ErrorCode.Disposed);
  });
});
