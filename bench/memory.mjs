// Memory of one loaded model, stage by stage (dist/, so run `npx tsc -p tsconfig.json` first):
// before load, after load, after a prefill forward (32 prompts x 128 tokens, logits 'last'), and
// after decoding 32 concurrent generate() requests (128-token prompts, 32 new tokens), after a
// 32 x 128 embed and after three short embeds, and after dispose. Each stage
// prints RSS split into anonymous and file-backed pages (/proc/self/status), the peak (VmHWM),
// and the model's own accounting (weightBytes, kvCacheBytes).
//
//   node bench/memory.mjs (--random gpt2 | --model DIR) [--dtype float32|bfloat16] [--threads N]
//   node bench/memory.mjs --write-checkpoint DIR [--random gpt2]   writes a random fp32 checkpoint of
//        that preset's shapes (config.json + model.safetensors), to measure the mmap'd load path
// Prints one JSON object (stages in MiB). One model per process: run it once per dtype.
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Model } from '../dist/index.js';
import v8 from 'node:v8';
import vm from 'node:vm';

const { values: args } = parseArgs({
  options: {
    random: { type: 'string' },
    model: { type: 'string' },
    dtype: { type: 'string', default: 'float32' },
    threads: { type: 'string' },
    'write-checkpoint': { type: 'string' },
    prompts: { type: 'string', default: '32' },
    'prompt-tokens': { type: 'string', default: '128' },
    'new-tokens': { type: 'string', default: '32' },
  },
});

const MiB = 1024 * 1024;
function procStatus() {
  const text = readFileSync('/proc/self/status', 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), peak: kb('VmHWM') };
}
const round = (x) => Math.round(x * 10) / 10;

if (args['write-checkpoint']) {
  // A random model's config, then every tensor it needs in fp32 (values ~N(0, 0.02) via a cheap LCG).
  const m = await Model.random(args.random ?? 'gpt2', { kvCacheTokens: 16 });
  const c = m.config;
  m.dispose();
  const E = c.n_embd, I = c.n_inner ?? 4 * E;
  const tensors = [['wte.weight', [c.vocab_size, E]], ['wpe.weight', [c.n_positions, E]]];
  for (let l = 0; l < c.n_layer; l++) {
    const p = `h.${l}.`;
    tensors.push([p + 'ln_1.weight', [E]], [p + 'ln_1.bias', [E]], [p + 'attn.c_attn.weight', [E, 3 * E]],
      [p + 'attn.c_attn.bias', [3 * E]], [p + 'attn.c_proj.weight', [E, E]], [p + 'attn.c_proj.bias', [E]],
      [p + 'ln_2.weight', [E]], [p + 'ln_2.bias', [E]], [p + 'mlp.c_fc.weight', [E, I]], [p + 'mlp.c_fc.bias', [I]],
      [p + 'mlp.c_proj.weight', [I, E]], [p + 'mlp.c_proj.bias', [E]]);
  }
  tensors.push(['ln_f.weight', [E]], ['ln_f.bias', [E]]);
  const header = {};
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const dir = args['write-checkpoint'];
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...c, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }));
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, len);
  writeSync(fd, Buffer.from(json));
  let seed = 12345;
  for (const [name, shape] of tensors) {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    const isLnWeight = name.includes('ln_') && name.endsWith('.weight');
    for (let i = 0; i < a.length; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      a[i] = (isLnWeight ? 1 : 0) + ((seed / 4294967296) - 0.5) * 0.07;
    }
    writeSync(fd, new Uint8Array(a.buffer));
  }
  closeSync(fd);
  console.log(`wrote ${dir} (${round((offset + json.length + 8) / MiB)} MiB)`);
  process.exit(0);
}

const prompts = Number(args.prompts), promptTokens = Number(args['prompt-tokens']), newTokens = Number(args['new-tokens']);
const opts = { dtype: args.dtype, ...(args.threads ? { threads: Number(args.threads) } : {}) };
const stages = {};
const mark = (name, extra = {}) => {
  const s = procStatus();
  stages[name] = { rss: round(s.rss), anon: round(s.anon), file: round(s.file), peak: round(s.peak), ...extra };
};

mark('before load');
const model = args.model ? await Model.load(args.model, opts) : await Model.random(args.random ?? 'gpt2', opts);
const st = model.stats;
mark('after load', { weights: round(st.weightBytes / MiB), kvCache: round(st.kvCacheBytes / MiB) });

let seed = 7;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const ids = (n) => Uint32Array.from({ length: n }, () => Math.floor(rand() * model.config.vocab_size));

await model.forward(Array.from({ length: prompts }, () => ids(promptTokens)), { logits: 'last' });
mark(`after prefill ${prompts}x${promptTokens}`);

{
  const gens = Array.from({ length: prompts }, () => model.generate(ids(promptTokens), { maxNewTokens: newTokens, ignoreEos: true }));
  await Promise.all(gens.map(async (g) => { for await (const _ of g); }));
}
mark(`after decoding ${prompts} sequences`, { kvFreeBlocks: model.stats.kvFreeBlocks });

// The engine thread's GEMM packing buffers: a large embed step grows them, small steps after it
// give them back (gemm.cc AlignedBuffer shrinks when a call needs under a quarter of it).
await model.embed(Array.from({ length: prompts }, () => ids(promptTokens)));
mark(`after embedding ${prompts}x${promptTokens}`);
for (let i = 0; i < 3; i++) await model.embed([ids(16)]);
mark('after three 16-token embeds');

// Finished generations hold the native model until they are collected; then dispose() frees it.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
for (let i = 0; i < 4; i++) {
  gc();
  await new Promise((r) => setTimeout(r, 50));
}
model.dispose();
for (let i = 0; i < 4; i++) {
  gc();
  await new Promise((r) => setTimeout(r, 50));
}
mark('after dispose and gc');
console.log(JSON.stringify({ model: args.model ?? args.random ?? 'gpt2', dtype: args.dtype, stages }, null, 1));
