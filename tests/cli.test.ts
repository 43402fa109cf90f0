// The gpt2-node CLI as users run it (tests/helpers/cli.ts).
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDistIfStale, root, runCli as run } from './helpers/cli.js';

beforeAll(buildDistIfStale);

describe('gpt2-node CLI', () => {
  it('info prints the CPU and the CUDA status with its reason', () => {
    const r = run(['info']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^CPU: /m);
    expect(r.stdout).toMatch(/ISA:\s+(avx512|avx2|baseline)/);
    expect(r.stdout).toMatch(/threads:\s+\d+/);
    expect(r.stdout).toMatch(/^CUDA:\s+(available|not available: .+)$/m);
  });

  it('info --json has cpu and a cuda object (available, reason, devices)', () => {
    const r = run(['info', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(['avx512', 'avx2', 'baseline']).toContain(j.cpu.isa);
    expect(j.cpu.defaultThreads).toBeGreaterThan(0);
    expect(typeof j.cuda.available).toBe('boolean');
    expect(Array.isArray(j.cuda.devices)).toBe(true);
    if (!j.cuda.available) expect(j.cuda.reason.length).toBeGreaterThan(0);
  });

  it('info names a bogus GPT2_CUDA_PLUGIN in its reason', () => {
    const bogus = join(root, 'no-such-dir', 'libgpt2_cuda.so');
    const r = run(['info', '--json'], { GPT2_CUDA_PLUGIN: bogus });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.cuda.available).toBe(false);
    expect(j.cuda.reason).toContain(bogus);
  });

  it('--help lists the commands; <command> --help shows its options', () => {
    const r = run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/usage: gpt2-node <command>/);
    expect(r.stdout).toMatch(/^\s+info\s+/m);
    const h = run(['info', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/usage: gpt2-node info/);
    expect(h.stdout).toMatch(/--json/);
  });

  it('--version prints the package version', () => {
    const r = run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('usage errors exit 2 with one line on stderr', () => {
    for (const args of [['no-such-command'], ['info', '--no-such-option'], ['info', 'extra'], []]) {
      const r = run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.length).toBeGreaterThan(0);
      if (args.length) {
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/^gpt2-node: /);
      }
    }
  });
});
