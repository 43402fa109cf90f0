// SemanticIndex: cosine top-k against a brute-force JS reference (inline and off the event
// loop), add/replace/remove, copy-on-write under a running search, texts through a model,
// save/load round trip, and damaged files (each field, plus random corruption) giving
// typed errors.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, Model, SemanticIndex } from '../lib/index.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function randomVectors(n: number, dim: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, r));
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! * a[i]!; bb += b[i]! * b[i]!; }
  return ab / Math.sqrt(aa * bb);
}

function bruteForce(vectors: Float32Array[], q: Float32Array, k: number): { row: number; score: number }[] {
  return vectors.map((v, row) => ({ row, score: cosine(v, q) })).sort((a, b) => b.score - a.score || a.row - b.row).slice(0, k);
}

const dir = mkdtempSync(join(tmpdir(), 'gpt2-node-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SemanticIndex with vectors', () => {
  for (const [n, dim, label] of [[300, 48, 'inline'], [6000, 96, 'off the event loop']] as const) {
    it(`finds the same top-k as a brute-force cosine (${n} x ${dim}, ${label})`, async () => {
      const vectors = randomVectors(n, dim, n);
      const index = new SemanticIndex<{ row: number }>();
      index.addMany(vectors.map((vector, row) => ({ id: `v${row}`, vector, metadata: { row } })));
      expect(index.size).toBe(n);
      expect(index.dim).toBe(dim);
      for (const q of randomVectors(3, dim, 7)) {
        const want = bruteForce(vectors, q, 12);
        const got = await index.search(q, { k: 12 });
        expect(got.map((h) => h.id)).toEqual(want.map((w) => `v${w.row}`));
        got.forEach((h, i) => {
          expect(Math.abs(h.score - want[i]!.score)).toBeLessThan(1e-5);
          expect(h.metadata).toEqual({ row: want[i]!.row });
        });
      }
    });
  }

  it('adds, replaces and removes; k, minScore and filter', async () => {
    const index = new SemanticIndex<string>({ dim: 3 });
    index.add('x', [1, 0, 0], 'x axis');
    index.add('y', [0, 2, 0], 'y axis');
    index.add('xy', [1, 1, 0]);
    index.add('z', new Float32Array([0, 0, 5]));
    let hits = await index.search([1, 0.1, 0], { k: 2 });
    expect(hits.map((h) => h.id)).toEqual(['x', 'xy']);
    expect(hits[0]!.metadata).toBe('x axis');
    expect((await index.search([1, 0, 0], { minScore: 0.5 })).map((h) => h.id)).toEqual(['x', 'xy']);
    expect((await index.search([1, 0, 0], { filter: (id) => id !== 'x', k: 1 })).map((h) => h.id)).toEqual(['xy']);
    index.add('x', [0, 0, -1], 'now -z');  // replace
    expect(index.size).toBe(4);
    hits = await index.search([0, 0, -1], { k: 1 });
    expect(hits[0]).toEqual({ id: 'x', score: expect.closeTo(1, 6), metadata: 'now -z' });
    expect(index.remove('y')).toBe(true);
    expect(index.remove('y')).toBe(false);
    expect(index.size).toBe(3);
    expect(index.has('z') && !index.has('y')).toBe(true);
    expect((await index.search([0, 1, 0], { k: 5 })).map((h) => h.id).sort()).toEqual(['x', 'xy', 'z']);
    expect(Array.from(index.get('z')!.vector)).toEqual([0, 0, 1]);
  });

  it('keeps a running search on the entries it started with (copy-on-write)', async () => {
    const vectors = randomVectors(5000, 64, 3);
    const index = new SemanticIndex();
    index.addMany(vectors.map((vector, i) => ({ id: `v${i}`, vector })));
    const q = vectors[10]!;
    const running = index.search(q, { k: 3 });
    index.remove('v10');  // writes while the search runs
    index.add('new', q);
    const before = await running;
    expect(before[0]!.id).toBe('v10');
    const after = await index.search(q, { k: 1 });
    expect(after[0]!.id).toBe('new');
  });

  it('rejects bad vectors and options with typed errors', async () => {
    const index = new SemanticIndex({ dim: 4 });
    const bad: [() => unknown, ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, string, RegExp][] = [
      [() => index.add('a', [0, 0, 0, 0]), RangeError, ErrorCode.OutOfRange, /zero vector/],
      [() => index.add('a', [1, 2, 3]), RangeError, ErrorCode.OutOfRange, /3 dimensions/],
      [() => index.add('a', [1, NaN, 3, 4]), RangeError, ErrorCode.OutOfRange, /entry 1 is not a finite/],
      [() => index.add('', [1, 2, 3, 4]), TypeError, ErrorCode.InvalidArg, /id must be/],
      [() => index.add(7 as unknown as string, [1, 2, 3, 4]), TypeError, ErrorCode.InvalidArg, /id must be/],
      [() => index.addMany([{ id: 'ok', vector: [1, 1, 1, 1] }, { id: 'b', vector: 'abcd' as unknown as number[] }]), TypeError, ErrorCode.InvalidArg, /item 1/],
      [() => new SemanticIndex({ dim: -1 }), RangeError, ErrorCode.OutOfRange, /dim must be/],
    ];
    for (const [f, kind, code, msg] of bad) {
      let err: { code?: string; message: string } | undefined;
      try { f(); } catch (e) { err = e as typeof err; }
      expect(err).toBeInstanceOf(kind);
      expect(err!.code).toBe(code);
      expect(err!.message).toMatch(msg);
    }
    expect(index.size).toBe(0);  // addMany checks all before adding any
    index.add('a', [1, 2, 3, 4]);
    await expect(index.search([1, 2, 3, 4], { k: 0 })).rejects.toMatchObject({ code: ErrorCode.OutOfRange });
    await expect(index.search([1, 2, 3])).rejects.toMatchObject({ code: ErrorCode.OutOfRange });
    await expect(index.search('text')).rejects.toMatchObject({ code: ErrorCode.InvalidArg, message: expect.stringMatching(/need a model/) });
  });
});

describe('SemanticIndex files', () => {
  const file = join(dir, 'good.idx');
  let vectors: Float32Array[];
  beforeAll(async () => {
    vectors = randomVectors(50, 16, 11);
    const index = new SemanticIndex<{ n: number } | string>();
    index.addMany(vectors.map((vector, i) => ({ id: `id-${i}`, vector, metadata: i % 2 ? { n: i } : `s${i}` })));
    index.remove('id-3');
    await index.save(file);
  });

  it('round-trips ids, metadata and search results', async () => {
    const loaded = await SemanticIndex.load<{ n: number } | string>(file);
    expect(loaded.size).toBe(49);
    expect(loaded.dim).toBe(16);
    expect(loaded.has('id-3')).toBe(false);
    const hits = await loaded.search(vectors[7]!, { k: 3 });
    expect(hits[0]).toMatchObject({ id: 'id-7', metadata: { n: 7 } });
    expect((await loaded.search(vectors[8]!, { k: 1 }))[0]!.metadata).toBe('s8');
    // Writable after load.
    loaded.add('extra', vectors[3]!);
    expect((await loaded.search(vectors[3]!, { k: 1 }))[0]!.id).toBe('extra');
  });

  /** Rewrites the trailing SHA-256 so that a field check, not the checksum, must catch the damage. */
  function resum(b: Buffer): Buffer {
    const end = b.length - 32;
    createHash('sha256').update(b.subarray(0, end)).digest().copy(b, end);
    return b;
  }

  it('rejects damaged files with ERR_GPT2_FILE_FORMAT, and a missing one with ERR_GPT2_FILE_IO', async () => {
    const good = readFileSync(file);
    const jsonStart = 32 + 49 * 16 * 4;
    const damaged: [string, (b: Buffer) => Buffer, RegExp][] = [
      ['empty', () => Buffer.alloc(0), /too short/],
      ['truncated', (b) => b.subarray(0, b.length - 100), /need \d+ bytes/],
      ['extended', (b) => Buffer.concat([b, Buffer.alloc(8)]), /need \d+ bytes/],
      ['magic', (b) => { b.write('GGUF', 0, 'latin1'); return b; }, /magic/],
      ['version', (b) => resum((b.writeUInt32LE(2, 8), b)), /version 2/],
      ['dim 0', (b) => resum((b.writeUInt32LE(0, 12), b)), /dim 0/],
      ['count', (b) => resum((b.writeBigUInt64LE(2n ** 60n, 16), b)), /need \d+ bytes/],
      ['json size', (b) => resum((b.writeBigUInt64LE(5n, 24), b)), /need \d+ bytes/],
      ['a vector bit', (b) => { b[40]! ^= 1; return b; }, /checksum/],
      ['the checksum', (b) => { b[b.length - 1]! ^= 0xff; return b; }, /checksum/],
      ['not JSON', (b) => resum((b.write('#', jsonStart, 'latin1'), b)), /not JSON/],
      ['NaN vector', (b) => resum((b.writeFloatLE(NaN, 36), b)), /vector 0 is not finite/],
      ['embed options', (b) => resum(Buffer.from(b.toString('latin1').replace('"embed":{}', '"embed":[]'), 'latin1')), /embed options/],
      ['repeated id', (b) => resum(Buffer.from(b.toString('latin1').replace('"id-1"', '"id-0"'), 'latin1')), /repeated/],
    ];
    for (const [name, damage, msg] of damaged) {
      const path = join(dir, `bad-${name.replace(/ /g, '_')}.idx`);
      writeFileSync(path, damage(Buffer.from(good)));
      const err = await SemanticIndex.load(path).then(() => undefined, (e) => e);
      expect(err, name).toBeInstanceOf(Error);
      expect(err.code, name).toBe(ErrorCode.FileFormat);
      expect(err.message, name).toMatch(msg);
    }
    await expect(SemanticIndex.load(join(dir, 'missing.idx'))).rejects.toMatchObject({ code: ErrorCode.FileIO });
  });

  it('never crashes on random corruption', async () => {
    const good = readFileSync(file);
    const r = rng(5);
    const path = join(dir, 'fuzz.idx');
    for (let round = 0; round < 150; round++) {
      const b = Buffer.from(good);
      const flips = 1 + Math.floor((r() + 0.5) * 8);
      for (let f = 0; f < flips; f++) b[Math.floor((r() + 0.5) * b.length)] = Math.floor((r() + 0.5) * 256);
      const cut = round % 3 === 0 ? Math.floor((r() + 0.5) * b.length) : b.length;
      writeFileSync(path, round % 2 ? resum(b.subarray(0, Math.max(cut, 64))) : b.subarray(0, cut));
      const err = await SemanticIndex.load(path).then(() => undefined, (e) => e);
      if (err !== undefined) expect(err.code).toBe(ErrorCode.FileFormat);
    }
  });
});

describe('SemanticIndex with a model', () => {
  let model: Model;
  beforeAll(async () => { model = await Model.random({ n_layer: 2, n_embd: 64, n_head: 4, n_positions: 128 }, { seed: 2 }); });
  afterAll(() => model.dispose());

  it('embeds texts and queries with the model, and finds a text by itself', async () => {
    const texts = ['The cat sat on the mat.', 'Stock markets fell sharply today.', 'A recipe for lemon cake.', 'Rust and C++ compile to native code.'];
    const index = new SemanticIndex<number>({ model, embed: { pooling: 'mean' } });
    await index.addTexts(texts.map((text, i) => ({ id: `t${i}`, text, metadata: i })));
    expect(index.dim).toBe(64);
    for (let i = 0; i < texts.length; i++) {
      const [hit] = await index.search(texts[i]!, { k: 1 });
      expect(hit).toMatchObject({ id: `t${i}`, metadata: i });
      expect(hit!.score).toBeCloseTo(1, 5);
    }
    const [v] = await model.embed([texts[1]!], { normalize: true });
    expect(Array.from(index.get('t1')!.vector).every((x, d) => Math.abs(x - v![d]!) < 1e-6)).toBe(true);
    const file = join(dir, 'texts.idx');
    await index.save(file);
    const loaded = await SemanticIndex.load<number>(file, { model });
    expect((await loaded.search(texts[2]!, { k: 1 }))[0]!.id).toBe('t2');
    const small = await Model.random({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 64 });
    await expect(SemanticIndex.load(file, { model: small })).rejects.toMatchObject({ code: ErrorCode.OutOfRange });
    small.dispose();
  });
});
