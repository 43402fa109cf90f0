// Builds the optional CUDA plugin (cuda/ -> libgpt2_cuda.so), which the addon loads at run
// time (native/core/cuda_loader.cc). Without nvcc or cmake it says so in one line and
// succeeds: the addon runs on the CPU.
//
//   node scripts/build-cuda.mjs              nvcc build: cmake-js build -d cuda -O build-cuda
//   node scripts/build-cuda.mjs --optional   as npm install runs it: a failed build is a
//                                            warning, not a failed install (GPT2_CUDA_REQUIRED=1
//                                            makes it fatal again, as CI wants)
//   node scripts/build-cuda.mjs --into DIR   also copy the .so into DIR (prebuildify --postinstall
//                                            puts it next to the .node it packs)
//   node scripts/build-cuda.mjs --cusim      the same sources built with cusim-build (CUDA on the
//                                            CPU, ../shared/cusim or $GPT2_CUSIM_DIR) into
//                                            build-cusim/libgpt2_cuda.so, plus the kernel tests
//                                            build-cusim/kernels_test; --sanitize adds ASan+UBSan
//                                            (build-cusim/libgpt2_cuda-asan.so, kernels_test-asan)
// GPT2_SKIP_CUDA=1 skips the nvcc build. GPT2_CUDA_PTXAS_VERBOSE=1 rebuilds with ptxas -v and
// writes the build output (registers, spills, shared memory per kernel) to build-cuda/ptxas.log.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PLUGIN = 'libgpt2_cuda.so';
const say = (msg) => console.log(`gpt2-node: ${msg}`);

const args = process.argv.slice(2);
const opts = { optional: false, cusim: false, sanitize: false, into: null };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--optional') opts.optional = true;
  else if (a === '--cusim') opts.cusim = true;
  else if (a === '--sanitize') opts.sanitize = true;
  else if (a === '--into' && i + 1 < args.length) opts.into = resolve(args[++i]);
  else if (a.startsWith('--into=')) opts.into = resolve(a.slice('--into='.length));
  else {
    console.error(`usage: node scripts/build-cuda.mjs [--optional] [--into DIR] [--cusim [--sanitize]] (unknown: ${a})`);
    process.exit(2);
  }
}
const required = !opts.optional || process.env.GPT2_CUDA_REQUIRED === '1';

function fail(msg, output = '') {
  if (output) process.stderr.write(output.endsWith('\n') ? output : `${output}\n`);
  if (required) {
    console.error(`gpt2-node: ${msg}`);
    process.exit(1);
  }
  say(`${msg}; continuing without the CUDA plugin (the CPU backend works)`);
  process.exit(0);
}

/** First executable `name` on PATH, or null. */
function which(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {}
  }
  return null;
}

/** nvcc as CMake would find it: $CUDACXX, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin. */
function findNvcc() {
  const candidates = [process.env.CUDACXX, which('nvcc')];
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']) {
    if (home) candidates.push(join(home, 'bin', 'nvcc'));
  }
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

function newestMtime(paths) {
  let t = 0;
  for (const p of paths) {
    try {
      t = Math.max(t, statSync(p).mtimeMs);
    } catch {}
  }
  return t;
}

function pluginSources() {
  return readdirSync(join(root, 'cuda')).filter((f) => f.endsWith('.cu')).sort().map((f) => join('cuda', f));
}

function copyInto(so) {
  if (!opts.into) return;
  mkdirSync(opts.into, { recursive: true });
  copyFileSync(so, join(opts.into, PLUGIN));
  say(`copied ${PLUGIN} into ${relative(process.cwd(), opts.into) || '.'}`);
}

// One cusim-build invocation, skipped when `out` is newer than every input.
function cusimBuild(cusimDir, out, sources, flags, what) {
  const cusimBuild = join(cusimDir, 'cusim-build');
  const inputs = [
    ...readdirSync(join(root, 'cuda')).map((f) => join(root, 'cuda', f)),
    ...sources.map((f) => join(root, f)),
    join(root, 'native/core/cuda_plugin_abi.h'),
    cusimBuild,
    join(cusimDir, 'cusim.h'),
  ];
  if (existsSync(out) && statSync(out).mtimeMs >= newestMtime(inputs)) {
    say(`cusim ${what} up to date: ${relative(root, out)}`);
    return;
  }
  mkdirSync(dirname(out), { recursive: true });
  const t0 = performance.now();
  const r = spawnSync('python3', [cusimBuild, ...(opts.sanitize ? ['--sanitize'] : []), ...flags, ...sources, '-o', out], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.status !== 0) fail(`cusim build of the ${what} failed (${r.error?.message ?? `exit ${r.status}`})`, `${r.stdout}${r.stderr}`);
  say(`cusim ${what} built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${relative(root, out)}`);
}

