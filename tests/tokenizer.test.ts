// Tokenizer API: encode options, decode and the streaming decoder, encodeBatch, loading
// from folders (vocab.json + merges.txt, tokenizer.json), and typed errors on bad input.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { shortTexts } from '../bench/tokenizer-corpus.mjs';
import { Tokenizer } from '../lib/index.js';
import { nativeTokenizer } from '../lib/tokenizer.js';

const fixtures = new URL('../../shared/fixtures/tokenizer/', import.meta.url).pathname;
const vocabText = readFileSync(join(fixtures, 'vocab.json'), 'utf8');
const mergesText = readFileSync(join(fixtures, 'merges.txt'), 'utf8');
const vocab = JSON.parse(vocabText) as Record<string, number>;
const tok = Tokenizer.gpt2();
// String.prototype.toWellFormed (ES2024) by way of UTF-8: lone surrogates -> U+FFFD.
const wellFormed = (s: string) => new TextDecoder().decode(new TextEncoder().encode(s));

// bytes_to_unicode, to find the token id of each single byte.
function byteTokenIds(): number[] {
  const ids: number[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    ids.push(vocab[String.fromCodePoint(printable ? b : next++)]);
  }
  return ids;
}
const byteIds = byteTokenIds();

const tmpDirs: string[] = [];
function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'gpt2-tok-'));
  tmpDirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe('Tokenizer basics', () => {
  it('knows the GPT-2 facts', () => {
    expect(Array.from(tok.encode('Hello world'))).toEqual([15496, 995]);
    expect(Array.from(tok.encode(' Hello world'))).toEqual([18435, 995]);
    expect(tok.vocabSize).toBe(50257);
    expect(tok.eosTokenId).toBe(50256);
    expect(tok.encode('Hello')).toBeInstanceOf(Uint32Array);
    expect(tok.encode('')).toHaveLength(0);
    expect(tok.count('Hello world')).toBe(2);
    expect(tok.specialTokens).toEqual({ '<|endoftext|>': 50256 });
  });

  it('treats <|endoftext|> as text unless allowed', () => {
    const text = 'a<|endoftext|>b';
    expect(Array.from(tok.encode(text))).toEqual([64, 27, 91, 437, 1659, 5239, 91, 29, 65]);
    expect(Array.from(tok.encode(text, { allowedSpecial: 'all' }))).toEqual([64, 50256, 65]);
    expect(Array.from(tok.encode(text, { allowedSpecial: ['<|endoftext|>'] }))).toEqual([64, 50256, 65]);
    expect(Array.from(tok.encode(text, { allowedSpecial: [] }))).toEqual(Array.from(tok.encode(text)));
    expect(tok.count(text, { allowedSpecial: 'all' })).toBe(3);
    expect(() => tok.encode(text, { allowedSpecial: ['<|fim|>'] })).toThrow(TypeError);
    expect(() => tok.encode(text, { allowedSpecial: 'some' as 'all' })).toThrow(TypeError);
  });

  it('encodes lone surrogates as U+FFFD, like TextEncoder', () => {
    expect(Array.from(tok.encode('a\ud800b'))).toEqual(Array.from(tok.encode('a\ufffdb')));
    expect(Array.from(tok.encode('\udc00'))).toEqual(Array.from(tok.encode('\ufffd')));
    expect(tok.decode(tok.encode('x\ud83dy'))).toBe('x\ufffdy');
  });

  it('rejects non-strings and bad ids with typed errors', () => {
    expect(() => tok.encode(5 as unknown as string)).toThrow(TypeError);
    expect(() => tok.count(null as unknown as string)).toThrow(TypeError);
    expect(() => tok.decode([15496, 50257])).toThrow(RangeError);
    expect(() => tok.decode([15496, 50257])).toThrow(/50257.*index 1|index 1.*50257/);
    expect(() => tok.decode(new Uint32Array([0xffffffff]))).toThrow(RangeError);
    expect(() => tok.decode([-1])).toThrow(RangeError);
    expect(() => tok.decode([1.5])).toThrow(TypeError);
    expect(() => tok.decode(['1'] as unknown as number[])).toThrow(TypeError);
    expect(() => tok.decode(7 as unknown as number[])).toThrow(TypeError);
    try {
      tok.decode([1, 2, 99999]);
    } catch (e) {
      expect((e as { code: string }).code).toBe('ERR_GPT2_OUT_OF_RANGE');
    }
    expect(tok.decode(new Int32Array([15496, 995]))).toBe('Hello world');
    expect(tok.decode([])).toBe('');
  });

  it('exposes the native handle for the Model without making it enumerable', () => {
    expect(Object.keys(tok)).toEqual([]);
    expect(tok[nativeTokenizer]).toBeTruthy();
    expect(typeof tok[nativeTokenizer].encode).toBe('function');
  });
});

