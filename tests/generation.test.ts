// Model.generate through the engine: transformers' greedy and beam goldens token for token
// (single and batched), seeded determinism alone vs inside a batch, streaming, stop strings
// and tokens, logprobs, abort and dispose, the KV queue, and option errors.
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, Model, Sampler } from '../lib/index.js';
import { root, runWithAddon } from './helpers/addon-child.js';
import { cases, goldenFile, haveFixtures, modelDir, modelNames } from './helpers/fixtures.js';

const EOS = 50256;

/** transformers' new tokens up to (not including) the first EOS, as generate() reports them. */
function untilEos(ids: number[]): number[] {
  const i = ids.indexOf(EOS);
  return i < 0 ? ids : ids.slice(0, i);
}

describe.skipIf(!haveFixtures)('generate: transformers goldens', () => {
  const models = new Map<string, Model>();
  beforeAll(async () => {
    for (const name of modelNames) models.set(name, await Model.load(modelDir(name)));
  });
  afterAll(() => { for (const m of models.values()) m.dispose(); });

  const greedy = cases.filter((c) => c.kind === 'greedy');
  it('has greedy and beam cases', () => {
    expect(greedy.length).toBeGreaterThan(2);
    expect(cases.some((c) => c.kind === 'beam')).toBe(true);
  });

  for (const c of greedy) {
    it(`${c.id}: greedy, each prompt alone and all at once`, async () => {
      const m = models.get(c.model)!;
      const prompts = c.input.input_ids_unpadded!.map((p) => Uint32Array.from(p));
      const want = c.expected_ids!.new_tokens!.map(untilEos);
      const maxNewTokens = c.options!.max_new_tokens as number;
      for (let i = 0; i < prompts.length; i++) {
        const r = await m.generate(prompts[i]!, { maxNewTokens }).result();
        expect(Array.from(r.tokenIds), `prompt ${i}`).toEqual(want[i]);
        expect(r.finishReason).toBe(want[i]!.length < maxNewTokens ? 'stop' : 'length');
        expect(r.usage).toEqual({ promptTokens: prompts[i]!.length, completionTokens: want[i]!.length, totalTokens: prompts[i]!.length + want[i]!.length });
      }
      const batch = await m.generateBatch(prompts, { maxNewTokens });
      expect(batch.map((r) => Array.from(r.tokenIds))).toEqual(want);
    });
  }

  for (const c of cases.filter((x) => x.kind === 'beam')) {
    it(`${c.id}: beam search sequences and sequences_scores`, async () => {
      const m = models.get(c.model)!;
      const prompt = Uint32Array.from(c.input.input_ids!);
      const o = c.options!;
      const opts = { numBeams: o.num_beams as number, numReturnSequences: o.num_return_sequences as number,
        maxNewTokens: o.max_new_tokens as number, lengthPenalty: o.length_penalty as number, earlyStopping: o.early_stopping as boolean };
      const want = c.expected_ids!.sequences!.map((s) => untilEos(s.slice(prompt.length)));
      const scores = goldenFile(c.expected.sequences_scores!.file).get(c.expected.sequences_scores!.key).data;
      const check = (results: { tokenIds: Uint32Array; score?: number }[]) => {
        expect(results.map((r) => Array.from(r.tokenIds))).toEqual(want);
        results.forEach((r, i) => expect(Math.abs(r.score! - scores[i]!)).toBeLessThanOrEqual(c.tolerance.atol));
      };
      check(await m.generate(prompt, opts).results());
      // Batched with other work: two beam requests and a greedy one at once.
      const [a, b, g] = [m.generate(prompt, opts), m.generate(prompt, opts), m.generate(prompt.subarray(0, 4), { maxNewTokens: 5 })];
      check(await a.results());
      check(await b.results());
      expect((await g.result()).tokenIds.length).toBeGreaterThan(0);
      // The iterator streams the best sequence.
      const streamed: number[] = [];
      for await (const t of m.generate(prompt, opts)) streamed.push(t.tokenId);
      expect(streamed).toEqual(want[0]);
    });
  }
});

