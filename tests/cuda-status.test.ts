// The CUDA plugin's status on machines without a usable GPU: CUDA is reported as
// unavailable with a reason, and no kind of broken plugin crashes the process.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { info } from '../lib/index.js';
import { native } from '../lib/native.js';
import { runWithAddon } from './helpers/addon-child.js';

const printCuda = 'console.log(JSON.stringify(addon.info().cuda));';

describe('info().cuda', () => {
  it('has the documented shape', () => {
    const c = info().cuda;
    expect(typeof c.available).toBe('boolean');
    expect(Array.isArray(c.devices)).toBe(true);
    if (c.available) {
      expect(c.reason).toBeNull();
      expect(c.devices.length).toBeGreaterThan(0);
      for (const d of c.devices) {
        expect(d.name.length).toBeGreaterThan(0);
        expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
        expect(d.totalMemory).toBeGreaterThan(0);
        expect(d.multiprocessors).toBeGreaterThan(0);
      }
    } else {
      expect(typeof c.reason).toBe('string');
      expect(c.reason!.length).toBeGreaterThan(0);
    }
  });

  it('is unavailable with a reason when no GPU is usable (skipped where one is)', ({ skip }) => {
    if (info().cuda.available) skip('a CUDA device is usable here');
    const c = info().cuda;
    expect(c.available).toBe(false);
    expect(c.reason).toMatch(/CUDA plugin not installed|cudaGetDeviceCount|no CUDA device|compute capability/);
    // The self-test refuses with the same reason instead of crashing.
    expect(() => native.cudaSelfTest(0)).toThrow(expect.objectContaining({ code: 'ERR_GPT2_CUDA' }));
  });

  it('validates cudaSelfTest arguments', () => {
    expect(() => native.cudaSelfTest('0' as unknown as number)).toThrow(TypeError);
    expect(() => native.cudaSelfTest(-1)).toThrow(RangeError);
    expect(() => native.cudaSelfTest(1.5)).toThrow(RangeError);
  });

  it('reports a missing GPT2_CUDA_PLUGIN file by name', () => {
    const bogus = join(tmpdir(), 'gpt2-node-no-such-plugin.so');
    const r = runWithAddon(printCuda, { GPT2_CUDA_PLUGIN: bogus });
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.available).toBe(false);
    expect(c.reason).toContain(bogus);
    expect(c.devices).toEqual([]);
  });

  it('reports a GPT2_CUDA_PLUGIN that is not a shared library, without crashing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpt2-node-cuda-'));
    const bogus = join(dir, 'libgpt2_cuda.so');
    writeFileSync(bogus, 'this is not an ELF file\n');
    const r = runWithAddon(`${printCuda} try { addon.cudaSelfTest(0) } catch (e) { console.log(e.code) }`, {
      GPT2_CUDA_PLUGIN: bogus,
    });
    expect(r.status, r.stderr).toBe(0);
    const [line, code] = r.stdout.trim().split('\n');
    const c = JSON.parse(line);
    expect(c.available).toBe(false);
    expect(c.reason).toContain(bogus);
    expect(c.reason).toMatch(/cannot load CUDA plugin/);
    expect(c.pluginPath).toBe(bogus);
    expect(code).toBe('ERR_GPT2_CUDA');
  });

  it('rejects a shared library that is not a gpt2-node plugin', () => {
    // libc is a valid shared object without gpt2_cuda_abi_version.
    const r = runWithAddon(printCuda, { GPT2_CUDA_PLUGIN: '/lib/x86_64-linux-gnu/libc.so.6' });
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.available).toBe(false);
    expect(c.reason).toMatch(/not a gpt2-node plugin/);
  });
});
