// Model and Sequence through the public API, on the fixtures' tiny model and small random
// models: ragged batches, fork/truncate, dispose, the KV-cache limit, argument checks,
// garbage collection, worker_threads.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, Model, Tokenizer } from '../lib/index.js';
import { native } from '../lib/native.js';
import { maxAbsDiff } from './helpers/arrays.js';

const root = resolve(import.meta.dirname, '..');
const tinyDir = resolve(root, '../shared/fixtures/models/tiny');
const haveFixtures = existsSync(tinyDir);

const CODE = [4299, 12900, 7, 77, 2599, 198, 220, 220, 220, 1441, 299, 611, 299, 1279, 362, 2073, 12900, 7, 77, 532, 352, 8,
  1343, 12900, 7, 77, 532, 362, 8, 198];


async function lastLogits(m: Model, ids: number[]): Promise<Float32Array> {
  return (await m.forward(new Uint32Array(ids))).logits![0]!;
}

describe.skipIf(!haveFixtures)('Model on the tiny fixture', () => {
  let m: Model;
  beforeAll(async () => { m = await Model.load(tinyDir, { device: 'cpu' }); });
  afterAll(() => m.dispose());

  it('reports config, device, dtype and tokenizer', () => {
    expect(m.config.n_embd).toBe(64);
    expect(m.config.n_layer).toBe(2);
    expect(m.config.activation_function).toBe('gelu_new');
    expect(m.device).toBe('cpu');
    expect(m.dtype).toBe('float32');
    expect(Array.from(m.tokenizer.encode('Hello world'))).toEqual([15496, 995]);
    expect(m.stats.kvCacheTokens).toBe(4 * 128);
  });

  it('ragged batch forward equals individual forwards (1e-5)', async () => {
    const seqs = [CODE.slice(0, 13), [15496, 995], CODE.slice(3), [42]];
    const batch = await m.forward(seqs.map((s) => new Uint32Array(s)), { logits: 'all', hiddenStates: true });
    for (let i = 0; i < seqs.length; i++) {
      const one = await m.forward(new Uint32Array(seqs[i]!), { logits: 'all', hiddenStates: true });
      expect(maxAbsDiff(batch.logits![i]!, one.logits![0]!)).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(batch.lastHiddenState[i]!, one.lastHiddenState[0]!)).toBeLessThanOrEqual(1e-5);
      expect(batch.hiddenStates![i]!.length).toBe(3);
      for (let l = 0; l < 3; l++) expect(maxAbsDiff(batch.hiddenStates![i]![l]!, one.hiddenStates![0]![l]!)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('forward accepts number arrays and gives row-major shapes', async () => {
    const r = await m.forward([[1, 2, 3], [4, 5]], { logits: 'all' });
    expect(r.logits![0]!.length).toBe(3 * 50257);
    expect(r.logits![1]!.length).toBe(2 * 50257);
    expect(r.lastHiddenState[1]!.length).toBe(2 * 64);
    expect(r.hiddenStates).toBeUndefined();
    const none = await m.forward([1, 2, 3], { logits: 'none' });
    expect(none.logits).toBeUndefined();
    expect(none.lastHiddenState[0]!.length).toBe(3 * 64);
  });

  it('Sequence.append continues from the cache; fork shares it copy-on-write; truncate rewinds', async () => {
    const prefix = CODE.slice(0, 20); // a partial second block: fork must copy it on write
    const s = m.sequence();
    await s.append(new Uint32Array(prefix), { logits: 'none' });
    expect(s.length).toBe(20);
    const f = s.fork();
    expect(f.length).toBe(20);
    const [a, b] = await Promise.all([s.append([CODE[20]!, CODE[21]!]), f.append([7, 8, 9])]);
    expect(maxAbsDiff(a.logits!, await lastLogits(m, [...prefix, CODE[20]!, CODE[21]!]))).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(b.logits!, await lastLogits(m, [...prefix, 7, 8, 9]))).toBeLessThanOrEqual(1e-5);
    // The parent is unaffected by the child's writes, and vice versa.
    const a2 = await s.append([CODE[22]!]);
    expect(maxAbsDiff(a2.logits!, await lastLogits(m, CODE.slice(0, 23)))).toBeLessThanOrEqual(1e-5);
    s.truncate(5);
    expect(s.length).toBe(5);
    const t = await s.append([99, 100], { logits: 'all' });
    expect(t.logits!.length).toBe(2 * 50257);
    expect(maxAbsDiff(t.logits!.subarray(50257), await lastLogits(m, [...CODE.slice(0, 5), 99, 100]))).toBeLessThanOrEqual(1e-5);
    // f still holds the original prefix (s truncated a block f shares).
    const b2 = await f.append([10]);
    expect(maxAbsDiff(b2.logits!, await lastLogits(m, [...prefix, 7, 8, 9, 10]))).toBeLessThanOrEqual(1e-5);
    f.dispose();
    s.dispose();
  });

  it('queues appends issued without awaiting, in order', async () => {
    const s = m.sequence();
    const p1 = s.append(CODE.slice(0, 10), { logits: 'none' });
    const p2 = s.append(CODE.slice(10, 11));
    expect(() => s.fork()).toThrow(/still running/);
    await p1;
    const r = await p2;
    expect(s.length).toBe(11);
    expect(maxAbsDiff(r.logits!, await lastLogits(m, CODE.slice(0, 11)))).toBeLessThanOrEqual(1e-5);
    s.dispose();
  });

  it('disposed sequences return their blocks and throw on use', async () => {
    const free = m.stats.kvFreeBlocks;
    const s = m.sequence();
    await s.append(CODE, { logits: 'none' });
    expect(m.stats.kvFreeBlocks).toBe(free - 2);
    const f = s.fork();
    s.dispose();
    expect(m.stats.kvFreeBlocks).toBe(free - 2); // f still holds them
    f.dispose();
    expect(m.stats.kvFreeBlocks).toBe(free);
    await expect(s.append([1])).rejects.toMatchObject({ code: ErrorCode.Disposed });
    expect(() => s.truncate(0)).toThrow(expect.objectContaining({ code: ErrorCode.Disposed }));
    s.dispose(); // idempotent
  });

  it('rejects bad input with typed errors naming what and where', async () => {
    await expect(m.forward([[1, 2], [3, 50257, 4]])).rejects.toThrow(RangeError);
    await expect(m.forward([[1, 2], [3, 50257, 4]])).rejects.toThrow(/sequence 1, position 1: token id 50257/);
    await expect(m.forward(new Uint32Array([1, 0xffffffff]))).rejects.toMatchObject({ code: ErrorCode.OutOfRange });
    await expect(m.forward(new Uint32Array([]))).rejects.toThrow(RangeError);
    await expect(m.forward([])).rejects.toThrow(RangeError);
    await expect(m.forward(new Uint32Array(129))).rejects.toThrow(/n_positions \(128\)/);
    await expect(m.forward([1, 2.5])).rejects.toThrow(TypeError);
    await expect(m.forward([1, -1])).rejects.toThrow(/position 1/);
    await expect(m.forward([1], { logit: 'all' } as never)).rejects.toThrow(/unknown option 'logit'/);
    await expect(m.forward([1], { logits: 'first' } as never)).rejects.toThrow(TypeError);
    await expect(m.forward('hello' as never)).rejects.toThrow(TypeError);
    const s = m.sequence();
    await expect(s.append([1], { bad: 1 } as never)).rejects.toThrow(/unknown option 'bad'/);
    await s.append(new Uint32Array(100), { logits: 'none' });
    await expect(s.append(new Uint32Array(29))).rejects.toThrow(/129 tokens long, more than n_positions/);
    expect(() => s.truncate(101)).toThrow(RangeError);
    expect(() => s.truncate(1.5)).toThrow(TypeError);
    expect(s.length).toBe(100);
    s.dispose();
    await expect(Model.load(tinyDir, { thread: 2 } as never)).rejects.toThrow(/unknown option 'thread'/);
    await expect(Model.load(tinyDir, { dtype: 'float16' })).rejects.toThrow(/float16/);
    await expect(Model.load(tinyDir, { device: 'cuda' })).rejects.toMatchObject({ code: ErrorCode.Cuda });
    await expect(Model.load(tinyDir, { device: 'tpu' as never })).rejects.toThrow(TypeError);
    await expect(Model.load(tinyDir, { kvCacheTokens: 0 })).rejects.toThrow(RangeError);
    await expect(Model.load(join(tinyDir, 'nope'))).rejects.toMatchObject({ code: ErrorCode.FileIO });
  });
});

describe.skipIf(!haveFixtures)('Model lifetime', () => {
  it("'auto' picks the CPU and says why", async () => {
    const m = await Model.load(tinyDir, { device: 'auto' });
    expect(m.device).toBe('cpu');
    expect(m.deviceReason).toMatch(/CUDA/);
    m.dispose();
  });

  it('dispose lets in-flight work finish, then throws ERR_GPT2_DISPOSED', async () => {
    const m = await Model.load(tinyDir);
    const s = m.sequence();
    const running = m.forward(new Uint32Array(CODE), { logits: 'all' });
    const appending = s.append(CODE.slice(0, 5));
    m.dispose();
    const r = await running;
    expect(r.logits![0]!.length).toBe(30 * 50257);
    expect((await appending).logits!.length).toBe(50257);
    expect(m.disposed).toBe(true);
    await expect(m.forward([1])).rejects.toMatchObject({ code: ErrorCode.Disposed });
    expect(() => m.sequence()).toThrow(expect.objectContaining({ code: ErrorCode.Disposed }));
    await expect(s.append([1])).rejects.toMatchObject({ code: ErrorCode.Disposed });
    expect(() => s.fork()).toThrow(expect.objectContaining({ code: ErrorCode.Disposed }));
    s.dispose();
    m.dispose();
  });

  it('running out of KV cache is a typed error, and nothing leaks', async () => {
    const m = await Model.load(tinyDir, { kvCacheTokens: 32 });
    const s = m.sequence();
    await s.append(CODE.slice(0, 20), { logits: 'none' });
    const err = await s.append(CODE.slice(0, 20)).catch((e) => e);
    expect(err).toBeInstanceOf(RangeError);
    expect(err.code).toBe(ErrorCode.KvCacheFull);
    expect(s.length).toBe(20);
    await expect(m.forward(new Uint32Array(CODE))).rejects.toMatchObject({ code: ErrorCode.KvCacheFull });
    s.dispose();
    expect(m.stats.kvFreeBlocks).toBe(2);
    expect((await m.forward(new Uint32Array(CODE))).logits![0]!.length).toBe(50257);
    m.dispose();
  });

  it('Model.random is deterministic per seed and accepts partial configs', async () => {
    const cfg = { n_layer: 2, n_embd: 32, n_head: 4, n_positions: 64, vocab_size: 500 };
    const [a, b, c] = await Promise.all([Model.random(cfg, { seed: 3 }), Model.random(cfg, { seed: 3 }), Model.random(cfg, { seed: 4 })]);
    expect(a.config.n_inner).toBe(128);
    const ids = new Uint32Array([1, 2, 3, 499]);
    const [ra, rb, rc] = await Promise.all([a.forward(ids), b.forward(ids), c.forward(ids)]);
    expect(maxAbsDiff(ra.logits![0]!, rb.logits![0]!)).toBe(0);
    expect(maxAbsDiff(ra.logits![0]!, rc.logits![0]!)).toBeGreaterThan(0);
    expect(() => a.tokenizer).toThrow(/no tokenizer/);
    await expect(Model.random({ n_embd: 30, n_head: 4 })).rejects.toThrow();
    await expect(Model.random({ n_embdd: 30 } as never)).rejects.toThrow(/n_embdd/);
    await expect(Model.random('gpt3' as never)).rejects.toThrow(/unknown model preset/);
    for (const m of [a, b, c]) m.dispose();
  });

  it('bfloat16 weights stay close to float32', async () => {
    const f32 = await Model.load(tinyDir);
    const bf16 = await Model.load(tinyDir, { dtype: 'bfloat16' });
    expect(bf16.dtype).toBe('bfloat16');
    const ids = new Uint32Array(CODE);
    const [a, b] = await Promise.all([f32.forward(ids), bf16.forward(ids)]);
    const d = maxAbsDiff(a.logits![0]!, b.logits![0]!);
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(1.0); // logits span about ±30 on this model
    f32.dispose();
    bf16.dispose();
  });

  it('models dropped without dispose() are freed by the garbage collector; dispose() frees at once', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const stats = () => (native as unknown as { engineStats(): { liveModels: number; liveBytes: number } }).engineStats();
    const cfg = { n_layer: 2, n_embd: 256, n_head: 4, n_positions: 64, vocab_size: 8000 };
    const settle = async () => {
      for (let i = 0; i < 6; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await settle();
    const before = stats();
    const kept = await Model.random(cfg);
    const one = stats().liveBytes - before.liveBytes;
    expect(one).toBeGreaterThan(8000 * 256 * 4); // the packed wte (the tied lm_head and the embedding table) at least
    kept.dispose();
    expect(stats()).toEqual(before);
    const churn = async () => {
      for (let i = 0; i < 20; i++) {
        const m = await Model.random(cfg);
        await m.forward([1, 2, 3]);
      }
    };
    await churn();
    await settle();
    // V8 may still hold the most recent object from a stack slot; 20 leaked models would show.
    expect(stats().liveModels - before.liveModels).toBeLessThanOrEqual(1);
    expect(stats().liveBytes - before.liveBytes).toBeLessThanOrEqual(one);
  });

  it('works in worker_threads (per-environment addon state)', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const native = require('node-gyp-build')(workerData.root);
      native.modelLoad(workerData.dir, {}).then(async (m) => {
        const r = await m.forward([new Uint32Array([15496, 995])], new Int32Array([1]), false);
        m.dispose();
        parentPort.postMessage(Array.from(r.logits[0].subarray(0, 16)));
      }, (e) => parentPort.postMessage(String(e)));`;
    const w = new Worker(code, { eval: true, workerData: { root, dir: tinyDir } });
    const got = await new Promise<unknown>((res, rej) => { w.once('message', res); w.once('error', rej); });
    await w.terminate();
    const m = await Model.load(tinyDir);
    const want = Array.from((await m.forward([15496, 995])).logits![0]!.subarray(0, 16));
    m.dispose();
    expect(got).toEqual(want);
  });
});

it('exports Model, Sequence and Tokenizer', async () => {
  const api = await import('../lib/index.js');
  expect(typeof api.Model.load).toBe('function');
  expect(typeof api.Sequence).toBe('function');
  expect(api.Tokenizer).toBe(Tokenizer);
});