describe('decode', () => {
  it('replaces invalid UTF-8 exactly like TextDecoder', () => {
    const td = new TextDecoder();
    let seed = 1;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
    const interesting = [0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x41, 0xa0, 0x9f, 0x90];
    for (let k = 0; k < 2000; k++) {
      const bytes: number[] = [];
      const n = 1 + Math.floor(rnd() * 8);
      for (let i = 0; i < n; i++) bytes.push(rnd() < 0.7 ? interesting[Math.floor(rnd() * interesting.length)] : Math.floor(rnd() * 256));
      const ids = bytes.map((b) => byteIds[b]);
      const want = td.decode(new Uint8Array(bytes));
      expect(tok.decode(ids)).toBe(want);
      // Streaming, one byte token at a time.
      const d = tok.decoder();
      let got = '';
      for (const id of ids) got += d.write([id]);
      got += d.end();
      expect(got).toBe(want);
    }
  });

  it('streams without ever splitting a character', () => {
    const text = 'naïve 😀 👨‍👩‍👧‍👦 中文字符 é ﷽ 𝄞 and the end';
    const ids = tok.encode(text);
    for (const step of [1, 2, 3, 5]) {
      const d = tok.decoder();
      let out = '';
      for (let i = 0; i < ids.length; i += step) {
        const piece = d.write(ids.subarray(i, i + step));
        expect(piece).not.toMatch(/\ufffd/);
        expect(wellFormed(piece)).toBe(piece);
        out += piece;
      }
      out += d.end();
      expect(out).toBe(text);
    }
  });

  it('holds an incomplete tail and flushes it as U+FFFD at end()', () => {
    const d = tok.decoder();
    expect(d.write([byteIds[0xe4], byteIds[0xb8]])).toBe('');
    expect(d.write([byteIds[0xad]])).toBe('中');
    expect(d.write([byteIds[0xf0], byteIds[0x9f]])).toBe('');
    expect(d.end()).toBe('\ufffd');
    expect(() => d.write([50257])).toThrow(RangeError);
  });
});

describe('encodeBatch', () => {
  it('equals encode on each text, off the event loop', async () => {
    const texts = shortTexts(3000);
    texts.push('', '<|endoftext|>', 'x'.repeat(100_000));
    const got = await tok.encodeBatch(texts);
    expect(got).toHaveLength(texts.length);
    for (let i = 0; i < texts.length; i++) expect(Array.from(got[i]), String(i)).toEqual(Array.from(tok.encode(texts[i])));
    const special = await tok.encodeBatch(['a<|endoftext|>b'], { allowedSpecial: 'all' });
    expect(Array.from(special[0])).toEqual([64, 50256, 65]);
    expect(await tok.encodeBatch([])).toEqual([]);
  });

  it('rejects bad input', async () => {
    await expect(tok.encodeBatch(['a', 3 as unknown as string])).rejects.toThrow(TypeError);
    await expect(tok.encodeBatch('abc' as unknown as string[])).rejects.toThrow(TypeError);
    await expect(tok.encodeBatch(['a'], { allowedSpecial: ['nope'] })).rejects.toThrow(TypeError);
  });
});

