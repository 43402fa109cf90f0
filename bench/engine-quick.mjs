// Quick engine throughput check on random GPT-2 124M weights (not the side-by-side peer
// benchmark): prefill 1x128 and batch-1 decode tokens/s.
//   npx tsc -p tsconfig.json && node bench/engine-quick.mjs [float32|bfloat16] [threads]
import { Model } from '../dist/index.js';

const dtype = process.argv[2] ?? 'float32';
const threads = Number(process.argv[3] ?? 2);
let t = performance.now();
const m = await Model.random('gpt2', { threads, seed: 1, dtype });
console.log(`load ${dtype}, ${threads} threads: ${(performance.now() - t).toFixed(0)} ms, weights ${(m.stats.weightBytes / 2 ** 20).toFixed(0)} MiB`);
const ids = new Uint32Array(128).map((_, i) => (i * 7919) % 50257);
await m.forward(ids); // warm-up
const reps = 3;
t = performance.now();
for (let r = 0; r < reps; r++) await m.forward(ids);
const prefill = (reps * 128) / ((performance.now() - t) / 1000);
const s = m.sequence();
await s.append(ids.subarray(0, 16), { logits: 'none' });
await s.append([1]);
const steps = 32;
t = performance.now();
for (let i = 0; i < steps; i++) await s.append([i + 2]);
const decode = steps / ((performance.now() - t) / 1000);
console.log(`prefill 1x128: ${prefill.toFixed(1)} tok/s; decode batch 1 (17..49 cached): ${decode.toFixed(1)} tok/s`);
m.dispose();
