// Load test of `gpt2-node serve`: the server in a child process (dist/, so run `npx tsc -p tsconfig.json`
// first) on one model, then autocannon (programmatic) with N keep-alive connections for a fixed duration:
//   1. POST /v1/embeddings, one short text per request;
//   2. POST /v1/completions, stream: true, max_tokens 16 (each response read to its `data: [DONE]`).
// Reports requests/s, latency p50/p99/max, errors / non-2xx / timeouts / incomplete streams (all must be
// zero) and tokens/s (from the server's own /metrics counters), plus the engine's largest batch.
//
//   npm run bench -- load [--duration S] [--connections N] [--quick] [--model DIR | --random PRESET]
//                         [--threads N] [--max-tokens N] [--timeout S] [--out NAME]
// Defaults: 60 s per phase, 64 connections, --random gpt2. --quick: 5 s per phase (a check that it works).
// Writes bench/results/NAME.{json,md} (NAME: server-load-cpu, or server-load-cpu-quick with --quick).
import { spawn } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { BENCH, ROOT } from './lib/engines.mjs';
import { machineInfo, writeResults } from './lib/harness.mjs';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    connections: { type: 'string', default: '64' },
    model: { type: 'string' },
    random: { type: 'string' },
    threads: { type: 'string' },
    'max-tokens': { type: 'string', default: '16' },
    timeout: { type: 'string', default: '300' },
    out: { type: 'string' },
  },
});
const duration = Number(args.duration ?? (args.quick ? 5 : 60));
const connections = Number(args.connections);
const maxTokens = Number(args['max-tokens']);
const timeout = Number(args.timeout); // seconds: slow under load is not an error, a stuck request is
const name = args.out ?? (args.quick ? 'server-load-cpu-quick' : 'server-load-cpu');

// The server runs in its own process (as deployed), so autocannon does not share its event loop.
const serveArgs = [join(ROOT, 'dist/cli/main.js'), 'serve', '--port', '0', '--json', '--max-concurrent', String(Math.max(256, connections * 2)),
  ...(args.model ? ['--model', args.model] : ['--random', args.random ?? 'gpt2']), ...(args.threads ? ['--threads', args.threads] : [])];
const child = spawn(process.execPath, serveArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
const info = await new Promise((resolve, reject) => {
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (line) resolve(JSON.parse(line));
  });
  child.on('exit', (code) => reject(new Error(`gpt2-node serve exited with ${code}`)));
});
const { url, model: modelName } = info;
const machine = machineInfo(ROOT);
console.error(`server load bench: ${modelName} on ${info.device} (${info.dtype}), ${url}, ${connections} connections, ${duration} s per phase`);

/** The server's counters, for token rates (the server counts what it really processed). */
async function counters() {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (re) => Number(re.exec(text)?.[1] ?? 0);
  return {
    embeddingTokens: get(/^gpt2_server_prompt_tokens_total\{route="\/v1\/embeddings"\} (\d+)/m),
    promptTokens: get(/^gpt2_server_prompt_tokens_total\{route="\/v1\/completions"\} (\d+)/m),
    completionTokens: get(/^gpt2_server_completion_tokens_total (\d+)/m),
    maxStepSequences: get(/^gpt2_engine_max_step_sequences (\d+)/m),
    engineSteps: get(/^gpt2_engine_steps (\d+)/m),
  };
}

const words = ['river', 'market', 'engine', 'garden', 'signal', 'winter', 'harbor', 'lantern', 'orbit', 'meadow'];
const texts = Array.from({ length: 64 }, (_, i) => `A short note about the ${words[i % 10]} and the ${words[(i * 7 + 3) % 10]}, number ${i}.`);

