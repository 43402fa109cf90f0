// onnxruntime-node child (the engine under transformers.js), CPU execution provider.
// Prefill = gpt2_prefill.onnx (ids -> last hidden state); decode = gpt2_kv.onnx with past/present K,V
// (prompt run with an empty past, then one token per row per step, greedy on the logits). Sessions are
// Embed = the prefill model over padded batches, mean-pooled. Sessions are
// created lazily and only one is alive at a time, so the peak RSS is one model's, as a user would have.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { argmax, now, serve, tokenIds, Unavailable, decodeOp, embedOp, paddedBatches } from '../lib/child.mjs';

const require = createRequire(new URL('../peers/package.json', import.meta.url));
let ort, dir, sessionOptions, current = { name: null, session: null }, warmed = new Set();
const N_LAYER = 12, N_HEAD = 12, HEAD_DIM = 64, VOCAB = 50257;

async function session(name) {
  if (current.name !== name) {
    if (current.session) await current.session.release();
    current = { name, session: null };
    current.session = await ort.InferenceSession.create(join(dir, name), sessionOptions);
  }
  return current.session;
}

function idsTensor(batch, tokens, at) {
  const data = new BigInt64Array(batch * tokens);
  for (let b = 0; b < batch; b++) for (let t = 0; t < tokens; t++) data[b * tokens + t] = BigInt(at(b, t));
  return new ort.Tensor('int64', data, [batch, tokens]);
}

async function prefillOnce(s, ids) {
  const out = await s.run({ input_ids: ids });
  out.last_hidden_state.dispose?.();
}

// Embeddings through gpt2_prefill.onnx: length-sorted, right-padded batches of at most
// 2048 padded tokens (the budget gpt2-node's scheduler uses), mean over the real rows.
async function embedAll(texts) {
  const s = await session('gpt2_prefill.onnx');
  const out = new Array(texts.length);
  for (const batch of paddedBatches(texts.map((t) => t.length), 2048)) {
    const T = texts[batch[batch.length - 1]].length;
    const ids = idsTensor(batch.length, T, (b, t) => texts[batch[b]][t] ?? 0);
    const r = await s.run({ input_ids: ids });
    const h = r.last_hidden_state.data, E = r.last_hidden_state.dims[2];
    batch.forEach((i, b) => {
      const n = texts[i].length, v = new Float32Array(E);
      for (let t = 0; t < n; t++) for (let d = 0; d < E; d++) v[d] += h[(b * T + t) * E + d];
      for (let d = 0; d < E; d++) v[d] /= n;
      out[i] = v;
    });
    r.last_hidden_state.dispose?.();
  }
  return out;
}

// Stops early (fewer steps) once maxSeconds have passed, so a very slow engine still gives a rate.
async function decodeOnce(batch, prompt, steps, maxSeconds = Infinity) {
  const s = await session('gpt2_kv.onnx');
  let feeds = { input_ids: idsTensor(batch, prompt, (b, t) => tokenIds(b, t + b * 31)) };
  for (let i = 0; i < N_LAYER; i++) for (const c of 'kv') {
    feeds[`past_${c}_${i}`] = new ort.Tensor('float32', new Float32Array(0), [batch, N_HEAD, 0, HEAD_DIM]);
  }
  const stepFeeds = (out) => {
    const logits = out.logits.data;
    const next = idsTensor(batch, 1, (b) => argmax(logits, b * VOCAB, VOCAB));
    const f = { input_ids: next };
    for (let i = 0; i < N_LAYER; i++) for (const c of 'kv') f[`past_${c}_${i}`] = out[`present_${c}_${i}`];
    return f;
  };
  let out = await s.run(feeds);
  const t0 = now();
  let step = 0;
  while (step < steps && now() - t0 < maxSeconds) { out = await s.run(stepFeeds(out)); step++; }
  return { seconds: now() - t0, tokens: batch * step };
}

serve({
  async load({ onnxDir, threads }) {
    try { ort = require('onnxruntime-node'); }
    catch (e) { throw new Unavailable(`onnxruntime-node not installed (bench/setup-peers.sh): ${e.message}`); }
    dir = onnxDir;
    sessionOptions = {
      executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1,
      executionMode: 'sequential', graphOptimizationLevel: 'all',
    };
    const version = JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')).version;
    return { version };
  },
  async prefill({ batch, tokens, reps = 1 }) {
    const s = await session('gpt2_prefill.onnx');
    const ids = idsTensor(batch, tokens, tokenIds);
    const key = 'prefill';   // warm up once per op, on a small shape: the medians over rounds absorb the rest
    if (!warmed.has(key)) { await prefillOnce(s, idsTensor(1, Math.min(tokens, 16), tokenIds)); warmed.add(key); }
    const seconds = [];
    for (let r = 0; r < reps; r++) { const t0 = now(); await prefillOnce(s, ids); seconds.push(now() - t0); }
    return { seconds, tokens: batch * tokens };
  },
  decode: decodeOp(decodeOnce),
  embed: embedOp(embedAll),
});
