// The CUDA backend through the public API beyond the golden cases, the plugin built with cusim:
// device selection, ragged batches, forked sequences (copy-on-write of KV blocks), bfloat16
// weights on the tensor-core GEMM, and CUDA failures that become JS errors the process survives.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, Model } from '../../lib/index.js';
import { runWithAddon } from '../helpers/addon-child.js';
import { cases, fixtures, haveFixtures, manifest } from '../helpers/fixtures.js';
import { maxAbsDiff, maxAbs } from '../helpers/arrays.js';

const tinyDir = join(fixtures, 'models', 'tiny');
const PROMPT = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 383, 1893, 318, 257, 1332, 13, 632, 373];

describe.skipIf(!haveFixtures)('CUDA backend under cusim', () => {
  let gpu: Model, cpu: Model;
  beforeAll(async () => {
    gpu = await Model.load(tinyDir, { device: 'cuda' });
    cpu = await Model.load(tinyDir, { device: 'cpu' });
  });
  afterAll(() => { gpu.dispose(); cpu.dispose(); });

  it("'auto' and 'cuda:0' pick the emulated device; a missing device is an ERR_GPT2_CUDA error", async () => {
    expect(gpu.device).toBe('cuda:0');
    const auto = await Model.load(tinyDir, { device: 'auto' });
    expect(auto.device).toBe('cuda:0');
    expect(auto.deviceReason).toBeUndefined();
    auto.dispose();
    const zero = await Model.load(tinyDir, { device: 'cuda:0' });
    expect(zero.device).toBe('cuda:0');
    zero.dispose();
    await expect(Model.load(tinyDir, { device: 'cuda:1' })).rejects.toMatchObject({
      code: ErrorCode.Cuda,
      message: expect.stringMatching(/cuda:1.*device 1 out of range/),
    });
  });

  it('ragged prefill batches match the CPU (fp32, 1e-4)', async () => {
    const seqs = [PROMPT.slice(0, 3), PROMPT, PROMPT.slice(5, 6), PROMPT.slice(2, 13)].map((s) => new Uint32Array(s));
    const a = await gpu.forward(seqs, { logits: 'all' });
    const b = await cpu.forward(seqs, { logits: 'all' });
    for (let s = 0; s < seqs.length; s++) {
      expect(maxAbsDiff(a.logits![s]!, b.logits![s]!)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(a.lastHiddenState[s]!, b.lastHiddenState[s]!)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('batched decode steps (appends in one tick), mixed with a prefill, match the CPU', async () => {
    const run = async (m: Model) => {
      const seqs = [m.sequence(), m.sequence(), m.sequence()];
      await Promise.all(seqs.map((s, i) => s.append(PROMPT.slice(0, 4 + 5 * i))));
      const out: Float32Array[] = [];
      for (let step = 0; step < 3; step++) {
        const r = await Promise.all(seqs.map((s, i) => s.append([PROMPT[(i + step) % PROMPT.length]!])));
        out.push(...r.map((x) => x.logits!));
      }
      // One sequence prefilling while the others decode: a ragged batch of q_len 1 and 6.
      const mixed = await Promise.all(seqs.map((s, i) => s.append(i === 1 ? PROMPT.slice(0, 6) : [PROMPT[i]!])));
      out.push(...mixed.map((x) => x.logits!));
      seqs.forEach((s) => s.dispose());
      return out;
    };
    const a = await run(gpu), b = await run(cpu);
    for (let i = 0; i < a.length; i++) expect(maxAbsDiff(a[i]!, b[i]!)).toBeLessThanOrEqual(1e-4);
  });

  it('a forked sequence (shared blocks, copy-on-write of the partial one) matches the CPU', async () => {
    const run = async (m: Model) => {
      const base = m.sequence();
      await base.append(PROMPT.slice(0, 13));  // 13 positions: the last block is partial
      const fork = base.fork();
      const x = await base.append([PROMPT[13]!, PROMPT[14]!]);
      const y = await fork.append([PROMPT[15]!]);
      const z = await fork.append([PROMPT[16]!]);
      base.dispose();
      fork.dispose();
      return [x.logits!, y.logits!, z.logits!];
    };
    const a = await run(gpu), b = await run(cpu);
    for (let i = 0; i < a.length; i++) expect(maxAbsDiff(a[i]!, b[i]!)).toBeLessThanOrEqual(1e-4);
  });

  // 16-bit weights: every GEMM's weights rounded to bf16 / fp16; prefill GEMMs also round their
  // activations to that type (tensor cores), decode GEMMs keep them fp32. Documented tolerance:
  // the logits stay within 2% (bf16) / 0.5% (fp16) of the largest |logit| of the fp32 model
  // (measured worst: 1.3% on tiny_fp16.forward.code, 0.12% on tiny.forward.fox) and the last
  // position's argmax agrees.
  for (const [dtype, rel] of [['bfloat16', 0.02], ['float16', 0.005]] as const) {
    it(`${dtype} weights (tensor-core GEMM) stay within ${rel * 100}% of the fp32 logits on every forward case`, async () => {
      for (const name of Object.keys(manifest.models)) {
        const dir = join(fixtures, manifest.models[name].dir);
        const f32 = await Model.load(dir, { device: 'cpu' });
        const half = await Model.load(dir, { device: 'cuda', dtype });
        expect(half.dtype).toBe(dtype);
        for (const c of cases.filter((x) => x.model === name && x.kind === 'forward')) {
          const ids = new Uint32Array(c.input.input_ids!);
          const want = (await f32.forward(ids, { logits: 'all' })).logits![0]!;
          const got = (await half.forward(ids, { logits: 'all' })).logits![0]!;
          expect(maxAbsDiff(got, want), c.id).toBeLessThanOrEqual(rel * maxAbs(want));
          const V = f32.config.vocab_size, last = (ids.length - 1) * V;
          const argmax = (a: Float32Array) => { let k = 0; for (let v = 1; v < V; v++) if (a[last + v]! > a[last + k]!) k = v; return k; };
          expect(argmax(got), c.id).toBe(argmax(want));
        }
        // A decode step (small-M GEMM on 16-bit weights) as well.
        const s = half.sequence(), t = f32.sequence();
        await s.append(PROMPT.slice(0, 8));
        await t.append(PROMPT.slice(0, 8));
        const got = (await s.append([PROMPT[8]!])).logits!, want = (await t.append([PROMPT[8]!])).logits!;
        expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(rel * maxAbs(want));
        f32.dispose();
        half.dispose();
      }
    });
  }

  it("dtype 'float16' is refused on the CPU", async () => {
    await expect(Model.load(tinyDir, { device: 'cpu', dtype: 'float16' })).rejects.toThrow(/float16.*needs device 'cuda'/);
  });

  it('an absurd kvCacheTokens is an out-of-memory error, and the device keeps working', async () => {
    await expect(Model.load(tinyDir, { device: 'cuda', kvCacheTokens: 2 ** 30 })).rejects.toMatchObject({
      code: ErrorCode.OutOfMemory,
      message: expect.stringMatching(/CUDA alloc on cuda:0: .*cudaErrorMemoryAllocation/),
    });
    const r = await gpu.forward(new Uint32Array(PROMPT.slice(0, 5)));
    const want = await cpu.forward(new Uint32Array(PROMPT.slice(0, 5)));
    expect(maxAbsDiff(r.logits![0]!, want.logits![0]!)).toBeLessThanOrEqual(1e-4);
  });

  it('a device allocation failing part-way through a load is a JS error; the process goes on', () => {
    // CUSIM_FAIL_ALLOC=3: the third cudaMalloc (a weight upload) fails.
    const r = runWithAddon(
      `(async () => {
        try { await addon.modelLoad(${JSON.stringify(tinyDir)}, { device: 'cuda' }); console.log('loaded') }
        catch (e) { console.log(e.code + ' ' + e.message) }
        const m = await addon.modelLoad(${JSON.stringify(tinyDir)}, { device: 'cuda' });
        console.log('second load: ' + m.info().device);
      })()`,
      { CUSIM_FAIL_ALLOC: '3' },
    );
    expect(r.status, r.stderr).toBe(0);
    const [first, second] = r.stdout.trim().split('\n');
    expect(first).toMatch(/^ERR_GPT2_OUT_OF_MEMORY CUDA .*cudaErrorMemoryAllocation/);
    expect(second).toBe('second load: cuda:0');
  });
});
