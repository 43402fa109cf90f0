// The native tokenizer is shared across Node environments (worker_threads) and
// survives many wrappers being created and collected.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

import { Tokenizer } from '../lib/index.js';
import { gpt2AssetDir } from '../lib/tokenizer.js';
import { packageRoot } from '../lib/native.js';

// Workers load the addon directly (they cannot import the .ts sources).
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { createRequire } = require('node:module');
const load = createRequire(workerData.root + '/package.json')('node-gyp-build');
const native = load(workerData.root);
const tok = native.tokenizerGpt2(workerData.assets);
const out = [];
for (let i = 0; i < 200; i++) out.push(Array.from(tok.encode(workerData.text + ' ' + i)));
tok.encodeBatch([workerData.text, 'x y z']).then((batch) => {
  parentPort.postMessage({ out, batch: batch.map((a) => Array.from(a)), vocabSize: tok.vocabSize });
});
`;

function runWorker(text: string): Promise<{ out: number[][]; batch: number[][]; vocabSize: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerSource, { eval: true, workerData: { root: packageRoot, assets: gpt2AssetDir, text } });
    w.once('message', (m) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

describe('tokenizer across threads', () => {
  it('works in two workers at once, with the same ids as the main thread', async () => {
    const tok = Tokenizer.gpt2();
    const texts = ["Hello from worker one, isn't it nice?", 'Zweiter Arbeiter: größer, schöner 😀'];
    const results = await Promise.all(texts.map(runWorker));
    for (const [k, r] of results.entries()) {
      expect(r.vocabSize).toBe(50257);
      for (let i = 0; i < 200; i++) expect(r.out[i]).toEqual(Array.from(tok.encode(texts[k] + ' ' + i)));
      expect(r.batch[0]).toEqual(Array.from(tok.encode(texts[k])));
    }
  });

  it('survives many tokenizers created and garbage collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2000; i++) {
        const t = Tokenizer.gpt2();
        if (i % 500 === 0) expect(t.count('hello world')).toBe(2);
      }
      gc();
      await new Promise((r) => setImmediate(r));
    }
    // Loaded tokenizers from folders are freed once collected.
    for (let i = 0; i < 3; i++) {
      const t = await Tokenizer.fromPretrained(new URL('../../shared/fixtures/tokenizer/', import.meta.url).pathname);
      expect(t.decode(t.encode('still here'))).toBe('still here');
    }
    gc();
    expect(Tokenizer.gpt2().decode([15496])).toBe('Hello');
  });
});
