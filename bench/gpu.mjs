// GPU throughput of gpt2 (124M, random weights) on the CUDA backend, side by side with the CPU
// backend in the same run: prefill, decode (batch 1 / 8 / 32) and embedding throughput as
// cuda/cpu ratios, plus how close decode comes to the memory-bandwidth ceiling (weight bytes
// streamed per step / peak bandwidth) and prefill to the bf16 tensor-core peak. Meant for a
// GPU session; never run in CI.
//   npx tsc -p tsconfig.json && node bench/gpu.mjs [--peak-gbs N] [--peak-tflops N] [--write]
//   node bench/gpu.mjs --smoke     tiny shapes, so the script itself can be checked under cusim
// Peaks default from the device name (H100/H200/A100/L4/RTX 4090 table below); pass them for
// other GPUs. --write saves bench/results/engine-gpu.{json,md}.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Model, info } from '../dist/index.js';

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : undefined; };
const smoke = flag('--smoke');

const cuda = info().cuda;
if (!cuda.available) {
  console.error(`bench/gpu.mjs: CUDA not available (${cuda.reason})`);
  process.exit(1);
}
const device = cuda.devices[0];
if (/cusim/.test(device.name) && !smoke) {
  console.error('bench/gpu.mjs: the loaded plugin is the cusim emulator; use --smoke to check the script only');
  process.exit(1);
}
// Dense peaks: HBM GB/s and bf16 tensor-core TFLOP/s (no sparsity), from the vendors' sheets.
const PEAKS = [
  [/cusim/, 1, 1], [/H200/, 4800, 989], [/H100.*(SXM|HBM3)/, 3350, 989], [/H100/, 2000, 756], [/A100.*80/, 2039, 312],
  [/A100/, 1555, 312], [/L4\b/, 300, 121], [/4090/, 1008, 165],
];
const known = PEAKS.find(([re]) => re.test(device.name));
const peakGBs = value('--peak-gbs') ?? known?.[1];
const peakTflops = value('--peak-tflops') ?? known?.[2];

const preset = smoke ? { n_layer: 1, n_embd: 64, n_head: 4, n_positions: 128 } : 'gpt2';
const prefillLen = smoke ? 16 : 512, decodeSteps = smoke ? 2 : 64, batches = smoke ? [1, 2] : [1, 8, 32];
const embedTexts = smoke ? 2 : 64, embedLen = smoke ? 8 : 128;
const ids = (n, salt = 0) => new Uint32Array(n).map((_, i) => (i * 7919 + salt * 104729) % 50257);
const secs = (t0) => (performance.now() - t0) / 1000;

async function measure(opts) {
  const m = await Model.random(preset, { seed: 1, ...opts });
  const out = { device: m.device, dtype: m.dtype, weightBytes: m.stats.weightBytes };
  await m.forward(ids(prefillLen));  // warm-up (allocator, module load)
  let t = performance.now();
  const reps = smoke ? 1 : 5;
  for (let r = 0; r < reps; r++) await m.forward(ids(prefillLen, r), { logits: 'last' });
  out.prefillTokS = (reps * prefillLen) / secs(t);
  out.decodeTokS = {};
  for (const b of batches) {
    const seqs = Array.from({ length: b }, () => m.sequence());
    await Promise.all(seqs.map((s, i) => s.append(ids(64, i), { logits: 'none' })));
    await Promise.all(seqs.map((s) => s.append([1])));
    t = performance.now();
    for (let step = 0; step < decodeSteps; step++) await Promise.all(seqs.map((s, i) => s.append([(step * 31 + i) % 50257])));
    out.decodeTokS[b] = (b * decodeSteps) / secs(t);
    seqs.forEach((s) => s.dispose());
  }
  const texts = Array.from({ length: embedTexts }, (_, i) => ids(embedLen, i + 7));
  await m.forward(texts.slice(0, 2), { logits: 'none' });
  t = performance.now();
  await m.forward(texts, { logits: 'none' });
  out.embedTextsS = embedTexts / secs(t);
  out.config = m.config;
  m.dispose();
  return out;
}

const cpu = await measure({ device: 'cpu' });
const gpu32 = await measure({ device: 'cuda', dtype: 'float32' });
const gpu16 = await measure({ device: 'cuda', dtype: 'bfloat16' });

// Decode at batch 1 streams every packed GEMM weight (lm_head included) once per token; the fp32
// wte/wpe tables are read a row at a time, so they are left out of the bytes per step.
const streamedBytes = (r) => r.weightBytes - 4 * (r.config.vocab_size + r.config.n_positions) * r.config.n_embd;
const bandwidth = (r) => (streamedBytes(r) * r.decodeTokS[1]) / 1e9;
// Prefill FLOPs: 2 x GEMM parameters per token (+ causal attention, 2 x 2 x L x T/2 x E per token).
const c = gpu16.config;
const gemmParams = c.n_layer * (12 * c.n_embd * c.n_embd) + c.vocab_size * c.n_embd / prefillLen;
const flopsPerToken = 2 * gemmParams + 2 * c.n_layer * prefillLen * c.n_embd;
const tflops = (r) => (r.prefillTokS * flopsPerToken) / 1e12;

const rows = [];
const ratio = (a, b) => `${(a / b).toFixed(1)}x`;
rows.push(['prefill 1x' + prefillLen + ' (tok/s)', cpu.prefillTokS, gpu32.prefillTokS, gpu16.prefillTokS]);
for (const b of batches) rows.push([`decode batch ${b} (tok/s)`, cpu.decodeTokS[b], gpu32.decodeTokS[b], gpu16.decodeTokS[b]]);
rows.push([`embedding ${embedTexts}x${embedLen} (texts/s)`, cpu.embedTextsS, gpu32.embedTextsS, gpu16.embedTextsS]);
let md = `# ${smoke ? 'smoke run (1-layer model, cusim)' : 'gpt2 124M (random weights)'}: CUDA vs CPU, one run\n\nDevice: ${device.name} (sm_${device.computeCapability.replace('.', '')}, ${device.multiprocessors} SMs). `;
md += `Peaks used: ${peakGBs ?? '?'} GB/s, ${peakTflops ?? '?'} bf16 TFLOP/s.\n\n`;
md += '| workload | cpu | cuda fp32 | cuda bf16 | fp32/cpu | bf16/cpu |\n|---|---|---|---|---|---|\n';
for (const [name, a, b, d] of rows) md += `| ${name} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${d.toFixed(1)} | ${ratio(b, a)} | ${ratio(d, a)} |\n`;
for (const r of [gpu32, gpu16]) {
  const gbs = bandwidth(r);
  md += `\n${r.dtype}: decode batch 1 moves ~${gbs.toFixed(0)} GB/s of weights` +
    (peakGBs ? ` = ${((100 * gbs) / peakGBs).toFixed(1)}% of the bandwidth ceiling` : '') +
    `; prefill reaches ${tflops(r).toFixed(2)} TFLOP/s` +
    (peakTflops ? ` = ${((100 * tflops(r)) / peakTflops).toFixed(1)}% of the bf16 tensor-core peak` : '') + '.';
}
md += '\n';
console.log(md);
if (flag('--write')) {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  writeFileSync(join(dir, 'engine-gpu.json'), JSON.stringify({ device, peakGBs, peakTflops, cpu, gpu32, gpu16 }, null, 1));
  writeFileSync(join(dir, 'engine-gpu.md'), md);
}
