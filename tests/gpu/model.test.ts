// The CUDA backend on a real GPU (npm run test:gpu): every kernel against its CPU reference
// (cuda/tests/kernels_test.cu built with nvcc for this GPU), the golden fixtures on device
// 'cuda', and CPU-vs-GPU parity of a randomly initialised gpt2 (124M) in fp32 and bf16.
// Skips, with the reason, where CUDA is not usable; never runs in CI (no GPU there).
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { info, Model } from '../../lib/index.js';
import { root } from '../helpers/addon-child.js';
import { goldenParity } from '../helpers/parity-suite.js';
import { maxAbsDiff, maxAbs } from '../helpers/arrays.js';

const cuda = info().cuda;
const onGpu = cuda.available && !cuda.devices.some((d) => /cusim/.test(d.name));
const reason = !cuda.available ? `CUDA not available: ${cuda.reason}` : onGpu ? '' : 'the loaded plugin is the cusim build';
const title = (t: string) => `${t}${reason ? ` (skipped: ${reason})` : ''}`;


describe.skipIf(!onGpu)(title('CUDA kernels vs CPU references on the GPU'), () => {
  it('every check of cuda/tests/kernels_test.cu passes', () => {
    const out = join(root, 'build-cuda', 'kernels_test');
    mkdirSync(join(root, 'build-cuda'), { recursive: true });
    const cc = spawnSync('nvcc', ['-std=c++17', '-O3', '-arch=native', '-Icuda', '-Inative/core', '-DGPT2_CUDA_BUILDING_PLUGIN=1',
      ...['gemm', 'attention', 'layernorm', 'embedding', 'kv_cache', 'sampling'].map((f) => `cuda/${f}.cu`), 'cuda/tests/kernels_test.cu', '-o', out],
    { cwd: root, encoding: 'utf8' });
    expect(cc.status, `${cc.stdout}${cc.stderr}`).toBe(0);
    const r = spawnSync(out, [], { encoding: 'utf8' });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('OK: 0 failed');
  }, 600_000);
});

if (onGpu) goldenParity('golden parity on the GPU (float32)', { device: 'cuda' });
else describe.skip(title('golden parity on the GPU (float32)'), () => { it('needs a GPU', () => {}); });

describe.skipIf(!onGpu)(title('gpt2 (124M, random weights): GPU vs CPU'), () => {
  const ids = new Uint32Array(Array.from({ length: 96 }, (_, i) => (i * 7919) % 50257));
  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`${dtype}: prefill logits and a decode step agree with the CPU`, async () => {
      const cpu = await Model.random('gpt2', { device: 'cpu', seed: 7 });
      const gpu = await Model.random('gpt2', { device: 'cuda', seed: 7, dtype });
      expect(gpu.device).toBe('cuda:0');
      // fp32: summation order and FMA contraction only. bf16: the documented 2% of max |logit|.
      const tol = (want: Float32Array) => (dtype === 'float32' ? 1e-4 + 1e-3 * maxAbs(want) : 0.02 * maxAbs(want));
      const want = (await cpu.forward(ids, { logits: 'all' })).logits![0]!;
      const got = (await gpu.forward(ids, { logits: 'all' })).logits![0]!;
      expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(tol(want));
      const a = gpu.sequence(), b = cpu.sequence();
      await a.append(ids);
      await b.append(ids);
      const x = (await a.append([42])).logits!, y = (await b.append([42])).logits!;
      expect(maxAbsDiff(x, y)).toBeLessThanOrEqual(tol(y));
      cpu.dispose();
      gpu.dispose();
    }, 600_000);
  }
});
