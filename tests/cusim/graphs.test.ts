// CUDA graphs for decode steps (GPT2Model::forward with every input n == 1), under cusim:
// greedy decoding with graphs on and off (GPT2_CUDA_GRAPHS=0) gives the same logits and
// tokens, for batch sizes that record different graphs and across a KV block boundary (a new
// block appears in the padded block table between replays); GPT2_CUDA_GRAPHS=trace shows
// that steps are recorded once per batch size and then replayed.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model } from '../../lib/index.js';
import { runWithAddon } from '../helpers/addon-child.js';
import { fixtures, haveFixtures } from '../helpers/fixtures.js';
import { maxAbsDiff } from '../helpers/arrays.js';

const tinyDir = join(fixtures, 'models', 'tiny');
const PROMPT = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 383, 1893, 318, 257, 1332, 13, 632, 373];

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

// Greedy decoding of `batch` sequences in lockstep (their appends land in one step).
// Prompts of 12 + i tokens: with 16-position blocks, the steps cross a block boundary.
async function greedy(m: Model, batch: number, steps: number) {
  const seqs = Array.from({ length: batch }, () => m.sequence());
  const first = await Promise.all(seqs.map((s, i) => s.append(PROMPT.slice(0, 12 + (i % 6)))));
  let next = first.map((r) => argmax(r.logits!));
  const logits: Float32Array[] = [];
  const tokens: number[][] = [];
  for (let step = 0; step < steps; step++) {
    const r = await Promise.all(seqs.map((s, i) => s.append([next[i]!])));
    logits.push(...r.map((x) => x.logits!));
    next = r.map((x) => argmax(x.logits!));
    tokens.push(next);
  }
  seqs.forEach((s) => s.dispose());
  return { logits, tokens };
}

describe.skipIf(!haveFixtures)('CUDA graphs for decode steps under cusim', () => {
  let gpu: Model, cpu: Model;
  beforeAll(async () => {
    gpu = await Model.load(tinyDir, { device: 'cuda' });
    cpu = await Model.load(tinyDir, { device: 'cpu' });
  });
  afterAll(() => {
    gpu.dispose();
    cpu.dispose();
    delete process.env.GPT2_CUDA_GRAPHS;
  });

  for (const batch of [1, 3, 5]) {
    it(`greedy decode of ${batch} sequence(s): graphs on = graphs off (1e-6), and = the CPU (1e-4)`, async () => {
      delete process.env.GPT2_CUDA_GRAPHS;
      const on = await greedy(gpu, batch, 6);
      const again = await greedy(gpu, batch, 6);  // replays only
      process.env.GPT2_CUDA_GRAPHS = '0';
      const off = await greedy(gpu, batch, 6);
      delete process.env.GPT2_CUDA_GRAPHS;
      const ref = await greedy(cpu, batch, 6);
      expect(on.tokens).toEqual(off.tokens);
      expect(again.tokens).toEqual(off.tokens);
      expect(on.tokens).toEqual(ref.tokens);
      for (let i = 0; i < on.logits.length; i++) {
        expect(maxAbsDiff(on.logits[i]!, off.logits[i]!)).toBeLessThanOrEqual(1e-6);
        expect(maxAbsDiff(again.logits[i]!, off.logits[i]!)).toBeLessThanOrEqual(1e-6);
        expect(maxAbsDiff(on.logits[i]!, ref.logits[i]!)).toBeLessThanOrEqual(1e-4);
      }
    });
  }

  it('prefill and mixed steps still run without graphs and match the CPU', async () => {
    const run = async (m: Model) => {
      const a = m.sequence(), b = m.sequence();
      await a.append(PROMPT.slice(0, 5));
      const x = await a.append([PROMPT[5]!]);  // decode (graph on CUDA)
      const [y, z] = await Promise.all([a.append([PROMPT[6]!]), b.append(PROMPT.slice(0, 4))]);  // mixed
      a.dispose();
      b.dispose();
      return [x.logits!, y!.logits!, z!.logits!];
    };
    const g = await run(gpu), c = await run(cpu);
    for (let i = 0; i < g.length; i++) expect(maxAbsDiff(g[i]!, c[i]!)).toBeLessThanOrEqual(1e-4);
  });

  it('GPT2_CUDA_GRAPHS=trace: one recording per batch size, then replays; =0: none', () => {
    const snippet = `(async () => {
      const m = await addon.modelLoad(${JSON.stringify(tinyDir)}, { device: 'cuda' });
      const prompt = ${JSON.stringify(PROMPT)};
      for (const batch of [1, 2, 1]) {
        const seqs = Array.from({ length: batch }, () => m.sequence());
        await Promise.all(seqs.map((s) => s.append(new Uint32Array(prompt.slice(0, 14)), 1)));
        for (let step = 0; step < 4; step++)
          await Promise.all(seqs.map((s, i) => s.append(new Uint32Array([prompt[step + i]]), 1)));
        seqs.forEach((s) => s.dispose());
      }
      m.dispose();
      console.log('ok');
    })().catch((e) => { console.log(e.code + ' ' + e.message); process.exitCode = 1; })`;
    const traced = runWithAddon(snippet, { GPT2_CUDA_GRAPHS: 'trace' });
    expect(traced.status, traced.stderr).toBe(0);
    expect(traced.stdout.trim()).toBe('ok');
    const lines = traced.stderr.split('\n').filter((l) => l.startsWith('gpt2 cuda graph'));
    const count = (l: string) => lines.filter((x) => x === l).length;
    expect(count('gpt2 cuda graph record 1')).toBe(1);
    expect(count('gpt2 cuda graph record 2')).toBe(1);
    expect(count('gpt2 cuda graph replay 1')).toBe(7);  // 4 + 4 steps, the first recorded
    expect(count('gpt2 cuda graph replay 2')).toBe(3);
    const off = runWithAddon(snippet, { GPT2_CUDA_GRAPHS: '0' });
    expect(off.status, off.stderr).toBe(0);
    expect(off.stderr).not.toMatch(/gpt2 cuda graph/);
  });
});