async function phase(label, makeBody, check) {
  let incomplete = 0;
  const before = await counters();
  const t0 = performance.now();
  const result = await autocannon({
    url, connections, duration, timeout, pipelining: 1,
    requests: texts.map((t) => ({
      method: 'POST', path: label === 'embeddings' ? '/v1/embeddings' : '/v1/completions',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(makeBody(t)),
      onResponse: (status, body) => {
        if (status === 200 && !check(body)) incomplete++;
      },
    })),
  });
  const seconds = (performance.now() - t0) / 1000;
  const after = await counters();
  const r = {
    label, connections, durationSeconds: duration, wallSeconds: Number(seconds.toFixed(2)),
    requests: result.requests.total, requestsPerSecond: result.requests.average,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max, mean: result.latency.mean },
    errors: result.errors, timeouts: result.timeouts, non2xx: result.non2xx, incomplete,
    statusCodes: result.statusCodeStats,
    tokens: {
      embedding: after.embeddingTokens - before.embeddingTokens,
      prompt: after.promptTokens - before.promptTokens,
      completion: after.completionTokens - before.completionTokens,
    },
    engineSteps: after.engineSteps - before.engineSteps,
    engineMaxStepSequences: after.maxStepSequences,
  };
  r.tokensPerSecond = Number(((label === 'embeddings' ? r.tokens.embedding : r.tokens.completion) / seconds).toFixed(1));
  console.error(`${label}: ${r.requestsPerSecond} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, `
    + `errors ${r.errors}, timeouts ${r.timeouts}, non-2xx ${r.non2xx}, incomplete ${incomplete}, ${r.tokensPerSecond} tokens/s`);
  return r;
}

/** Waits until the server has no request in flight (work cut off at the end of a phase drains first). */
async function settle() {
  for (let i = 0; i < 600; i++) {
    const text = await (await fetch(`${url}/metrics`)).text();
    if (/^gpt2_server_requests_in_flight 0$/m.test(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const phases = [];
try {
  phases.push(await phase('embeddings', (t) => ({ model: modelName, input: t }), (body) => body.includes('"object":"list"')));
  await settle();
  phases.push(await phase('completions (stream)', (t) => ({ model: modelName, prompt: t, max_tokens: maxTokens, stream: true, temperature: 1, seed: 1 }),
    (body) => body.trimEnd().endsWith('data: [DONE]')));
} finally {
  child.kill('SIGTERM');
}
const exitCode = await exited;
machine.loadAverageAfter = os.loadavg().map((x) => Number(x.toFixed(2)));
const failures = phases.reduce((n, p) => n + p.errors + p.timeouts + p.non2xx + p.incomplete, 0);

const json = { bench: 'server-load', quick: args.quick, model: modelName, device: info.device, dtype: info.dtype, connections, serverExitCode: exitCode,
  durationSeconds: duration, maxTokens, timeoutSeconds: timeout, failures, machine, phases };
const md = `# Server load: ${modelName} (${info.dtype}, ${info.device}), ${connections} connections, ${duration} s per phase

\`npm run bench -- load${process.argv.slice(2).map((a) => ` ${a}`).join('')}\` on ${machine.cpu} (${machine.logicalCores} logical cores),
load average ${machine.loadAverage.join(' / ')} before, ${machine.loadAverageAfter.join(' / ')} after; ${machine.date}, ${machine.gitBranch} ${machine.gitCommit}.
autocannon (keep-alive, no pipelining) against \`gpt2-node serve\` in its own process; embeddings: one short text per request;
completions: \`stream: true\`, \`max_tokens\` ${maxTokens}, each response read to \`data: [DONE]\`. Tokens/s from the server's
own counters (embedding input tokens; generated tokens).

| phase | requests | req/s | p50 ms | p99 ms | max ms | errors | timeouts | non-2xx | incomplete | tokens/s | engine largest batch |
|---|---|---|---|---|---|---|---|---|---|---|---|
${phases.map((p) => `| ${p.label} | ${p.requests} | ${p.requestsPerSecond} | ${p.latencyMs.p50} | ${p.latencyMs.p99} | ${p.latencyMs.max} | ${p.errors} | ${p.timeouts} | ${p.non2xx} | ${p.incomplete} | ${p.tokensPerSecond} | ${p.engineMaxStepSequences} |`).join('\n')}

${failures === 0 ? 'No errors, timeouts, non-2xx answers or incomplete streams.' : `**${failures} failed requests** (see the JSON).`}
`;
writeResults(join(BENCH, 'results', name), json, md);
console.error(`wrote bench/results/${name}.{json,md}`);
process.exitCode = failures === 0 && exitCode === 0 ? 0 : 1;
