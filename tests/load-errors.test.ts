// Model.load on malformed model folders: every case rejects with a typed error (code
// ERR_GPT2_FILE_FORMAT or ERR_GPT2_FILE_IO, a message naming the file/tensor/field),
// never crashes the process. The folders are edits of the fixtures' tiny_fp16 model.
import { copyFileSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Model } from '../lib/index.js';

const fixtures = resolve(import.meta.dirname, '../../shared/fixtures/models');
const base = join(fixtures, 'tiny_fp16');
const work = mkdtempSync(join(tmpdir(), 'gpt2-load-errors-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Header = Record<string, any>;
function splitSafetensors(buf: Buffer): { header: Header; data: Buffer } {
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString('utf8')), data: buf.subarray(8 + n) };
}
function joinSafetensors(header: Header | string, data: Buffer): Buffer {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  while (text.length % 8) text += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  return Buffer.concat([len, Buffer.from(text), data]);
}

let counter = 0;
/** A copy of tiny_fp16 with optional edits of config.json and model.safetensors. */
function folder(opts: { config?: (c: any) => any; configText?: string; header?: (h: Header) => void;
  bytes?: (b: Buffer) => Buffer; weights?: boolean } = {}): string {
  const dir = join(work, `m${counter++}`);
  mkdirSync(dir);
  const config = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), opts.configText ?? JSON.stringify(opts.config ? opts.config(config) : config));
  if (opts.weights === false) return dir;
  let file = readFileSync(join(base, 'model.safetensors'));
  if (opts.header) {
    const { header, data } = splitSafetensors(file);
    opts.header(header);
    file = joinSafetensors(header, data);
  }
  if (opts.bytes) file = opts.bytes(file);
  writeFileSync(join(dir, 'model.safetensors'), file);
  return dir;
}

async function expectLoadError(dir: string, code: string, ...parts: (string | RegExp)[]) {
  let err: any;
  try {
    const m = await Model.load(dir, { device: 'cpu' });
    m.dispose();
  } catch (e) {
    err = e;
  }
  expect(err, `Model.load(${dir}) should reject`).toBeInstanceOf(Error);
  expect(err.code, err.message).toBe(code);
  for (const p of parts) expect(err.message).toMatch(p);
  return err as Error & { code: string };
}

