// Model.embed and the engine thread around process and environment lifetimes: Node exits by
// itself once embeds are done (nothing keeps the loop alive), embeds work in worker_threads,
// terminating a worker mid-embed is clean, and a collected model frees its memory.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Model } from '../lib/index.js';
import { native } from '../lib/native.js';
import { root, runWithAddon } from './helpers/addon-child.js';
import { collectUntil } from './helpers/gc.js';

const tinyJson = JSON.stringify(JSON.stringify({ n_layer: 2, n_embd: 64, n_head: 4, n_positions: 128 }));

// CommonJS body shared by the child process and the workers: embeds `count` texts of 100
// tokens, reports the first vector's length.
const embedSnippet = (count: number, report: string) => `
(async () => {
  const m = await addon.modelRandom(${tinyJson}, true, 1, {});
  const ids = Array.from({ length: ${count} }, (_, i) => Uint32Array.from({ length: 100 }, (_, j) => (i * 31 + j * 7) % 50257));
  const v = await m.embed(ids, 1, -1, true, true);
  ${report}
})();
`;

describe('embed lifecycle', () => {
  it('frees a garbage-collected model after its embeds', async () => {
    const stats = () => (native as unknown as { engineStats(): { liveModels: number } }).engineStats();
    const before = stats().liveModels;
    await (async () => {
      const m = await Model.random({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 64 });
      await m.embed(['a', 'b c', 'd e f']);
      expect(stats().liveModels).toBe(before + 1);
    })();
    expect(await collectUntil(() => stats().liveModels === before)).toBe(true);
  });

  it('lets Node exit on its own after embeds finish (model never disposed)', () => {
    const r = runWithAddon(embedSnippet(8, `console.log('len', v.length, v[0].length);`));
    expect(r.signal).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('len 8 64');
  });

  it('embeds in worker_threads, and a worker terminated mid-embed goes cleanly', async () => {
    const source = (count: number) =>
      `const { parentPort, workerData } = require('node:worker_threads');
       const addon = require('node-gyp-build')(workerData.root);
       parentPort.postMessage({ started: true });
       ${embedSnippet(count, "parentPort.postMessage({ len: v.length, dim: v[0].length });")}`;
    const run = (count: number) => new Worker(source(count), { eval: true, workerData: { root } });
    const answers = await Promise.all([run(4), run(6)].map((w) => new Promise<{ len: number; dim: number }>((res, rej) => {
      w.on('message', (m) => { if (m.len) { res(m); void w.terminate(); } });
      w.on('error', rej);
    })));
    expect(answers).toEqual([{ len: 4, dim: 64 }, { len: 6, dim: 64 }]);
    // Terminated while 400 texts are queued on its engine.
    const busy = run(400);
    await new Promise<void>((res) => busy.once('message', () => res()));
    await new Promise((r) => setTimeout(r, 150));
    expect(await busy.terminate()).toBe(1);
    // The main thread's models still work.
    const m = await Model.random({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 64 });
    expect((await m.embed(['still working']))[0]!.length).toBe(32);
    m.dispose();
  });

});
