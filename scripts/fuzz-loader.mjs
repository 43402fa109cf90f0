// Builds and runs the libFuzzer targets of the checkpoint loader (native/tests/fuzz/)
// with clang (-fsanitize=fuzzer,address,undefined). Optional: the seeded mutation loop in
// native/tests/loader_fuzz_test.cc runs in CI without clang; this goes deeper.
//
//   node scripts/fuzz-loader.mjs [safetensors|config] [seconds=60]
//
// Needs clang++ with libFuzzer (Debian: apt-get install clang-16 libclang-rt-16-dev).
// Built as C++17: clang (14-16) with libstdc++ 12 rejects json.h's vector<pair<string,
// JsonValue>> member in C++20 mode (constexpr destructors), which g++ accepts; the fuzzed
// sources keep to C++17 for that reason.
// Seeds: small synthetic safetensors files written here, and the fixtures' config.json.
// Corpus and crash files go to build-tests/fuzz/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const target = process.argv[2] ?? 'safetensors';
const seconds = Number(process.argv[3] ?? 60);
if (!['safetensors', 'config'].includes(target)) {
  console.error('usage: node scripts/fuzz-loader.mjs [safetensors|config] [seconds]');
  process.exit(2);
}
const clang = ['clang++-18', 'clang++-17', 'clang++-16', 'clang++-15', 'clang++'].find(
  (c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
if (!clang) {
  console.error('clang++ not found (apt-get install clang-16 libclang-rt-16-dev)');
  process.exit(2);
}

const out = join(root, 'build-tests', 'fuzz');
mkdirSync(out, { recursive: true });
const sources = ['native/core/json.cc', 'native/model/json_limits.cc', 'native/model/config.cc',
  'native/model/safetensors.cc', `native/tests/fuzz/${target}_fuzzer.cc`].map((p) => join(root, p));
const exe = join(out, `${target}_fuzzer`);
const build = spawnSync(clang, ['-std=c++17', '-O1', '-g', '-fsanitize=fuzzer,address,undefined',
  '-fno-sanitize-recover=undefined', '-I', join(root, 'native'), ...sources, '-o', exe], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

// Seed corpus.
const corpus = join(out, `corpus-${target}`);
mkdirSync(corpus, { recursive: true });
const fixtures = resolve(root, '../shared/fixtures/models');
if (target === 'config') {
  if (existsSync(fixtures))
    for (const m of readdirSync(fixtures)) copyFileSync(join(fixtures, m, 'config.json'), join(corpus, `${m}.json`));
  writeFileSync(join(corpus, 'aliases.json'),
    '{"hidden_size":8,"num_attention_heads":2,"num_hidden_layers":1,"n_ctx":8,"n_inner":null,"eos_token_id":null}');
} else {
  // Small files in the layouts the loader accepts (f32/f16/bf16, prefixed, old buffers).
  const st = (tensors) => {
    const entries = { __metadata__: { format: 'pt' } };
    const chunks = [];
    let offset = 0;
    for (const [name, dtype, shape, bytes] of tensors) {
      entries[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
      chunks.push(bytes);
      offset += bytes.length;
    }
    let header = JSON.stringify(entries);
    while (header.length % 8) header += ' ';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    return Buffer.concat([len, Buffer.from(header), ...chunks]);
  };
  const f32 = (n) => Buffer.from(new Float32Array(Array.from({ length: n }, (_, i) => (i % 7) - 3)).buffer);
  const h16 = (n) => Buffer.from(new Uint16Array(Array.from({ length: n }, (_, i) => 0x3c00 + i)).buffer);
  writeFileSync(join(corpus, 'bare.safetensors'), st([['wte.weight', 'F32', [4, 2], f32(8)],
    ['h.0.ln_1.bias', 'F32', [2], f32(2)], ['empty', 'F32', [0], Buffer.alloc(0)]]));
  writeFileSync(join(corpus, 'prefixed_f16.safetensors'), st([['transformer.wte.weight', 'F16', [4, 2], h16(8)],
    ['lm_head.weight', 'BF16', [4, 2], h16(8)]]));
  writeFileSync(join(corpus, 'buffers.safetensors'), st([['h.0.attn.bias', 'U8', [1, 1, 2, 2], Buffer.from([1, 0, 1, 1])],
    ['h.0.attn.masked_bias', 'F32', [], f32(1)], ['x', 'I64', [1], Buffer.alloc(8)]]));
}
const args = [corpus, `-max_total_time=${seconds}`, '-max_len=16384', '-timeout=10', '-rss_limit_mb=4096',
  `-artifact_prefix=${out}/crash-${target}-`, '-print_final_stats=1'];
console.log(`${exe} ${args.join(' ')}`);
const run = spawnSync(exe, args, { stdio: 'inherit' });
process.exit(run.status ?? 1);
