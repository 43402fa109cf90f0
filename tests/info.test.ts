import { describe, expect, it } from 'vitest';
import { info } from '../lib/index.js';

describe('info()', () => {
  it('reports the CPU ISA and threads', () => {
    const i = info();
    expect(['avx512', 'avx2', 'baseline']).toContain(i.cpu.isa);
    expect(i.cpu.defaultThreads).toBeGreaterThan(0);
    if (i.cpu.isa === 'avx512') expect(i.cpu.features.avx512f).toBe(true);
  });
});
