// Tokenizer throughput: gpt2-node vs tiktoken (WASM), js-tiktoken and gpt-tokenizer, all
// with the GPT-2 vocabulary, on the same texts, interleaved in one run (median of rounds).
//   npx tsc -p tsconfig.json && node bench/tokenizer.mjs [--rounds 7] [--mb 1]
// Writes bench/results/tokenizer.json and bench/results/tokenizer.md.
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { get_encoding } from 'tiktoken';
import { getEncoding } from 'js-tiktoken';
import * as gptTokenizer from 'gpt-tokenizer/encoding/r50k_base';

import { Tokenizer } from '../dist/index.js';
import { benchText, shortTexts, tokenizerCorpus } from './tokenizer-corpus.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const ROUNDS = arg('rounds', 7);
const MB = arg('mb', 1);
const BATCH = arg('batch', 10000);

// Special tokens are disallowed by default in some peers (they throw): keep them out.
const clean = (s) => s.replaceAll('<|endoftext|>', '');
const mix = clean(benchText(MB * 1e6));
const varied = clean(tokenizerCorpus(4321).map((c) => c.text).join('\n')).toWellFormed();
const shorts = shortTexts(BATCH).map(clean);

const ours = Tokenizer.gpt2();
const tk = get_encoding('gpt2');
const jt = getEncoding('gpt2');
const impls = {
  'gpt2-node': (s) => ours.encode(s),
  'tiktoken (wasm)': (s) => tk.encode_ordinary(s),
  'js-tiktoken': (s) => jt.encode(s),
  'gpt-tokenizer': (s) => gptTokenizer.encode(s),
};

// Sanity: every implementation gives the same ids.
for (const [name, fn] of Object.entries(impls)) {
  for (const s of [mix.slice(0, 200_000), varied.slice(0, 100_000)]) {
    const a = Array.from(fn(s)), b = Array.from(ours.encode(s));
    if (a.length !== b.length || a.some((v, i) => v !== b[i])) console.warn(`warning: ${name} ids differ from gpt2-node`);
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bytes = (s) => Buffer.byteLength(s);

function timeIt(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const cases = {
  [`encode ${MB} MB mixed text (prose, code, scripts)`]: { text: mix, bytes: bytes(mix) },
  [`encode varied unicode corpus (${(bytes(varied) / 1e6).toFixed(2)} MB)`]: { text: varied, bytes: bytes(varied) },
};
const shortBytes = shorts.reduce((a, s) => a + bytes(s), 0);

const results = { single: {}, shortLoop: {}, batch: {} };
for (const c of Object.keys(cases)) results.single[c] = Object.fromEntries(Object.keys(impls).map((k) => [k, []]));
results.shortLoop = Object.fromEntries(Object.keys(impls).map((k) => [k, []]));
const peers = Object.keys(impls).filter((k) => k !== 'gpt2-node');
results.batch = Object.fromEntries(['gpt2-node encodeBatch (2 threads)', ...peers.map((k) => `${k} (2 worker threads)`),
  ...Object.keys(impls).map((k) => `${k} (loop)`)].map((k) => [k, []]));

// Peers on 2 worker threads: each worker encodes half of the batch.
async function startWorkers(impl) {
  const ws = [0, 1].map(() => new Worker(new URL('./tokenizer-peer-worker.mjs', import.meta.url), { workerData: { impl } }));
  await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
  return ws;
}
const peerWorkers = Object.fromEntries(await Promise.all(peers.map(async (k) => [k, await startWorkers(k)])));
async function peerBatch(impl, texts) {
  const half = Math.ceil(texts.length / 2);
  const parts = [texts.slice(0, half), texts.slice(half)];
  const res = await Promise.all(peerWorkers[impl].map((w, i) => new Promise((r) => {
    w.once('message', r);
    w.postMessage(parts[i]);
  })));
  return res.flat();
}
for (const k of peers) await peerBatch(k, shorts.slice(0, 1000));

// Warm-up once (JIT, caches), then interleaved rounds.
for (const fn of Object.values(impls)) fn(mix.slice(0, 100_000));
await ours.encodeBatch(shorts.slice(0, 1000));
for (let round = 0; round < ROUNDS; round++) {
  for (const [c, { text, bytes: n }] of Object.entries(cases)) {
    for (const [name, fn] of Object.entries(impls)) results.single[c][name].push(n / 1e6 / timeIt(() => fn(text)));
  }
  for (const [name, fn] of Object.entries(impls)) {
    const t = timeIt(() => {
      for (const s of shorts) fn(s);
    });
    results.shortLoop[name].push(shortBytes / 1e6 / t);
    results.batch[`${name} (loop)`].push(shorts.length / t);
  }
  const t0 = process.hrtime.bigint();
  await ours.encodeBatch(shorts);
  const t = Number(process.hrtime.bigint() - t0) / 1e9;
  results.batch['gpt2-node encodeBatch (2 threads)'].push(shorts.length / t);
  for (const k of peers) {
    const t1 = process.hrtime.bigint();
    await peerBatch(k, shorts);
    results.batch[`${k} (2 worker threads)`].push(shorts.length / (Number(process.hrtime.bigint() - t1) / 1e9));
  }
  process.stderr.write(`round ${round + 1}/${ROUNDS}\n`);
}
tk.free();
for (const ws of Object.values(peerWorkers)) for (const w of ws) await w.terminate();

const summarize = (obj) => Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, { median: median(v), samples: v }]));
const out = {
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, platform: `${process.platform}-${process.arch}` },
  rounds: ROUNDS,
  units: { single: 'MB/s (UTF-8 input bytes)', shortLoop: 'MB/s', batch: 'texts/s' },
  single: Object.fromEntries(Object.entries(results.single).map(([c, v]) => [c, summarize(v)])),
  shortLoop: { [`encode() in a loop over ${BATCH} short strings (${(shortBytes / 1e6).toFixed(2)} MB)`]: summarize(results.shortLoop) },
  batch: { [`${BATCH} short strings`]: summarize(results.batch) },
};
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', 'tokenizer.json'), JSON.stringify(out, null, 2) + '\n');

