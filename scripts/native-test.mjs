// Builds and runs a C++ test program from native/tests/ against the core sources
// (everything under native/ except the N-API addon, plus the test-only *_reference.cc
// files the addon skips), with the same per-file ISA flags
// as binding.gyp. Objects are cached in build-tests/ and rebuilt when a source or a
// header it includes changes.
//
//   node scripts/native-test.mjs native/tests/gemm_test.cc [-- args for the test]
//   node scripts/native-test.mjs --build-only native/tests/gemm_test.cc
//   GPT2_TEST_SANITIZE=1 ...   builds with ASan+UBSan into build-tests/asan/
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const buildOnly = argv[0] === '--build-only';
if (buildOnly) argv.shift();
const dash = argv.indexOf('--');
const testArgs = dash >= 0 ? argv.slice(dash + 1) : [];
const tests = (dash >= 0 ? argv.slice(0, dash) : argv).map((p) => resolve(p));
if (tests.length !== 1) {
  console.error('usage: node scripts/native-test.mjs [--build-only] native/tests/NAME_test.cc [-- args]');
  process.exit(2);
}
const sanitize = process.env.GPT2_TEST_SANITIZE === '1';
const outDir = join(root, 'build-tests', sanitize ? 'asan' : 'release');

const isaFlags = {
  '_avx2.cc': ['-mavx2', '-mfma', '-mf16c'],
  '_avx512.cc': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512bf16',
    '-mamx-tile', '-mamx-bf16'],
};
const baseFlags = ['-std=c++20', '-fPIC', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-missing-field-initializers',
  '-I', join(root, 'native'), '-pthread', ...(sanitize ? ['-O1', '-g', '-fsanitize=address,undefined', '-fno-omit-frame-pointer'] : ['-O2', '-g'])];

const list = spawnSync(process.execPath, [join(root, 'scripts/gyp-sources.mjs'), 'native/core', 'native/tokenizer',
  'native/model', 'native/engine', 'native/cpu'], { cwd: root, encoding: 'utf8' }).stdout.split(' ').filter(Boolean);
const sources = [...list.map((p) => join(root, p)), tests[0]];

function flagsFor(src) {
  const isa = Object.keys(isaFlags).find((s) => src.endsWith(s));
  return [...baseFlags, ...(isa ? isaFlags[isa] : [])];
}

function upToDate(src, obj) {
  const dep = obj.replace(/\.o$/, '.d');
  if (!existsSync(obj) || !existsSync(dep)) return false;
  const t = statSync(obj).mtimeMs;
  const deps = readFileSync(dep, 'utf8').replace(/\\\n/g, ' ').split(':').slice(1).join(':').trim().split(/\s+/);
  return deps.every((d) => !d || (existsSync(d) && statSync(d).mtimeMs <= t));
}

const jobs = [];
const objects = [];
for (const src of sources) {
  const obj = join(outDir, 'obj', relative(root, src).replace(/\.(cc|cpp)$/, '.o'));
  objects.push(obj);
  if (upToDate(src, obj)) continue;
  mkdirSync(dirname(obj), { recursive: true });
  jobs.push(['g++', [...flagsFor(src), '-MMD', '-c', src, '-o', obj]]);
}

// Compile in parallel, a few at a time.
const { spawn } = await import('node:child_process');
const width = Math.max(1, cpus().length);
let failed = false;
async function runAll() {
  let next = 0;
  async function worker() {
    while (next < jobs.length && !failed) {
      const [cmd, args] = jobs[next++];
      const code = await new Promise((res) => spawn(cmd, args, { stdio: 'inherit' }).on('exit', res));
      if (code !== 0) failed = true;
    }
  }
  await Promise.all(Array.from({ length: width }, worker));
}
await runAll();
if (failed) process.exit(1);

const exe = join(outDir, relative(join(root, 'native/tests'), tests[0]).replace(/\.(cc|cpp)$/, ''));
const link = spawnSync('g++', [...baseFlags, ...objects, '-o', exe, '-ldl'], { stdio: 'inherit' });
if (link.status !== 0) process.exit(1);
if (buildOnly) {
  console.log(exe);
  process.exit(0);
}
const env = { ...process.env, GPT2_ROOT: root };
if (sanitize) env.ASAN_OPTIONS = env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0';
const run = spawnSync(exe, testArgs, { stdio: 'inherit', env });
process.exit(run.status ?? 1);
