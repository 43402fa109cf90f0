// Every kernel family of the plugin against its CPU reference (cuda/tests/kernels_test.cu),
// built with cusim by `node scripts/build-cuda.mjs --cusim` (npm run test:cusim), run in both
// of cusim's thread interleavings.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from '../helpers/addon-child.js';

const exe = join(root, 'build-cusim', 'kernels_test');
const FAMILIES = ['gemm', 'layernorm', 'embed', 'gather_rows', 'kv_append', 'copy_kv_blocks', 'attention', 'sample'];

describe('CUDA kernels vs CPU references (cusim)', () => {
  it('the kernel test binary is built', () => {
    expect(existsSync(exe), `${exe} missing: run node scripts/build-cuda.mjs --cusim`).toBe(true);
  });

  for (const sched of ['0', '1']) {
    it(`every check passes (CUSIM_SCHED=${sched})`, () => {
      const r = spawnSync(exe, [], { encoding: 'utf8', env: { ...process.env, CUSIM_SCHED: sched, CUSIM_STRICT: '1' } });
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
      expect(lines.at(-1)).toBe('OK: 0 failed');
      expect(r.stderr).not.toMatch(/cusim:/);  // no emulator diagnostics (races, bad warp ops, ...)
      for (const f of FAMILIES) expect(lines.some((l) => l.startsWith(`PASS ${f}`)), f).toBe(true);
      // Each GEMM path, both weight formats, and the split-KV decode merge are covered.
      for (const p of ['path=1 format=0', 'path=2 format=1', 'path=2 format=2', 'path=3 format=0', 'path=3 format=1', 'path=3 format=2', 'split-KV'])
        expect(lines.some((l) => l.startsWith('PASS') && l.includes(p)), p).toBe(true);
    });
  }
});
