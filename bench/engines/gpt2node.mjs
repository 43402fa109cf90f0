// gpt2-node child: Model.load(<hf folder>, { dtype, threads }) from ../../dist/index.js.
// Prefill = Model.forward(batch of ids, { logits: 'none' }); decode = one Model.sequence() per row, appends
// of one token per row submitted together (the scheduler batches them), greedy on the returned logits;
// embed = Model.embed of all texts in one call.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { argmax, now, serve, tokenIds, Unavailable, decodeOp, generateOp, embedOp } from '../lib/child.mjs';

// GPT2_NODE_DIST: another build of the package entry (e.g. a mock for checking this child).
const dist = process.env.GPT2_NODE_DIST ?? fileURLToPath(new URL('../../dist/index.js', import.meta.url));
let model, warmed = new Set();

const rows = (batch, tokens, offset = 0) =>
  Array.from({ length: batch }, (_, b) => Uint32Array.from({ length: tokens }, (_, t) => tokenIds(b, t + offset)));

async function prefillOnce(ids) {
  await model.forward(ids, { logits: 'none' });
}

// append(..., { logits: 'last' }) gives the last position's logits: argmax over its final vocab entries.
function lastArgmax(o) {
  const vocab = model.config?.vocab_size ?? model.config?.vocabSize ?? 50257;
  return argmax(o.logits, o.logits.length - vocab, vocab);
}

// Stops early (fewer steps) once maxSeconds have passed, so a very slow engine still gives a rate.
async function decodeOnce(batch, prompt, steps, maxSeconds = Infinity) {
  const seqs = Array.from({ length: batch }, () => model.sequence());
  try {
    let outs = await Promise.all(seqs.map((s, b) => s.append(rows(1, prompt, b * 31)[0], { logits: 'last' })));
    let next = outs.map(lastArgmax);
    const t0 = now();
    let step = 0;
    while (step < steps && now() - t0 < maxSeconds) {
      outs = await Promise.all(seqs.map((s, b) => s.append(Uint32Array.of(next[b]), { logits: 'last' })));
      next = outs.map(lastArgmax);
      step++;
    }
    return { seconds: now() - t0, tokens: batch * step };
  } finally {
    for (const s of seqs) s.dispose();
  }
}

// The generation op (bench/generation.mjs): `concurrency` generate() calls at once, each a
// `prompt`-token prompt and `newTokens` greedy tokens (EOS ignored), batched by the engine.
async function generateOnce(concurrency, prompt, newTokens, maxSeconds = Infinity) {
  const t0 = now();
  const stop = new AbortController();
  const timer = Number.isFinite(maxSeconds) ? setTimeout(() => stop.abort(), maxSeconds * 1000) : null;
  const gens = Array.from({ length: concurrency }, (_, b) =>
    model.generate(rows(1, prompt, b * 31)[0], { maxNewTokens: newTokens, ignoreEos: true, signal: stop.signal }));
  const per = await Promise.all(gens.map(async (g) => {
    let first = null, last = null, n = 0;
    for await (const _ of g) { last = now(); first ??= last; n++; }
    return { first, last, n };
  }));
  clearTimeout(timer);
  return { seconds: now() - t0, per: per.map((p) => ({ ttft: p.first - t0, tpot: (p.last - p.first) / Math.max(1, p.n - 1), n: p.n })) };
}

serve({
  async load({ dir, dtype, threads, kvCacheTokens }) {
    if (!existsSync(dist)) throw new Unavailable('dist/index.js missing (run npx tsc -p tsconfig.json)');
    let mod;
    try { mod = await import(pathToFileURL(dist).href); }
    catch (e) { throw new Unavailable(`cannot import dist/index.js: ${e.message}`); }
    if (typeof mod.Model?.load !== 'function') throw new Unavailable('gpt2-node has no Model.load yet');
    try { model = await mod.Model.load(dir, { device: 'cpu', dtype, threads, ...(kvCacheTokens ? { kvCacheTokens } : {}) }); }
    catch (e) { throw new Unavailable(`Model.load failed: ${e.message}`); }
    for (const m of ['forward', 'sequence']) {
      if (typeof model[m] !== 'function') throw new Unavailable(`Model.${m} is missing`);
    }
    return { version: mod.version ?? null, device: model.device, dtype: model.dtype };
  },
  async prefill({ batch, tokens, reps = 1 }) {
    const ids = rows(batch, tokens);
    const key = 'prefill';   // warm up once per op, on a small shape: the medians over rounds absorb the rest
    if (!warmed.has(key)) { await prefillOnce(rows(1, Math.min(tokens, 16))); warmed.add(key); }
    const seconds = [];
    for (let r = 0; r < reps; r++) { const t0 = now(); await prefillOnce(ids); seconds.push(now() - t0); }
    return { seconds, tokens: batch * tokens };
  },
  decode: decodeOp(decodeOnce),
  generate: generateOp(generateOnce),
  // One embed() call: the engine batches the texts itself (length-grouped, no padding).
  embed: embedOp((texts) => model.embed(texts, { pooling: 'mean' })),
});
