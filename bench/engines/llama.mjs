// node-llama-cpp child (llama.cpp, prebuilt CPU binaries; never downloads or compiles).
// One context per batch size (sequences = batch, each with its own KV cells; batchSize large enough that a
// whole prefill goes in one llama_decode). Prefill = every row's evaluateWithoutGeneratingNewTokens at once
// (node-llama-cpp merges concurrent sequences into shared batches); decode = one greedy evaluate() generator
// per row advanced together, so each step is one batched llama_decode of `batch` tokens.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { now, serve, tokenIds, Unavailable, decodeOp, generateOp, embedOp } from '../lib/child.mjs';

const require = createRequire(new URL('../peers/package.json', import.meta.url));
let llama, model, threads, embedCtx = null, ctx = null, ctxKey = null, warmed = new Set(), info = {};

async function context(batch, perSequence, batchTokens) {
  const key = `${batch}/${perSequence}/${batchTokens}`;
  if (ctxKey !== key) {
    if (ctx) await ctx.dispose();
    ctx = null; ctxKey = null;
    ctx = await model.createContext({
      sequences: batch, contextSize: perSequence, batchSize: Math.max(512, batchTokens), threads,
    });
    ctx.seqs = Array.from({ length: batch }, () => ctx.getSequence());
    ctxKey = key;
  }
  return ctx;
}

const row = (b, n, offset = 0) => Array.from({ length: n }, (_, t) => tokenIds(b, t + offset));

async function prefillOnce(c, batch, tokens) {
  await Promise.all(c.seqs.map((s, b) => s.evaluateWithoutGeneratingNewTokens(row(b, tokens))));
  const t1 = now();
  await Promise.all(c.seqs.map((s) => s.clearHistory()));
  return t1;
}

// Stops early (fewer steps) once maxSeconds have passed, so a very slow engine still gives a rate.
async function decodeOnce(batch, prompt, steps, maxSeconds = Infinity) {
  const c = await context(batch, 256, batch * prompt);
  const gens = c.seqs.map((s, b) => s.evaluate(row(b, prompt, b * 31), { temperature: 0, yieldEogToken: true }));
  try {
    await Promise.all(gens.map((g) => g.next()));      // prompt + first sampled token
    const t0 = now();
    let step = 0;
    while (step < steps && now() - t0 < maxSeconds) { await Promise.all(gens.map((g) => g.next())); step++; }
    return { seconds: now() - t0, tokens: batch * step };
  } finally {
    await Promise.all(gens.map((g) => g.return()));
    await Promise.all(c.seqs.map((s) => s.clearHistory()));
  }
}

// The generation op (bench/generation.mjs): one context with `concurrency` sequences
// (node-llama-cpp's parallel sequences), each evaluating its prompt and then generating
// `newTokens` greedy tokens. All generators are advanced together each step (what
// node-llama-cpp batches best: one llama_decode of every pending sequence; independent
// per-request loops measured several times slower here). Batch size min(2048, N x prompt).
async function generateOnce(concurrency, prompt, newTokens, maxSeconds = Infinity) {
  const c = await context(concurrency, Math.max(256, prompt + newTokens + 8), Math.min(2048, concurrency * prompt));
  const t0 = now();
  const gens = c.seqs.map((s, b) => s.evaluate(row(b, prompt, b * 31), { temperature: 0, yieldEogToken: true }));
  let first = null, last = null, n = 0;
  try {
    while (n < newTokens && now() - t0 < maxSeconds) {
      await Promise.all(gens.map((g) => g.next()));
      last = now(); first ??= last; n++;
    }
  } finally {
    await Promise.all(gens.map((g) => g.return()));
  }
  const seconds = now() - t0;
  await Promise.all(c.seqs.map((s) => s.clearHistory()));
  const per = { ttft: first - t0, tpot: (last - first) / Math.max(1, n - 1), n };
  return { seconds, per: c.seqs.map(() => per) };
}

serve({
  async load({ ggufPath, threads: n }) {
    threads = n;
    let mod;
    try { mod = await import(pathToFileURL(require.resolve('node-llama-cpp')).href); }
    catch (e) { throw new Unavailable(`node-llama-cpp not installed (bench/setup-peers.sh): ${e.message}`); }
    try {
      llama = await mod.getLlama({
        gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
        logLevel: mod.LlamaLogLevel.error, maxThreads: n,
      });
    } catch (e) { throw new Unavailable(`getLlama failed (no usable prebuilt CPU binary?): ${e.message}`); }
    model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
    const modules = new URL('../peers/node_modules/', import.meta.url);
    const pkg = JSON.parse(readFileSync(new URL('node-llama-cpp/package.json', modules), 'utf8'));
    let llamaCpp = null;
    try { llamaCpp = JSON.parse(readFileSync(new URL('@node-llama-cpp/linux-x64/bins/linux-x64/_nlcBuildMetadata.json', modules), 'utf8')); } catch {}
    info = {
      version: pkg.version,
      llamaCppRelease: llama.llamaCppRelease?.release ?? llamaCpp?.buildOptions?.llamaCpp?.release ?? null,
      systemInfo: llama.systemInfo ?? null,
    };
    return info;
  },
  async prefill({ batch, tokens, reps = 1 }) {
    const key = 'prefill';   // warm up once per op, on a small shape: the medians over rounds absorb the rest
    if (!warmed.has(key)) { await prefillOnce(await context(1, 256, 16), 1, Math.min(tokens, 16)); warmed.add(key); }
    const c = await context(batch, Math.max(256, tokens), batch * tokens);
    const seconds = [];
    for (let r = 0; r < reps; r++) { const t0 = now(); const t1 = await prefillOnce(c, batch, tokens); seconds.push(t1 - t0); }
    return { seconds, tokens: batch * tokens, flashAttention: c.flashAttention ?? null };
  },
  decode: decodeOp(decodeOnce),
  generate: generateOp(generateOnce),
  // node-llama-cpp's embedding context: getEmbeddingFor per text (it runs one sequence at a
  // time); llama.cpp pools as the GGUF says (GPT-2 files carry no pooling type).
  embed: embedOp(async (texts) => {
    if (ctx) { await ctx.dispose(); ctx = null; ctxKey = null; }
    embedCtx ??= await model.createEmbeddingContext({ contextSize: 1024, batchSize: 1024, threads });
    const out = [];
    for (const t of texts) out.push(Float32Array.from((await embedCtx.getEmbeddingFor(Array.from(t))).vector));
    return out;
  }),
});
