// GPT-2 124M (random weights from ../shared/peers, identical in every engine) on the CPU, side by side in one
// run: gpt2-node float32/bfloat16, onnxruntime-node fp32, node-llama-cpp f32/f16/bf16, PyTorch fp32/bf16.
// Prefill tokens/s for batch x tokens 1x128, 8x128, 32x64; decode tokens/s at batch 1, 8, 32 (32-token
// prompt untimed, then 32 greedy steps with the KV cache); peak RSS of each engine's own child process.
//
//   npm run bench -- engine [--quick] [--rounds N] [--threads N] [--engines id,id] [--workloads id,id]
//                           [--out NAME] [--max-seconds S] [--slow-seconds S] [--verbose]
// Needs bench/setup-peers.sh once (weights + peers) and `npx tsc -p tsconfig.json` for gpt2-node.
// Writes bench/results/NAME.{json,md} (NAME: engine-cpu, or engine-cpu-quick with --quick).
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuEngines, BENCH, ROOT } from './lib/engines.mjs';
import { fmtBytes, machineInfo, markdownTable, runInterleaved, writeResults } from './lib/harness.mjs';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    threads: { type: 'string', default: '2' },
    engines: { type: 'string' },
    workloads: { type: 'string' },
    out: { type: 'string' },
    'max-seconds': { type: 'string' },
    'slow-seconds': { type: 'string' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('usage: npm run bench -- engine [--quick] [--rounds N] [--threads N] [--engines ids] [--workloads ids] [--out NAME]\n       [--max-seconds S] [--slow-seconds S] [--verbose]\nengines: ' + cpuEngines().map((e) => e.id).join(', '));
  process.exit(0);
}
const threads = Number(args.threads);
const quick = args.quick;
const rounds = Number(args.rounds ?? (quick ? 1 : 5));

// slowSeconds: a measurement slower than this ends that engine's rounds for that workload (one sample, no median).
// maxSeconds: a measurement projected (from the engine's slowest rate so far for that kind) to take longer is skipped.
const json_opts = {
  slowSeconds: Number(args['slow-seconds'] ?? (quick ? 30 : 60)),
  maxSeconds: Number(args['max-seconds'] ?? (quick ? 60 : 240)),
};
// Shapes. Quick mode: tiny shapes, one round, to check that every child runs end to end.
const PROMPT = quick ? 4 : 32, STEPS = quick ? 2 : 32;
const prefillShapes = quick ? [[1, 8], [2, 8]] : [[1, 128], [8, 128], [32, 64]];
const decodeBatches = quick ? [1, 2] : [1, 8, 32];
let workloads = [
  ...prefillShapes.map(([batch, tokens]) => ({
    id: `prefill-${batch}x${tokens}`, label: `prefill ${batch}x${tokens}`, kind: 'prefill',
    tokens: batch * tokens * (batch * tokens <= 128 ? 2 : 1),
    msg: { op: 'prefill', batch, tokens, reps: batch * tokens <= 128 ? 2 : 1 },
  })),
  ...decodeBatches.map((batch) => ({
    // The child stops early after maxSeconds (fewer steps, still a rate), so decode is never skipped.
    id: `decode-b${batch}`, label: `decode b${batch}`, kind: 'decode', tokens: batch * STEPS, projectable: false,
    msg: { op: 'decode', batch, prompt: PROMPT, steps: STEPS, reps: 1, maxSeconds: json_opts.maxSeconds / 2 },
  })),
];
if (args.workloads) {
  const keep = new Set(args.workloads.split(','));
  workloads = workloads.filter((w) => keep.has(w.id));
}

let engines = cpuEngines({ threads, ids: args.engines?.split(',') });

