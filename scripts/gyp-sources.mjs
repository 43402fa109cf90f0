// Lists C/C++ sources for binding.gyp, so adding a file never means editing the build.
// Usage: node scripts/gyp-sources.mjs [--only SUFFIX] [--skip SUFFIX]... DIR...
// Files ending in _avx2.cc / _avx512.cc are compiled in their own targets with ISA flags;
// the main target skips them, and the dispatcher picks one at run time from CPUID.
// Files ending in _reference.cc are plain reference versions that tests compare kernels
// with (llm.c style, beside their kernel): the addon skips them, scripts/native-test.mjs
// links them into the test programs.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const only = [], skip = [], dirs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--only') only.push(args[++i]);
  else if (args[i] === '--skip') skip.push(args[++i]);
  else dirs.push(args[i]);
}
const out = [];
for (const dir of dirs) {
  let names = [];
  try { names = readdirSync(dir).sort(); } catch { continue; }
  for (const name of names) {
    const path = join(dir, name);
    if (!statSync(path).isFile() || !/\.(cc|cpp)$/.test(name)) continue;
    if (only.length && !only.some((s) => name.endsWith(s))) continue;
    if (skip.some((s) => name.endsWith(s))) continue;
    out.push(path);
  }
}
process.stdout.write(out.join(' '));