describe('generate on a random model', () => {
  let m: Model;
  beforeAll(async () => {
    m = await Model.random({ n_layer: 2, n_embd: 64, n_head: 4, n_positions: 128 }, { seed: 3, kvCacheTokens: 2048 });
  });
  afterAll(() => m.dispose());

  it('streams tokens whose text concatenates to result().text', async () => {
    const g = m.generate('Hello there', { maxNewTokens: 12, sampler: { temperature: 1, seed: 5 }, ignoreEos: true });
    const parts: string[] = [];
    const ids: number[] = [];
    for await (const t of g) { parts.push(t.text); ids.push(t.tokenId); }
    const r = await g.result();
    expect(ids).toEqual(Array.from(r.tokenIds));
    expect(parts.join('')).toBe(r.text);
    expect(r.text).toBe(m.tokenizer.decode(r.tokenIds));
    expect(r.finishReason).toBe('length');
    expect(r.tokenIds.length).toBe(12);
  });

  it('a seeded request gives the same tokens alone and inside any batch', async () => {
    const opts = { maxNewTokens: 16, sampler: new Sampler({ temperature: 0.9, topK: 0, topP: 0.95, seed: 1234 }), ignoreEos: true };
    const alone = Array.from((await m.generate('The same prompt', opts).result()).tokenIds);
    const others = Array.from({ length: 7 }, (_, i) => m.generate(`noise ${i} `.repeat(i + 1), { maxNewTokens: 5 + i, sampler: { temperature: 1 }, ignoreEos: true }));
    const inBatch = m.generate('The same prompt', opts);
    const again = Array.from((await inBatch.result()).tokenIds);
    await Promise.all(others.map((g) => g.result()));
    expect(again).toEqual(alone);
    // A different seed gives a different sequence (16 draws from ~50k tokens).
    const other = Array.from((await m.generate('The same prompt', { ...opts, seed: 99 }).result()).tokenIds);
    expect(other).not.toEqual(alone);
  });

  it("a row's logits are bitwise the same alone and in a ragged batch", async () => {
    const a = Uint32Array.of(1, 2, 3, 4, 5);
    const alone = (await m.forward([a])).logits![0]!;
    const batched = (await m.forward([Uint32Array.of(9, 8), a, Uint32Array.from({ length: 40 }, (_, i) => i + 100)])).logits![1]!;
    expect(Buffer.from(batched.buffer).equals(Buffer.from(alone.buffer))).toBe(true);
  });

  it('numReturnSequences rows share the prompt and come back best first', async () => {
    const free = m.stats.kvFreeBlocks;
    const rs = await m.generate('one prompt', { maxNewTokens: 8, numReturnSequences: 4, sampler: { temperature: 1.5, seed: 7 }, ignoreEos: true }).results();
    expect(rs.length).toBe(4);
    for (let i = 1; i < rs.length; i++) expect(rs[i - 1]!.score!).toBeGreaterThanOrEqual(rs[i]!.score!);
    expect(new Set(rs.map((r) => Array.from(r.tokenIds).join())).size).toBeGreaterThan(1);
    expect(m.stats.kvFreeBlocks).toBe(free);
  });

  it('stops at stop strings across token boundaries and trims them', async () => {
    const base = await m.generate('abc', { maxNewTokens: 12, ignoreEos: true }).result();
    const text = base.text;
    expect(text.length).toBeGreaterThan(4);
    // A stop string spanning the boundary between two tokens' texts.
    const ids = Array.from(base.tokenIds);
    const first = m.tokenizer.decode(ids.slice(0, 2));
    const cut = m.tokenizer.decode(ids.slice(0, 1)).length - 1;
    const stop = first.slice(Math.max(cut, 0), cut + 2);
    const g = m.generate('abc', { maxNewTokens: 12, ignoreEos: true, stop: [stop] });
    let streamed = '';
    for await (const t of g) streamed += t.text;
    const r = await g.result();
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(streamed).toBe(r.text);
    // A stop token ends it too, not included.
    const s = await m.generate('abc', { maxNewTokens: 12, ignoreEos: true, stopTokenIds: [ids[3]!] }).result();
    expect(Array.from(s.tokenIds)).toEqual(ids.slice(0, ids.indexOf(ids[3]!)));
    expect(s.finishReason).toBe('stop');
  });

  it('logprobs with top alternatives', async () => {
    const r = await m.generate('x', { maxNewTokens: 4, logprobs: 3, ignoreEos: true }).result();
    expect(r.logprobs!.length).toBe(4);
    const g = m.generate('x', { maxNewTokens: 4, logprobs: 3, ignoreEos: true });
    for await (const t of g) {
      expect(t.topLogprobs!.length).toBe(3);
      expect(t.topLogprobs![0]!.tokenId).toBe(t.tokenId); // greedy picks the best
      expect(t.logprob).toBeCloseTo(t.topLogprobs![0]!.logprob, 6);
      expect(t.logprob!).toBeLessThanOrEqual(0);
    }
  });

  it('an empty prompt starts from <|endoftext|>; an overlong one throws or is truncated', async () => {
    const a = await m.generate('', { maxNewTokens: 3, ignoreEos: true }).result();
    const b = await m.generate(Uint32Array.of(EOS), { maxNewTokens: 3, ignoreEos: true }).result();
    expect(Array.from(a.tokenIds)).toEqual(Array.from(b.tokenIds));
    expect(a.usage.promptTokens).toBe(1);
    const long = Uint32Array.from({ length: 200 }, (_, i) => i);
    expect(() => m.generate(long)).toThrow(RangeError);
    const t = await m.generate(long, { truncate: 'start', maxNewTokens: 8, ignoreEos: true }).result();
    expect(t.usage.promptTokens).toBe(120);
    expect(t.tokenIds.length).toBe(8);
    // Near n_positions: ends with 'length' when the next input would not fit (positions 125..127
    // take the first three new tokens; the fourth is never fed back).
    const near = await m.generate(long.subarray(0, 125), { maxNewTokens: 20, ignoreEos: true }).result();
    expect(near.tokenIds.length).toBe(4);
    expect(near.finishReason).toBe('length');
  });

  it('an AbortSignal ends a request with finishReason abort and frees its blocks', async () => {
    const free = m.stats.kvFreeBlocks;
    const ac = new AbortController();
    const g = m.generate('abort me', { maxNewTokens: 100, ignoreEos: true, signal: ac.signal });
    let n = 0;
    for await (const _ of g) if (++n === 3) ac.abort();
    const r = await g.result();
    expect(r.finishReason).toBe('abort');
    expect(r.tokenIds.length).toBeLessThan(100);
    expect(m.stats.kvFreeBlocks).toBe(free);
    // Already aborted: never rejects.
    const pre = new AbortController();
    pre.abort();
    expect((await m.generate('x', { signal: pre.signal }).result()).finishReason).toBe('abort');
  });

  it('requests that do not fit the cache wait in order; one that never fits fails', async () => {
    const small = await Model.random({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 128 }, { seed: 1, kvCacheTokens: 128 });
    try {
      // Each needs 64 + 64 = 128 positions = the whole cache: they must run one after another.
      const prompts = [0, 1, 2].map((k) => Uint32Array.from({ length: 64 }, (_, i) => (i * 7 + k) % 1000));
      const gens = prompts.map((p) => small.generate(p, { maxNewTokens: 64, ignoreEos: true }));
      const rs = await Promise.all(gens.map((g) => g.result()));
      for (const r of rs) expect(r.tokenIds.length).toBe(64);
      const alone = await small.generate(prompts[2]!, { maxNewTokens: 64, ignoreEos: true }).result();
      expect(Array.from(rs[2]!.tokenIds)).toEqual(Array.from(alone.tokenIds));
      expect(() => small.generate(prompts[0]!, { maxNewTokens: 64, numReturnSequences: 4, sampler: { temperature: 1 } }))
        .toThrow(expect.objectContaining({ code: ErrorCode.KvCacheFull }));
    } finally {
      small.dispose();
    }
  });

  it('dispose() during generation ends it with abort', async () => {
    const d = await Model.random({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 128 }, { seed: 2 });
    const g = d.generate('going', { maxNewTokens: 100, ignoreEos: true });
    const it0 = g[Symbol.asyncIterator]();
    await it0.next();
    d.dispose();
    const r = await g.result();
    expect(r.finishReason).toBe('abort');
    expect(() => d.generate('x')).toThrow(expect.objectContaining({ code: ErrorCode.Disposed }));
  });

  it('bad options name the option', () => {
    const bad: [unknown, RegExp, Function][] = [
      [{ sampler: { temperature: -1 } }, /temperature/, RangeError],
      [{ sampler: { topP: 0 } }, /topP/, RangeError],
      [{ sampler: { topP: 1.5 } }, /topP/, RangeError],
      [{ sampler: { topK: -1 } }, /topK/, RangeError],
      [{ sampler: { minP: 2 } }, /minP/, RangeError],
      [{ sampler: { typicalP: 0 } }, /typicalP/, RangeError],
      [{ sampler: { repetitionPenalty: 0 } }, /repetitionPenalty/, RangeError],
      [{ sampler: { noRepeatNgramSize: 1.5 } }, /noRepeatNgramSize/, TypeError],
      [{ sampler: { temprature: 1 } }, /temprature/, TypeError],
      [{ numBeams: 0 }, /numBeams/, RangeError],
      [{ maxNewTokens: 0 }, /maxNewTokens/, RangeError],
      [{ numBeams: 2, numReturnSequences: 3 }, /numReturnSequences/, RangeError],
      [{ numBeams: 2, sampler: { temperature: 1 } }, /numBeams/, RangeError],
      [{ stop: [''] }, /stop/, TypeError],
      [{ logprobs: 'yes' }, /logprobs/, TypeError],
      [{ maxTokens: 3 }, /maxTokens/, TypeError],
      [{ truncate: 'end' }, /truncate/, TypeError],
      [{ signal: {} }, /signal/, TypeError],
    ];
    for (const [opts, re, kind] of bad) {
      expect(() => m.generate('x', opts as never), JSON.stringify(opts)).toThrow(re);
      expect(() => m.generate('x', opts as never)).toThrow(kind as never);
    }
    expect(() => new Sampler({ logitBias: { abc: 1 } as never })).toThrow(/logitBias/);
  });

  it('logitBias and penalties steer greedy choices', async () => {
    const plain = await m.generate('bias', { maxNewTokens: 1 }).result();
    const t = plain.tokenIds[0]!;
    const biased = await m.generate('bias', { maxNewTokens: 1, sampler: { temperature: 0, logitBias: { [t]: -1000 } } }).result();
    expect(biased.tokenIds[0]).not.toBe(t);
    const forced = await m.generate('bias', { maxNewTokens: 3, ignoreEos: true, sampler: { temperature: 0, logitBias: { 42: 1000 } } }).result();
    expect(Array.from(forced.tokenIds)).toEqual([42, 42, 42]);
    const noRepeat = await m.generate('bias', { maxNewTokens: 3, ignoreEos: true, sampler: { temperature: 0, logitBias: { 42: 1000 }, noRepeatNgramSize: 1 } }).result();
    expect(new Set(noRepeat.tokenIds).size).toBe(3);
  });
});

