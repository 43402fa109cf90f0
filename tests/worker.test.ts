// The addon in worker_threads: each environment gets its own instance data, process-wide
// state (CPU features, CUDA plugin) is shared safely, and terminating a worker is clean.
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { info } from '../lib/index.js';

const root = resolve(import.meta.dirname, '..');

// CommonJS worker body: loads the addon, calls info() `rounds` times, posts the last result.
// rounds = 0 loops until terminated.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const addon = require('node-gyp-build')(workerData.root);
let last;
for (let i = 0; workerData.rounds === 0 || i < workerData.rounds; i++) {
  last = addon.info();
  if (workerData.rounds === 0 && i === 0) parentPort.postMessage({ started: true });
}
parentPort.postMessage({ info: last });
`;

function startWorker(rounds: number) {
  return new Worker(workerSource, { eval: true, workerData: { root, rounds } });
}

function result(worker: Worker): Promise<unknown> {
  return new Promise((res, rej) => {
    worker.on('message', (m: { info?: unknown }) => {
      if (m.info) res(m.info);
    });
    worker.on('error', rej);
    worker.on('exit', (code) => rej(new Error(`worker exited with ${code} before answering`)));
  });
}

describe('worker_threads', () => {
  it('loads the addon in several workers at once and in the main thread', async () => {
    const main = info();
    const workers = Array.from({ length: 4 }, () => startWorker(50));
    const results = await Promise.all(workers.map(result));
    for (const r of results) expect(r).toEqual(main);
    await Promise.all(workers.map((w) => w.terminate()));
    expect(info()).toEqual(main);
  });

  it('terminates a busy worker cleanly and keeps working afterwards', async () => {
    const worker = startWorker(0);
    await new Promise<void>((res, rej) => {
      worker.once('message', () => res());
      worker.once('error', rej);
    });
    const code = await worker.terminate();
    expect(code).toBe(1); // terminate() reports exit code 1 for a worker it stopped
    // A new worker after the old one's environment was torn down.
    const again = startWorker(3);
    expect(await result(again)).toEqual(info());
    await again.terminate();
  });
});