describe('Model.load rejects malformed folders with typed errors', () => {
  it('loads the unmodified copy (the edits below are what breaks it)', async () => {
    const m = await Model.load(folder(), { device: 'cpu' });
    expect(m.config.n_embd).toBe(8);
    m.dispose();
  });

  it('folder and file problems are ERR_GPT2_FILE_IO', async () => {
    await expectLoadError(join(work, 'does-not-exist'), 'ERR_GPT2_FILE_IO', /does-not-exist/);
    await expectLoadError(folder({ weights: false }), 'ERR_GPT2_FILE_IO', /no model\.safetensors/);
    const noConfig = join(work, 'noconfig');
    mkdirSync(noConfig);
    copyFileSync(join(base, 'model.safetensors'), join(noConfig, 'model.safetensors'));
    await expectLoadError(noConfig, 'ERR_GPT2_FILE_IO', /no config\.json/);
  });

  it('config.json errors name the field', async () => {
    await expectLoadError(folder({ config: (c) => ({ ...c, n_head: 3 }) }), 'ERR_GPT2_FILE_FORMAT',
      /config\.json: n_head \(3\) must divide n_embd \(8\)/);
    await expectLoadError(folder({ config: (c) => ({ ...c, activation_function: 'gelu_magic' }) }),
      'ERR_GPT2_FILE_FORMAT', /unknown activation_function "gelu_magic"/);
    await expectLoadError(folder({ config: (c) => ({ ...c, model_type: 'llama' }) }), 'ERR_GPT2_FILE_FORMAT',
      /model_type is "llama"/);
    await expectLoadError(folder({ config: (c) => ({ ...c, n_layer: 1e6 }) }), 'ERR_GPT2_FILE_FORMAT', /n_layer/);
    await expectLoadError(folder({ configText: '{"n_embd": 8,' }), 'ERR_GPT2_FILE_FORMAT', /config\.json: invalid JSON/);
  });

  it('corrupt safetensors files name the file and the problem', async () => {
    await expectLoadError(folder({ bytes: (b) => b.subarray(0, b.length - 1000) }), 'ERR_GPT2_FILE_FORMAT',
      /model\.safetensors: tensor '.*': data_offsets .* run past the end of the data section/);
    await expectLoadError(folder({ bytes: (b) => b.subarray(0, 5) }), 'ERR_GPT2_FILE_FORMAT', /too small/);
    await expectLoadError(folder({ bytes: (b) => { const c = Buffer.from(b); c.writeBigUInt64LE(1n << 40n, 0); return c; } }),
      'ERR_GPT2_FILE_FORMAT', /header length \d+ is more than the limit/);
    await expectLoadError(folder({ bytes: (b) => { const c = Buffer.from(b); c[9] = 0x7b; c[10] = 0x22; return c; } }),
      'ERR_GPT2_FILE_FORMAT', /invalid JSON/);
    await expectLoadError(folder({ header: (h) => { h['wte.weight'].data_offsets[1] = 1e15; } }),
      'ERR_GPT2_FILE_FORMAT', /'wte\.weight'/);
    await expectLoadError(folder({ header: (h) => { h['ln_f.bias'].data_offsets = h['ln_f.weight'].data_offsets; } }),
      'ERR_GPT2_FILE_FORMAT', /overlap/);
    await expectLoadError(folder({ header: (h) => { h['ln_f.bias'].shape = [-16]; } }), 'ERR_GPT2_FILE_FORMAT',
      /'ln_f\.bias': shape entries must be non-negative/);
    await expectLoadError(folder({ header: (h) => { h['ln_f.bias'].dtype = 'Q4'; } }), 'ERR_GPT2_FILE_FORMAT',
      /'ln_f\.bias': unknown dtype 'Q4'/);
  });

  it('tensors disagreeing with config.json are named', async () => {
    await expectLoadError(folder({ header: (h) => { delete h['h.1.mlp.c_fc.weight']; } }), 'ERR_GPT2_FILE_FORMAT',
      /missing tensor 'h\.1\.mlp\.c_fc\.weight'/);
    await expectLoadError(folder({ header: (h) => { h['ln_f.bias'].dtype = 'I16'; } }), 'ERR_GPT2_FILE_FORMAT',
      /'ln_f\.bias' has dtype I16/);
    await expectLoadError(folder({ config: (c) => ({ ...c, n_inner: 16 }) }), 'ERR_GPT2_FILE_FORMAT',
      /'h\.\d+\.mlp\.c_(fc|proj)\.(weight|bias)' has shape \[.*\], but .*config\.json \(n_embd 8, n_inner 16\) needs/);
    await expectLoadError(folder({ config: (c) => ({ ...c, tie_word_embeddings: false }) }), 'ERR_GPT2_FILE_FORMAT',
      /missing tensor 'lm_head\.weight'/);
  });

  it('random corruption of the header never crashes: it loads or rejects with a typed error', async () => {
    const original = readFileSync(join(base, 'model.safetensors'));
    const headerEnd = 8 + Number(original.readBigUInt64LE(0));
    let seed = 12345;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    for (let i = 0; i < 40; i++) {
      const dir = folder({ bytes: (b) => {
        const c = Buffer.from(b);
        for (let k = 0; k < 1 + rand(4); k++) c[rand(headerEnd)] = rand(256);
        return c;
      } });
      try {
        const m = await Model.load(dir, { device: 'cpu' });
        m.dispose();
      } catch (e: any) {
        expect(['ERR_GPT2_FILE_FORMAT', 'ERR_GPT2_FILE_IO']).toContain(e.code);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
