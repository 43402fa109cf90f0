// Generation under concurrency, side by side in one run: gpt2-node's engine (continuous
// batching: concurrent generate() calls share decode steps, prompts prefilled in chunks) vs
// node-llama-cpp's parallel sequences (one context, one sequence per request, batched
// llama_decode). GPT-2 124M random weights (bench/.peers), float32 in both, CPU.
// Each point: N requests at once, each a 128-token prompt + 128 greedy new tokens (EOS
// ignored). Reported: throughput (all new tokens / wall time, prefill included), mean time
// per output token (per request: (last token - first token) / (n - 1)), mean time to first token.
//
//   node bench/generation.mjs [--levels 1,8,32,128] [--rounds N] [--threads N] [--engines ids] [--verbose]
// Writes bench/results/generation-cpu.{json,md}. Needs `npx tsc -p tsconfig.json` and bench/setup-peers.sh.
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuEngines, BENCH, ROOT } from './lib/engines.mjs';
import { Child, fmtRate, machineInfo, median, writeResults } from './lib/harness.mjs';

const { values: args } = parseArgs({
  options: {
    levels: { type: 'string', default: '1,8,32,128' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    engines: { type: 'string', default: 'gpt2-node-f32,llama-f32' },
    prompt: { type: 'string', default: '128' },
    'new-tokens': { type: 'string', default: '128' },
    out: { type: 'string', default: 'generation-cpu' },
    'max-seconds': { type: 'string', default: '150' },
    verbose: { type: 'boolean', default: false },
  },
});
const threads = Number(args.threads), PROMPT = Number(args.prompt), NEW = Number(args['new-tokens']);
const levels = args.levels.split(',').map(Number);
const maxRounds = Number(args.rounds);
const maxSeconds = Number(args['max-seconds']);
// The big points take minutes per engine on a shared 2-core machine: fewer rounds there.
const roundsFor = (n) => (n >= 128 ? 1 : n >= 32 ? Math.min(2, maxRounds) : maxRounds);
const kvCacheTokens = Math.max(...levels) * (PROMPT + NEW + 16);
const engines = cpuEngines({ threads, ids: args.engines.split(',') });
for (const e of engines) if (e.id.startsWith('gpt2-node')) e.load = { ...e.load, kvCacheTokens };

const machine = machineInfo(ROOT);
console.error(`generation bench: ${machine.cpu}, ${machine.logicalCores} cores; levels ${levels.join(', ')}; ${engines.map((e) => e.id).join(', ')}`);
const t0 = performance.now();
const state = [];
for (const e of engines) {
  const s = { id: e.id, label: e.label, status: 'ok', reason: e.unavailable, info: null, results: {} };
  state.push(s);
  if (e.unavailable) { s.status = 'unavailable'; continue; }
  s.child = new Child({ id: e.id, ...e.spawn, verbose: args.verbose });
  const r = await s.child.request({ op: 'load', ...e.load });
  if (!r.ok) { s.status = 'unavailable'; s.reason = r.unavailable ?? r.error; s.child.kill(); delete s.child; continue; }
  const { ok, ...info } = r;
  s.info = info;
  console.error(`  ${e.id}: loaded ${JSON.stringify(info)}`);
}
const live = state.filter((s) => s.status === 'ok');
for (const n of levels) {
  for (let round = 0; round < roundsFor(n); round++) {
    for (let i = 0; i < live.length; i++) {
      const s = live[(i + round) % live.length]; // alternate who goes first
      const res = (s.results[n] ??= { tokensPerSecond: [], tpotMs: [], ttftMs: [], error: null });
      if (res.error) continue;
      const r = await s.child.request({ op: 'generate', concurrency: n, prompt: PROMPT, newTokens: NEW, reps: 1, maxSeconds }, 1_800_000);
      if (!r.ok) { res.error = String(r.error).slice(0, 300); console.error(`  ${n} ${s.id}: ${res.error}`); continue; }
      if (r.tokens[0] < n * NEW) res.stoppedEarly = true;
      res.tokensPerSecond.push(r.tokens[0] / r.seconds[0]);
      if (r.tpot[0] != null) res.tpotMs.push(r.tpot[0] * 1000);
      if (r.ttft[0] != null) res.ttftMs.push(r.ttft[0] * 1000);
      console.error(`  ${n} concurrent, round ${round + 1}, ${s.id}: ${(r.tokens[0] / r.seconds[0]).toFixed(1)} tok/s, TPOT ${(r.tpot[0] * 1000).toFixed(1)} ms, ${r.tokens[0]} tokens in ${r.seconds[0].toFixed(1)} s`);
    }
  }
}
for (const s of live) { await s.child.close(); delete s.child; }

for (const s of state) for (const r of Object.values(s.results)) {
  r.median = { tokensPerSecond: median(r.tokensPerSecond), tpotMs: median(r.tpotMs), ttftMs: median(r.ttftMs) };
}
const wallSeconds = (performance.now() - t0) / 1000;
machine.loadAverageAfter = os.loadavg().map((x) => Number(x.toFixed(2)));
const base = state.find((s) => s.id.startsWith('llama'));
const cell = (s, n) => {
  const r = s.results[n];
  if (!r || r.error) return r?.error ? 'failed' : '–';
  const b = base?.results[n]?.median;
  const ratio = (x, y, inv) => (x && y ? ` (${(inv ? y / x : x / y).toFixed(2)}x)` : '');
  return `${fmtRate(r.median.tokensPerSecond)}${r.stoppedEarly ? '¹' : ''}${ratio(r.median.tokensPerSecond, b?.tokensPerSecond)} · ${r.median.tpotMs?.toFixed(1) ?? '–'} ms`;
};
const md = `# Generation under concurrency on the CPU, side by side

Generated by \`node bench/generation.mjs${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\` on ${machine.date.slice(0, 16).replace('T', ' ')} UTC (took ${wallSeconds.toFixed(0)} s).
GPT-2 124M, random weights (../shared/peers), float32, ${threads} threads, each engine in its own process. N requests
submitted at once, each a ${PROMPT}-token prompt and ${NEW} greedy new tokens (EOS ignored). Each cell: throughput in
new tokens/s over the whole run (prefill included; in parentheses the ratio to node-llama-cpp, higher is better) ·
median time per output token of a request (its last token minus its first, over n - 1). Rounds: ${levels.map((n) => `${n}: ${roundsFor(n)}`).join(', ')}
(interleaved, engine order alternating; medians).

| engine | ${levels.map((n) => `${n} concurrent`).join(' | ')} |
|---|${levels.map(() => '---:').join('|')}|
${state.map((s) => `| ${s.label} | ${s.status === 'ok' ? levels.map((n) => cell(s, n)).join(' | ') : `not available: ${s.reason}`} |`).join('\n')}

¹ stopped after ${maxSeconds} s with fewer tokens (the rate counts the tokens done).

Mean time to first token (ms): ${state.filter((s) => s.status === 'ok').map((s) => `${s.label}: ${levels.map((n) => `${n}: ${s.results[n]?.median?.ttftMs?.toFixed(0) ?? '–'}`).join(', ')}`).join('; ')}.

gpt2-node: Model.generate() per request (engine thread, continuous batching, max 2048 tokens per step, prompts
prefilled in chunks of at most 256 tokens while decodes run). node-llama-cpp ${base?.info?.version ?? '?'} (llama.cpp
${base?.info?.llamaCppRelease ?? '?'}, prebuilt CPU binaries): one context with N sequences, batch size min(2048, N x ${PROMPT}),
one evaluate() generator per request, all advanced together each step (its best case: every step one batched
llama_decode; separate per-request loops were several times slower in a probe).
Machine: ${machine.cpu}, ${machine.logicalCores} logical cores, ${machine.simd.join(', ')}; Node ${machine.node}; load
average ${machine.loadAverage.join(' ')} before, ${machine.loadAverageAfter.join(' ')} after (shared machine: compare the
engines within this table). gpt2-node at ${machine.gitBranch}@${machine.gitCommit}.
`;
writeResults(join(BENCH, 'results', args.out), { bench: 'generation-cpu', threads, prompt: PROMPT, newTokens: NEW, levels, wallSeconds, machine,
  engines: state.map(({ child, ...rest }) => rest) }, md);
console.log(md);
