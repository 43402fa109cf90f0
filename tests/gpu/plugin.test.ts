// The CUDA plugin on a real GPU (npm run test:gpu). Skips, with the reason, where CUDA is
// not usable (no plugin, driver or device).
import { describe, expect, it } from 'vitest';
import { info } from '../../lib/index.js';
import { native } from '../../lib/native.js';

const cuda = info().cuda;
const skipReason = cuda.available ? '' : `CUDA not available: ${cuda.reason}`;

describe.skipIf(!cuda.available)(`CUDA plugin on the GPU${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('reports usable devices (sm_80 or newer) and versions', () => {
    expect(cuda.devices.length).toBeGreaterThan(0);
    expect(cuda.driverVersion).toBeGreaterThan(0);
    expect(cuda.runtimeVersion).toBeGreaterThan(0);
    expect(cuda.devices.some((d) => Number(d.computeCapability.split('.')[0]) >= 8)).toBe(true);
    for (const d of cuda.devices) {
      expect(d.totalMemory).toBeGreaterThan(2 ** 30);
      expect(d.multiprocessors).toBeGreaterThan(0);
    }
  });

  it('runs the self-test kernel on every usable device', () => {
    for (const d of cuda.devices) {
      if (Number(d.computeCapability.split('.')[0]) < 8) continue;
      expect(native.cudaSelfTest(d.index)).toBe(true);
    }
  });
});