describe('loading', () => {
  it('loads vocab.json + merges.txt and tokenizer.json (both merge forms) from a folder', async () => {
    const a = await Tokenizer.fromPretrained(tempDir({ 'vocab.json': vocabText, 'merges.txt': mergesText }));
    const merges = mergesText.split('\n').slice(1).filter((l) => l.length > 0);
    const json = (m: unknown[]) => JSON.stringify({
      version: '1.0',
      added_tokens: [{ id: 50256, content: '<|endoftext|>', special: true }],
      model: { type: 'BPE', vocab, merges: m },
    });
    const b = await Tokenizer.fromPretrained(tempDir({ 'tokenizer.json': json(merges) }));
    const c = await Tokenizer.fromPretrained(tempDir({ 'tokenizer.json': json(merges.map((l) => l.split(' '))) }));
    const text = 'The quick brown fox<|endoftext|> jumps 123 times! 😀';
    for (const t of [a, b, c]) {
      expect(Array.from(t.encode(text))).toEqual(Array.from(tok.encode(text)));
      expect(Array.from(t.encode(text, { allowedSpecial: 'all' }))).toEqual(Array.from(tok.encode(text, { allowedSpecial: 'all' })));
      expect(t.vocabSize).toBe(50257);
      expect(t.eosTokenId).toBe(50256);
    }
  });

  it('loads a tokenizer.json with an added token outside the vocabulary', async () => {
    const t = await Tokenizer.fromPretrained(tempDir({
      'tokenizer.json': JSON.stringify({
        added_tokens: [{ id: 50257, content: '<|pad here|>', special: true }],
        model: { type: 'BPE', vocab, merges: mergesText.split('\n').slice(1).filter(Boolean) },
      }),
    }));
    expect(t.vocabSize).toBe(50258);
    expect(Array.from(t.encode('x<|pad here|>', { allowedSpecial: ['<|pad here|>'] }))).toEqual([87, 50257]);
    expect(t.decode([87, 50257])).toBe('x<|pad here|>');
  });

  it('keeps the word caches of different tokenizers apart', async () => {
    // Only the first 1000 merges: every merged id is below 256 + 1000 in GPT-2's order.
    const merges = mergesText.split('\n').slice(1, 1001);
    const small = await Tokenizer.fromPretrained(tempDir({ 'vocab.json': vocabText, 'merges.txt': merges.join('\n') + '\n' }));
    const words = ' internationalization counterrevolutionary Xylophones_1234 '.repeat(3);
    const big = tok.encode(words);
    const fromSmall = small.encode(words);
    expect(fromSmall.length).toBeGreaterThan(big.length);
    expect(Math.max(...fromSmall)).toBeLessThan(1256);
    expect(small.decode(fromSmall)).toBe(words);
    expect(Array.from(tok.encode(words))).toEqual(Array.from(big));
    expect(Array.from(small.encode(words))).toEqual(Array.from(fromSmall));
  });

  async function loadError(files: Record<string, string>): Promise<Error & { code?: string }> {
    try {
      await Tokenizer.fromPretrained(tempDir(files));
    } catch (e) {
      return e as Error & { code?: string };
    }
    throw new Error('no error');
  }

  it('names the file and the position in format errors', async () => {
    let e = await loadError({ 'vocab.json': '{\n "a": 1,\n "b": }', 'merges.txt': mergesText });
    expect(e.code).toBe('ERR_GPT2_FILE_FORMAT');
    expect(e.message).toMatch(/vocab\.json.*line 3, column/);

    e = await loadError({ 'vocab.json': vocabText, 'merges.txt': '#version: 0.2\nĠ t\nĠ a\nnot-a-merge\n' });
    expect(e.code).toBe('ERR_GPT2_FILE_FORMAT');
    expect(e.message).toMatch(/merges\.txt: line 4/);

    e = await loadError({ 'vocab.json': vocabText, 'merges.txt': '#version: 0.2\nĠ t\nqqqzz xyzzy\n' });
    expect(e.message).toMatch(/merges\.txt: line 3: unknown token "qqqzz"/);

    e = await loadError({ 'vocab.json': vocabText, 'merges.txt': '#version: 0.2\nĠ t\nĠ t\n' });
    expect(e.message).toMatch(/duplicate merge/);

    e = await loadError({ 'vocab.json': '{"a": 0, "b": 0}', 'merges.txt': '' });
    expect(e.message).toMatch(/vocab\.json: token "b" at line 1, column \d+: duplicate token id 0/);

    e = await loadError({ 'vocab.json': '{"a": 1.5}', 'merges.txt': '' });
    expect(e.message).toMatch(/vocab\.json.*must be an integer/);

    e = await loadError({ 'vocab.json': '[1, 2]', 'merges.txt': '' });
    expect(e.message).toMatch(/vocab\.json.*JSON object/);

    e = await loadError({ 'vocab.json': '{"a": 0}', 'merges.txt': '' });
    expect(e.message).toMatch(/no token for the byte/);

    e = await loadError({ 'tokenizer.json': '{"model": {"type": "BPE", "vocab": {}, "merges": [1]}}' });
    expect(e.message).toMatch(/tokenizer\.json: model\.merges\[0\] at line 1, column \d+/);

    e = await loadError({ 'tokenizer.json': '{"model": {"type": "WordPiece", "vocab": {}}}' });
    expect(e.message).toMatch(/tokenizer\.json: model\.type must be "BPE" at line 1/);

    e = await loadError({ 'tokenizer.json': '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},\n "added_tokens": [{"id": 3}]}' });
    expect(e.message).toMatch(/tokenizer\.json: an added token.*line 2/);

    e = await loadError({ 'tokenizer.json': '{"model": ' });
    expect(e.code).toBe('ERR_GPT2_FILE_FORMAT');
    expect(e.message).toMatch(/tokenizer\.json.*line 1/);
  });

  it('reports missing files with ERR_GPT2_FILE_IO', async () => {
    let e = await loadError({ 'vocab.json': vocabText });
    expect(e.code).toBe('ERR_GPT2_FILE_IO');
    expect(e.message).toMatch(/merges\.txt/);
    e = await loadError({});
    expect(e.code).toBe('ERR_GPT2_FILE_IO');
    await expect(Tokenizer.fromPretrained('/nonexistent/dir')).rejects.toMatchObject({ code: 'ERR_GPT2_FILE_IO' });
    await expect(Tokenizer.fromPretrained(3 as unknown as string)).rejects.toThrow(TypeError);
  });

  it('falls back to the bundled tokenizer for a model folder without tokenizer files', async () => {
    const t = await Tokenizer.fromModelDir(tempDir({ 'config.json': '{}' }), true);
    expect(t?.vocabSize).toBe(50257);
    expect(await Tokenizer.fromModelDir(tempDir({ 'config.json': '{}' }), false)).toBeUndefined();
  });
});
