// Exactness: identical ids to tiktoken's `gpt2` encoding (the oracle) on a large,
// varied, deterministic corpus, and to the fixture cases from Hugging Face.
import { readFileSync } from 'node:fs';
import { get_encoding } from 'tiktoken';
import { afterAll, describe, expect, it } from 'vitest';

import { bmpChunks, prng, randomUnicode, tokenizerCorpus } from '../bench/tokenizer-corpus.mjs';
import { Tokenizer } from '../lib/index.js';

const tok = Tokenizer.gpt2();
// String.prototype.toWellFormed (ES2024) by way of UTF-8: lone surrogates -> U+FFFD.
const wellFormed = (s: string) => new TextDecoder().decode(new TextEncoder().encode(s));
const enc = get_encoding('gpt2');
afterAll(() => enc.free());

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function expectSame(text: string, label: string) {
  const ours = tok.encode(text);
  const theirs = enc.encode_ordinary(text);
  const d = firstDiff(ours, theirs);
  if (d >= 0) {
    throw new Error(`${label}: ids differ at ${d} for ${JSON.stringify(text.slice(0, 200))}: ` +
      `ours ${JSON.stringify(Array.from(ours.slice(d, d + 8)))}, tiktoken ${JSON.stringify(Array.from(theirs.slice(d, d + 8)))}`);
  }
  const ours2 = tok.encode(text, { allowedSpecial: 'all' });
  const theirs2 = enc.encode(text, 'all');
  const d2 = firstDiff(ours2, theirs2);
  if (d2 >= 0) throw new Error(`${label} (allowedSpecial 'all'): ids differ at ${d2} for ${JSON.stringify(text.slice(0, 200))}`);
  expect(tok.count(text)).toBe(theirs.length);
}

function isWellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

describe('tokenizer parity with tiktoken gpt2', () => {
  it('matches on the varied corpus, and decode(encode(s)) === s', () => {
    const corpus = tokenizerCorpus();
    expect(corpus.length).toBeGreaterThan(2500);
    const groups = new Set<string>();
    for (const [i, { group, text }] of corpus.entries()) {
      expectSame(text, `corpus[${i}] (${group})`);
      groups.add(group);
      if (isWellFormed(text)) expect(tok.decode(tok.encode(text, { allowedSpecial: 'all' }))).toBe(text);
      else expect(tok.decode(tok.encode(text))).toBe(wellFormed(text));
    }
    expect([...groups].sort()).toEqual(['apostrophes', 'code', 'edge', 'mixed', 'numbers', 'prose', 'random', 'scripts', 'whitespace']);
  });

  it('matches on every code point U+0000..U+FFFF, in chunks', () => {
    for (const [i, text] of bmpChunks(256).entries()) {
      expectSame(text, `bmp chunk ${i}`);
      expect(tok.decode(tok.encode(text))).toBe(wellFormed(text));
    }
  });

  it('matches on astral code points, sampled', () => {
    const r = prng(77);
    for (let k = 0; k < 200; k++) {
      let s = '';
      const base = 0x10000 + Math.floor(r() * 0x100000);
      for (let j = 0; j < 64; j++) s += String.fromCodePoint(Math.min(0x10ffff, base + j)) + (j % 5 === 0 ? ' ' : '');
      expectSame(s, `astral ${base.toString(16)}`);
    }
  });

  it('matches on seeded random unicode strings', () => {
    const r = prng(2024);
    for (let k = 0; k < 3000; k++) expectSame(randomUnicode(r, 1 + Math.floor(r() * 60)), `random ${k}`);
  });

  it('matches on one long concatenated document', () => {
    const text = tokenizerCorpus(99).map((c) => c.text).join('\n');
    expectSame(text, 'document');
    expect(tok.decode(tok.encode(text))).toBe(wellFormed(text));
  });

  it('matches on a long single word (heap BPE path) and round-trips a 1 MB word', () => {
    // tiktoken's BPE is quadratic: 8 KB is as long as it can check quickly.
    const r = prng(5);
    const letters = 'etaoinshrdlucmfwyp';
    let w = '';
    for (let i = 0; i < 8000; i++) w += letters[Math.floor(r() * letters.length)];
    expectSame(w, '8 KB word');
    let big = '';
    while (big.length < 1 << 20) big += w;
    const ids = tok.encode(big);
    expect(ids.length).toBeGreaterThan(100_000);
    expect(tok.decode(ids)).toBe(big);
    // A long word of one letter and of digits.
    expectSame('a'.repeat(5000), 'a*5000');
    const digits = '7'.repeat(1 << 20);
    expect(tok.decode(tok.encode(digits))).toBe(digits);
  });
});

describe('fixture cases (Hugging Face GPT2Tokenizer)', () => {
  const cases = JSON.parse(readFileSync(new URL('../../shared/fixtures/tokenizer/tokenizer_cases.json', import.meta.url), 'utf8')) as {
    id: string; text: string; ids: number[]; ids_ordinary: number[]; decoded: string;
  }[];
  it('gives the expected ids, ordinary ids and decoded text', () => {
    expect(cases.length).toBeGreaterThan(300);
    for (const c of cases) {
      expect(Array.from(tok.encode(c.text, { allowedSpecial: 'all' })), c.id).toEqual(c.ids);
      expect(Array.from(tok.encode(c.text, { allowedSpecial: ['<|endoftext|>'] })), c.id).toEqual(c.ids);
      expect(Array.from(tok.encode(c.text)), c.id).toEqual(c.ids_ordinary);
      expect(tok.decode(c.ids), c.id).toBe(c.decoded);
    }
  });
});
