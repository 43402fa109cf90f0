// Smoke check (no vitest, no timing): every engine child of bench/engine.mjs starts, loads the shared
// weights, runs a tiny prefill and a tiny decode, and reports its peak RSS.
//   npm run bench -- smoke [--engines id,id] [--require id,id]
// Exit 1 when an engine fails, or when one named in --require (default: the peers ort-f32, llama-f32,
// torch-f32) is not available; gpt2-node may be "not available" until its engine lands.
import { parseArgs } from 'node:util';
import { cpuEngines } from './lib/engines.mjs';
import { Child, fmtBytes } from './lib/harness.mjs';

const { values: args } = parseArgs({ options: { engines: { type: 'string' }, require: { type: 'string' } } });
const required = new Set((args.require ?? 'ort-f32,llama-f32,torch-f32').split(',').filter(Boolean));
const engines = cpuEngines({ threads: 2, ids: args.engines?.split(',') });
let failed = 0;
for (const e of engines) {
  const t0 = performance.now();
  let line;
  if (e.unavailable) {
    line = `UNAVAILABLE ${e.unavailable}`;
    if (required.has(e.id)) failed++;
  } else {
    const child = new Child({ id: e.id, ...e.spawn });
    try {
      const load = await child.request({ op: 'load', ...e.load }, 180_000);
      if (!load.ok && load.unavailable) {
        line = `UNAVAILABLE ${load.unavailable}`;
        if (required.has(e.id)) failed++;
      } else {
        if (!load.ok) throw new Error(load.error);
        for (const msg of [{ op: 'prefill', batch: 2, tokens: 4 }, { op: 'decode', batch: 2, prompt: 3, steps: 2 }]) {
          const r = await child.request(msg, 180_000);
          if (!r.ok) throw new Error(`${msg.op}: ${r.error ?? r.unavailable}`);
          if (!(r.seconds?.length >= 1 && r.seconds.every((s) => s > 0) && r.tokens > 0)) throw new Error(`${msg.op}: bad reply ${JSON.stringify(r)}`);
        }
        const m = await child.request({ op: 'memory' }, 30_000);
        if (!(m.peakRss > 0)) throw new Error('no peak RSS');
        line = `OK   peak RSS ${fmtBytes(m.peakRss)} ${JSON.stringify({ ...load, ok: undefined })}`;
      }
    } catch (err) {
      line = `FAIL ${String(err.message).split('\n').slice(0, 3).join(' ')}`;
      failed++;
    } finally {
      await child.close();
    }
  }
  console.log(`${e.id.padEnd(15)} ${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${line}`);
}
console.log(failed ? `smoke: ${failed} problem(s)` : 'smoke: ok');
process.exit(failed ? 1 : 0);
