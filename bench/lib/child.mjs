// The child side of the bench protocol (see harness.mjs): commands arrive as JSON lines on stdin, replies
// go as JSON lines to fd 3, so whatever an engine prints on stdout/stderr cannot corrupt the protocol.
// A child exports handlers { load, <op>... }; `load` may throw Unavailable to report "not available: why".
import { readFileSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';

export class Unavailable extends Error {}

/** Peak and current resident set size of this process, in bytes (Linux /proc/self/status). */
export function memory() {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key) => {
    const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) * 1024 : null;
  };
  return { peakRss: kb('VmHWM'), rss: kb('VmRSS') };
}

export const now = () => Number(process.hrtime.bigint()) / 1e9;

/** Deterministic token ids shared by every engine (identical to torch_child.py's): row b, position t. */
export function tokenIds(b, t, vocab = 50000) {
  return (b * 104729 + t * 7919 + 13) % vocab;
}

export function argmax(a, offset = 0, n = a.length - offset) {
  let best = 0, bestValue = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = a[offset + i];
    if (v > bestValue) { bestValue = v; best = i; }
  }
  return best;
}

function reply(msg) {
  writeSync(3, JSON.stringify(msg) + '\n');
}

/** Serve commands until stdin closes or { op: 'exit' } arrives. */
export function serve(handlers) {
  const lines = createInterface({ input: process.stdin });
  let chain = Promise.resolve();
  lines.on('line', (line) => {
    chain = chain.then(async () => {
      if (!line.trim()) return;
      const msg = JSON.parse(line);
      if (msg.op === 'exit') { reply({ ok: true }); process.exit(0); }
      if (msg.op === 'memory') { reply({ ok: true, ...memory() }); return; }
      const handler = handlers[msg.op];
      if (!handler) { reply({ ok: false, error: `unknown op ${msg.op}` }); return; }
      try {
        reply({ ok: true, ...(await handler(msg)) });
      } catch (e) {
        if (e instanceof Unavailable) reply({ ok: false, unavailable: e.message });
        else reply({ ok: false, error: String(e?.stack ?? e) });
      }
    });
  });
  lines.on('close', () => chain.then(() => process.exit(0)));
}

// The decode op every engine child shares: one warm-up on a tiny decode, then `reps`
// measured runs of decodeOnce(batch, prompt, steps, maxSeconds) -> { seconds, tokens }.
export function decodeOp(decodeOnce) {
  let warmed = false;
  return async ({ batch, prompt, steps, reps = 1, maxSeconds }) => {
    if (!warmed) { await decodeOnce(1, prompt, 2); warmed = true; }
    const seconds = [], tokens = [];
    for (let r = 0; r < reps; r++) {
      const m = await decodeOnce(batch, prompt, steps, maxSeconds);
      seconds.push(m.seconds); tokens.push(m.tokens);
    }
    return { seconds, tokens };
  };
}

// The generate op (bench/generation.mjs): one small warm-up, then `reps` runs of
// generateOnce(concurrency, prompt, newTokens, maxSeconds) -> { seconds, per: [{ ttft, tpot, n }] }
// (it stops early, with fewer tokens, once maxSeconds have passed).
// Replies tokens per run plus the mean time to first token and time per output token.
export function generateOp(generateOnce) {
  let warmed = false;
  return async ({ concurrency, prompt, newTokens, reps = 1, maxSeconds = Infinity }) => {
    if (!warmed) { await generateOnce(1, 8, 4); warmed = true; }
    const seconds = [], tokens = [], tpot = [], ttft = [];
    for (let r = 0; r < reps; r++) {
      const m = await generateOnce(concurrency, prompt, newTokens, maxSeconds);
      seconds.push(m.seconds);
      tokens.push(m.per.reduce((a, p) => a + p.n, 0));
      const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
      tpot.push(mean(m.per.filter((p) => p.n >= 2).map((p) => p.tpot))); // requests cut before 2 tokens have none
      ttft.push(mean(m.per.filter((p) => p.n >= 1).map((p) => p.ttft)));
    }
    return { seconds, tokens, tpot, ttft };
  };
}

// The embedding workload every engine child shares (torch_child.py has the same): `count`
// texts of minTokens ... maxTokens tokens (text i has embedLength(i) tokens, ids tokenIds(i, t)).
export function embedLength(i, minTokens, maxTokens) {
  return minTokens + ((i * 7919 + 13) % (maxTokens - minTokens + 1));
}
export function embedTexts(count, minTokens, maxTokens) {
  return Array.from({ length: count }, (_, i) => Uint32Array.from({ length: embedLength(i, minTokens, maxTokens) }, (_, t) => tokenIds(i, t)));
}

// For engines that need rectangular batches: text indices sorted by length, cut into
// batches whose padded size (rows x longest) stays within maxTokens. Right padding does not
// change a causal model's outputs at the real positions, so no attention mask is needed.
export function paddedBatches(lengths, maxTokens) {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b]);
  const batches = [];
  let cur = [];
  for (const i of order) {
    if (cur.length && (cur.length + 1) * lengths[i] > maxTokens) { batches.push(cur); cur = []; }
    cur.push(i);
  }
  if (cur.length) batches.push(cur);
  return batches;
}

// The embed op: one warm-up on 4 short texts, then `reps` timed runs of
// embedAll(texts) (mean-pooled vectors, in input order). tokens = real tokens embedded.
export function embedOp(embedAll) {
  let warmed = false;
  return async ({ count, minTokens, maxTokens, reps = 1 }) => {
    if (!warmed) { await embedAll(embedTexts(4, 8, 16)); warmed = true; }
    const texts = embedTexts(count, minTokens, maxTokens);
    const seconds = [];
    let dim = 0;
    for (let r = 0; r < reps; r++) {
      const t0 = now();
      const out = await embedAll(texts);
      seconds.push(now() - t0);
      if (out.length !== texts.length) throw new Error(`embedded ${out.length} of ${texts.length} texts`);
      dim = out[0].length;
    }
    return { seconds, tokens: texts.reduce((a, t) => a + t.length, 0), texts: texts.length, dim };
  };
}
