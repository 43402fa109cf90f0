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