const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const table = (title, rows, unit, ref) => {
  const lines = [`### ${title}`, '', `| implementation | ${unit} (median) | vs ${ref} |`, '|---|---:|---:|'];
  const base = rows[ref].median;
  for (const [k, v] of Object.entries(rows)) lines.push(`| ${k} | ${fmt(v.median)} | ${(v.median / base).toFixed(2)}x |`);
  return lines.join('\n');
};
const md = [
  '# Tokenizer benchmark',
  '',
  `${out.date} · ${out.machine.cpu}, ${out.machine.cores} cores · Node ${out.machine.node} · ${ROUNDS} interleaved rounds, median.`,
  'All four use the GPT-2 vocabulary and give identical ids. `node bench/tokenizer.mjs` (after `npx tsc -p tsconfig.json`).',
  'Peers have no parallel batch API: in the batch case they run in 2 worker threads (half the texts each, results',
  'transferred back), and also in a loop on the main thread. gpt2-node encodeBatch uses its native pool (2 threads here).',
  'Measured on a shared 2-core machine with other jobs running: compare ratios within one run, not absolute numbers.',
  '',
  ...Object.entries(out.single).map(([c, rows]) => table(`Single-threaded: ${c}`, rows, 'MB/s', 'tiktoken (wasm)') + '\n'),
  ...Object.entries(out.shortLoop).map(([c, rows]) => table(`Single-threaded: ${c}`, rows, 'MB/s', 'tiktoken (wasm)') + '\n'),
  ...Object.entries(out.batch).map(([c, rows]) => table(`Batch: ${c}`, rows, 'texts/s', 'tiktoken (wasm) (2 worker threads)') + '\n'),
].join('\n');
writeFileSync(join(here, 'results', 'tokenizer.md'), md);
console.log(md);