const machine = machineInfo(ROOT);
console.error(`engine bench: ${machine.cpu} (${machine.simd.join(' ')}), ${machine.logicalCores} cores, node ${machine.node}`);
console.error(`threads ${threads}, rounds ${rounds}${quick ? ' (quick)' : ''}, ${engines.length} engines, ${workloads.length} workloads`);
const t0 = performance.now();
const name = args.out ?? (quick ? 'engine-cpu-quick' : 'engine-cpu');
const state = await runInterleaved(engines, workloads, {
  rounds, verbose: args.verbose, ...json_opts,
  timeoutMs: quick ? 180_000 : 600_000,
  // After each workload: write what is measured so far, so an interrupted run still leaves its table.
  onWorkload: (partial) => report(partial, { partial: true }),
});
report(state, { partial: false });
function report(state, { partial }) {
  const wallSeconds = (performance.now() - t0) / 1000;
  machine.loadAverageAfter = os.loadavg().map((x) => Number(x.toFixed(2)));
  const versions = {};
  for (const s of state) if (s.info) versions[s.id] = s.info;
  const json = {
    bench: 'engine-cpu', quick, threads, rounds, ...json_opts, prompt: PROMPT, steps: STEPS, wallSeconds, machine,
    workloads: workloads.map(({ id, label, kind, tokens, msg }) => ({ id, label, kind, tokens, ...msg })),
    partial,
    engines: state.map(({ child, rates, ...rest }) => rest),
  };

  const peerVersion = (id) => versions[id]?.version ?? '?';
  const md = `# GPT-2 124M on the CPU, side by side${quick ? ' (quick smoke run: tiny shapes, not a measurement)' : ''}${partial ? ' (PARTIAL: run still going or interrupted)' : ''}

Generated by \`npm run bench -- engine${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\` on ${machine.date.slice(0, 16).replace('T', ' ')} UTC (took ${wallSeconds.toFixed(0)} s).
Median tokens/s over ${rounds} interleaved round(s), ${threads} threads, each engine in its own process; in
parentheses: ratio to onnxruntime-node fp32. Prefill = batch x tokens through the model (last hidden state; no
lm_head except node-llama-cpp, which always computes the last token's logits). Decode = ${STEPS} greedy steps after
a ${PROMPT}-token prompt, KV cache, all rows of the batch stepping together; tokens/s counts every row's tokens.

${markdownTable(state, workloads, { baseline: 'ort-f32', rounds })}

¹ fewer samples than rounds: a measurement took over ${json_opts.slowSeconds} s, so that engine ran it once. "skipped": its
earlier rate projected one measurement at over ${json_opts.maxSeconds} s. Decode stops early after ${json_opts.maxSeconds / 2} s
(fewer steps; the rate still counts only the tokens done).

Machine: ${machine.cpu}, ${machine.logicalCores} logical cores, SIMD: ${machine.simd.join(', ')}${
  machine.simd.some((f) => f.startsWith('amx')) ? '' : ' (no AMX)'}${machine.simd.includes('avx512f') ? '' : ' (no AVX-512)'};
${fmtBytes(machine.memTotal)} RAM; ${machine.os}; Node ${machine.node}; load average ${machine.loadAverage.join(' ')} before,
${machine.loadAverageAfter.join(' ')} after (the machine is shared: compare rows of this table, not runs).
gpt2-node at ${machine.gitBranch}@${machine.gitCommit}.

Peers: onnxruntime-node ${peerVersion('ort-f32')} (CPU EP, intraOpNumThreads ${threads}); node-llama-cpp ${
  versions['llama-f32']?.version ?? '?'} (llama.cpp ${versions['llama-f32']?.llamaCppRelease ?? '?'}, prebuilt CPU binaries); PyTorch ${
  peerVersion('torch-f32')} (BLAS: ${versions['torch-f32']?.blas ?? '?'}; bf16 = module cast to bfloat16).
Peak RSS = VmHWM of the engine's child process after all its runs (weights, KV caches, workspaces, runtime).
Weights: ../shared/peers (same random GPT-2 124M in every format).
${state.filter((s) => s.status === 'ok').flatMap((s) => Object.entries(s.results).filter(([, r]) => r.error)
  .map(([w, r]) => `\n- ${s.label} ${w} failed: ${r.error}`)).join('')}
`;

  writeResults(join(BENCH, 'results', name), json, md);
  if (!partial) {
    console.log(md);
    console.error(`wrote bench/results/${name}.{json,md}`);
  }
}
