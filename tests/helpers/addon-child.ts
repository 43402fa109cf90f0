// Runs a snippet in a fresh Node process that loads the built addon, for tests that need
// their own process-wide state (the CUDA plugin is loaded once per process) or env vars.
// The snippet is CommonJS with `addon` (the raw binding) in scope; what it prints is returned.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

export const root = resolve(import.meta.dirname, '..', '..');

export function runWithAddon(snippet: string, env: Record<string, string | undefined> = {}) {
  const code = `const addon = require('node-gyp-build')(${JSON.stringify(root)});\n${snippet}`;
  const r = spawnSync(process.execPath, ['-e', code], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}
