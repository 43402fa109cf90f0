// Sequence.append calls run in the model's engine steps (native/engine/sequence_append.h):
// those made in the same tick share one ragged forward pass, and they share steps with
// running generations. The results must not depend on that, and a failing member (a full
// KV cache) must fail alone.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, Model } from '../lib/index.js';
import { maxAbsDiff } from './helpers/arrays.js';

const tinyDir = resolve(import.meta.dirname, '../../shared/fixtures/models/tiny');
const prompts = [[464, 2068, 7586], [15496, 995, 11, 616, 1438], [40], [4299, 12900, 7, 77, 2599, 198, 220]];


describe.skipIf(!existsSync(tinyDir))('batched Sequence.append', () => {
  it('concurrent appends on many sequences equal one-at-a-time appends, step after step', async () => {
    const m = await Model.load(tinyDir);
    const alone: Float32Array[][] = [];
    for (const p of prompts) {
      const s = m.sequence();
      const steps = [(await s.append(Uint32Array.from(p))).logits!];
      for (let t = 0; t < 4; t++) steps.push((await s.append([100 + t])).logits!);
      alone.push(steps);
      s.dispose();
    }
    const seqs = prompts.map(() => m.sequence());
    const together: Float32Array[][] = prompts.map(() => []);
    let outs = await Promise.all(seqs.map((s, i) => s.append(Uint32Array.from(prompts[i]!))));
    outs.forEach((o, i) => together[i]!.push(o.logits!));
    for (let t = 0; t < 4; t++) {
      outs = await Promise.all(seqs.map((s) => s.append([100 + t])));
      outs.forEach((o, i) => together[i]!.push(o.logits!));
    }
    for (let i = 0; i < prompts.length; i++)
      for (let t = 0; t < 5; t++) expect(maxAbsDiff(alone[i]![t]!, together[i]![t]!)).toBeLessThan(1e-5);
    expect(seqs.map((s) => s.length)).toEqual(prompts.map((p) => p.length + 4));
    m.dispose();
  });

  it('appends share the engine steps with a running generation, with bitwise-equal results', async () => {
    const m = await Model.load(tinyDir);
    const prompt = prompts[1]!;
    const opts = { maxNewTokens: 24 };
    const steps = () => m.engineStats.steps;
    const runAppends = async () => {
      const s = m.sequence();
      const out = [(await s.append(Uint32Array.from(prompts[3]!))).logits!];
      for (let t = 0; t < 6; t++) out.push((await s.append([200 + t])).logits!);
      s.dispose();
      return out;
    };
    let start = steps();
    const aloneAppends = await runAppends();
    const appendSteps = steps() - start;
    start = steps();
    const aloneTokens = (await m.generate(prompt, opts).result()).tokenIds;
    const generateSteps = steps() - start;
    expect(appendSteps).toBe(7);
    start = steps();
    const [appends, together] = await Promise.all([runAppends(), m.generate(prompt, opts).result()]);
    expect(appends).toEqual(aloneAppends);
    expect(Array.from(together.tokenIds)).toEqual(Array.from(aloneTokens));
    // Some steps held an append and a generation row.
    expect(steps() - start).toBeLessThan(appendSteps + generateSteps);
    expect(m.engineStats.maxStepSequences).toBeGreaterThanOrEqual(2);
    m.dispose();
  });

  it('an append waits for the KV blocks a running generation was promised, then runs', async () => {
    const m = await Model.load(tinyDir, { kvCacheTokens: 64 }); // 4 blocks of 16
    const s = m.sequence();
    // The generation's worst case (3 + 40 tokens) is promised 3 blocks; the append needs 2.
    const gen = m.generate([464, 2068, 7586], { maxNewTokens: 40, ignoreEos: true });
    const [r, a] = await Promise.all([gen.result(), s.append(Uint32Array.from({ length: 20 }, (_, i) => 100 + i))]);
    expect(r.finishReason).toBe('length');
    expect(r.tokenIds.length).toBe(40);
    expect(a.logits!.length).toBe(50257);
    expect(s.length).toBe(20);
    s.dispose();
    m.dispose();
  });

  it('a member that does not fit in the KV cache fails alone', async () => {
    const m = await Model.load(tinyDir, { kvCacheTokens: 64 });
    const big = m.sequence();
    const small = m.sequence();
    const long = Uint32Array.from({ length: 60 }, (_, i) => 100 + i);
    const results = await Promise.allSettled([big.append(long), small.append(long)]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(ok.length).toBe(1);
    expect(failed.length).toBe(1);
    expect(failed[0]!.reason.code).toBe(ErrorCode.KvCacheFull);
    // The cache is still consistent: the failed sequence is empty and usable once space frees.
    const lengths = [big.length, small.length].sort();
    expect(lengths).toEqual([0, 60]);
    big.dispose();
    small.dispose();
    const again = m.sequence();
    await again.append(long);
    expect(again.length).toBe(60);
    m.dispose();
  });

  it('disposing a sequence right after a batched append lets it finish', async () => {
    const m = await Model.load(tinyDir);
    const a = m.sequence();
    const b = m.sequence();
    const pa = a.append([1, 2, 3]);
    const pb = b.append([4, 5]);
    a.dispose();
    await expect(pa).resolves.toHaveProperty('logits');
    await expect(pb).resolves.toHaveProperty('logits');
    m.dispose();
  });
});
