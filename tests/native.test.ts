// Runs every C++ test program in native/tests/ (kernels against their reference
// versions, parsers, fuzz loops) through scripts/native-test.mjs.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const programs = readdirSync(join(root, 'native/tests')).filter((f) => f.endsWith('_test.cc')).sort();

describe('native C++ tests', () => {
  for (const file of programs) {
    it(file, () => {
      const r = spawnSync(process.execPath, [join(root, 'scripts/native-test.mjs'), join('native/tests', file)], {
        cwd: root,
        encoding: 'utf8',
        timeout: 600_000,
      });
      const out = `${r.stdout}\n${r.stderr}`;
      expect(r.status, out).toBe(0);
      expect(out).toMatch(/\d+ passed, 0 failed/);
    }, 900_000);
  }
});