// The plugin, and cuda/tests/kernels_test (every kernel against its CPU reference), which
// tests/cusim/kernels.test.ts runs.
function buildCusim() {
  const cusimDir = resolve(process.env.GPT2_CUSIM_DIR ?? join(root, '..', 'shared', 'cusim'));
  if (!existsSync(join(cusimDir, 'cusim-build'))) fail(`cusim not found at ${join(cusimDir, 'cusim-build')} (set GPT2_CUSIM_DIR)`);
  const suffix = opts.sanitize ? '-asan' : '';
  const out = join(root, 'build-cusim', opts.sanitize ? 'libgpt2_cuda-asan.so' : PLUGIN);
  const warnings = ['-Wall', '-Wextra', '-Werror'];
  cusimBuild(cusimDir, out, pluginSources(), [
    '--shared',
    '-Xcompiler', '-fvisibility=hidden',
    '-DGPT2_CUDA_BUILDING_PLUGIN=1',
    '-Icuda', '-Inative/core',
    ...warnings,
    '-Wl,--version-script=cuda/exports.map',
  ], 'plugin');
  cusimBuild(cusimDir, join(root, 'build-cusim', `kernels_test${suffix}`), [...pluginSources(), 'cuda/tests/kernels_test.cu'],
    ['-Icuda', '-Inative/core', ...warnings], 'kernel tests');
  return out;
}

function buildNvcc() {
  if (process.env.GPT2_SKIP_CUDA === '1') {
    say('GPT2_SKIP_CUDA=1: skipping the CUDA plugin; running on the CPU');
    return null;
  }
  // An installed package that ships a prebuilt plugin next to its prebuilt .node needs no build.
  const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, PLUGIN);
  if (opts.optional && existsSync(prebuilt)) {
    say(`using the prebuilt CUDA plugin (${relative(root, prebuilt)})`);
    return prebuilt;
  }
  const nvcc = findNvcc();
  if (!nvcc) {
    say('nvcc not found: skipping the CUDA plugin; running on the CPU');
    return null;
  }
  if (!which('cmake')) {
    say('cmake not found: skipping the CUDA plugin; running on the CPU');
    return null;
  }
  let cmakeJs;
  try {
    cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
  } catch {
    say('cmake-js not installed: skipping the CUDA plugin; running on the CPU');
    return null;
  }
  // cmake-js reads nodedir from npm's config; with cuda/package.json's binary.napi_versions it
  // uses node-api-headers and downloads nothing (TOOLCHAIN.md, pitfall 2).
  const env = { ...process.env, CUDACXX: process.env.CUDACXX ?? nvcc };
  const ptxasVerbose = process.env.GPT2_CUDA_PTXAS_VERBOSE === '1';
  const cmakeArgs = ['build', '-d', 'cuda', '-O', 'build-cuda', `--CDGPT2_CUDA_PTXAS_VERBOSE=${ptxasVerbose ? 'ON' : 'OFF'}`];
  const t0 = performance.now();
  const spawnOpts = { cwd: root, env, encoding: 'utf8', maxBuffer: 64 << 20 };
  // `cmake-js build` configures only a fresh build directory; an option change needs `configure`.
  let out = '';
  const cache = join(root, 'build-cuda', 'CMakeCache.txt');
  if (existsSync(cache) && !readFileSync(cache, 'utf8').includes(`GPT2_CUDA_PTXAS_VERBOSE:BOOL=${ptxasVerbose ? 'ON' : 'OFF'}`)) {
    const c = spawnSync(process.execPath, [cmakeJs, 'configure', ...cmakeArgs.slice(1)], spawnOpts);
    out += `${c.stdout ?? ''}${c.stderr ?? ''}`;
    if (c.status !== 0) fail(`CUDA plugin configure failed (${c.error?.message ?? `exit ${c.status}`})`, out);
  }
  const r = spawnSync(process.execPath, [cmakeJs, ...cmakeArgs], spawnOpts);
  out += `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (ptxasVerbose) {
    mkdirSync(join(root, 'build-cuda'), { recursive: true });
    writeFileSync(join(root, 'build-cuda', 'ptxas.log'), out);
    say('ptxas report written to build-cuda/ptxas.log');
  }
  if (r.status !== 0) fail(`CUDA plugin build failed (${r.error?.message ?? `exit ${r.status}`})`, out);
  const so = [join(root, 'build-cuda', 'Release', PLUGIN), join(root, 'build-cuda', PLUGIN)].find((p) => existsSync(p));
  if (!so) {
    say('CMake found no usable CUDA compiler: skipping the CUDA plugin; running on the CPU');
    return null;
  }
  say(`CUDA plugin built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${relative(root, so)}`);
  return so;
}

const so = opts.cusim ? buildCusim() : buildNvcc();
if (so) copyInto(so);
