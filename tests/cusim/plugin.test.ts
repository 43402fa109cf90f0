// The CUDA plugin built with cusim (CUDA on the CPU; npm run test:cusim): the loader finds
// the emulated device through GPT2_CUDA_PLUGIN (set by vitest.config.ts), and the self-test
// kernel's device round trip matches the host. CUDA failures become errors, not crashes.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { info } from '../../lib/index.js';
import { native } from '../../lib/native.js';
import { runWithAddon } from '../helpers/addon-child.js';

describe('CUDA plugin under cusim', () => {
  it('is loaded from GPT2_CUDA_PLUGIN and reports the emulated device', () => {
    const c = info().cuda;
    expect(c.reason).toBeNull();
    expect(c.available).toBe(true);
    expect(c.pluginPath).toMatch(/libgpt2_cuda\.so$/);
    expect(c.pluginPath).toBe(resolve(process.env.GPT2_CUDA_PLUGIN!));
    expect(c.runtimeVersion).toBeGreaterThan(0);
    expect(c.devices).toHaveLength(1);
    const d = c.devices[0];
    expect(d.index).toBe(0);
    expect(d.name).toMatch(/cusim/);
    expect(d.computeCapability).toBe('9.0');
    expect(d.totalMemory).toBeGreaterThan(0);
    expect(d.multiprocessors).toBeGreaterThan(0);
  });

  it('runs the self-test kernel', () => {
    expect(native.cudaSelfTest(0)).toBe(true);
    expect(native.cudaSelfTest()).toBe(true);
  });

  it('rejects a device index that does not exist', () => {
    expect(() => native.cudaSelfTest(1)).toThrow(/device 1 out of range/);
  });

  it('reports the SM count the runtime gives (CUSIM_SM_COUNT)', () => {
    const r = runWithAddon('console.log(JSON.stringify(addon.info().cuda))', { CUSIM_SM_COUNT: '7' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).devices[0].multiprocessors).toBe(7);
  });

  it('reports no device as the reason when the runtime finds none', () => {
    const r = runWithAddon('console.log(JSON.stringify(addon.info().cuda))', { CUSIM_DEVICE_COUNT: '0' });
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.available).toBe(false);
    expect(c.reason).toMatch(/cudaGetDeviceCount|no CUDA device/);
  });

  it('turns a failed device allocation into an ERR_GPT2_CUDA error and recovers', () => {
    // The first device allocation fails: the self-test reports cudaMalloc's error, the
    // process survives, and the next run (allocations succeed again) passes.
    const r = runWithAddon(
      `try { addon.cudaSelfTest(0); console.log('no error') } catch (e) { console.log(e.code + ' ' + e.message) }
       console.log(addon.cudaSelfTest(0))`,
      { CUSIM_FAIL_ALLOC: '1' },
    );
    expect(r.status, r.stderr).toBe(0);
    const [first, second] = r.stdout.trim().split('\n');
    expect(first).toMatch(/^ERR_GPT2_CUDA cudaMalloc: .*cudaErrorMemoryAllocation/);
    expect(second).toBe('true');
  });
});