describe('generate: process and worker lifetime', () => {
  const snippet = (after: string) => `
(async () => {
  const m = await addon.modelRandom(JSON.stringify({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 64 }), true, 1, {});
  let tokens = 0;
  const done = new Promise((res) => addon.generate(m, Uint32Array.of(1, 2, 3), { maxNewTokens: 20, stopTokenIds: new Uint32Array(0) },
    (kind, p) => { if (kind === 'tokens') tokens += p.tokens.length; else res(kind + ':' + (Array.isArray(p) ? p[0].finishReason : p)); }));
  ${after}
})();`;

  it('Node exits by itself once generation is done (nothing left referenced)', () => {
    const r = runWithAddon(snippet(`console.log(await done, tokens);`));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('finish:length 20');
  });

  it('a running generation keeps Node alive until it ends; dispose() aborts it', () => {
    const r = runWithAddon(snippet(`done.then((s) => console.log(s)); setTimeout(() => m.dispose(), 0);`));
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^finish:(abort|length)$/);
  });

  it('works in a worker, and terminating a worker mid-generation is clean', async () => {
    const source = `
const { parentPort, workerData } = require('node:worker_threads');
const addon = require('node-gyp-build')(workerData.root);
(async () => {
  const m = await addon.modelRandom(JSON.stringify({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 1024 }), true, 1, {});
  addon.generate(m, Uint32Array.of(1, 2, 3), { maxNewTokens: 1000, stopTokenIds: new Uint32Array(0) }, (kind, p) => {
    if (kind === 'tokens') parentPort.postMessage(p.tokens.length);
  });
})();`;
    const w = new Worker(source, { eval: true, workerData: { root } });
    await new Promise<void>((res, rej) => { w.once('message', () => res()); w.once('error', rej); });
    expect(await w.terminate()).toBe(1);
    const m = await Model.random({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 64 }, { seed: 1 });
    expect((await m.generate('still fine', { maxNewTokens: 2 }).result()).tokenIds.length).toBeGreaterThan(0);
    m.dispose();
  });
});
