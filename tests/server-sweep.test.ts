// The bad-request sweep: malformed and hostile requests to a live server get only 4xx answers in
// OpenAI's error shape, cheap ones never reach the tokenizer, the process never crashes, and the
// server still returns correct results afterwards.
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServer, Model, type Gpt2Server } from '../lib/index.js';
import { maxAbsDiff } from './helpers/arrays.js';
import { haveFixtures, modelDir } from './helpers/fixtures.js';
import { expectOpenAIError, post, read, type RawResponse } from './helpers/server.js';

const E = '/v1/embeddings';
const C = '/v1/completions';
const embedding = (fields: Record<string, unknown>) => ({ model: 'tiny', input: 'hello', ...fields });
const completion = (fields: Record<string, unknown>) => ({ model: 'tiny', prompt: 'hello', max_tokens: 4, ...fields });

/** [name, route, body (object -> JSON; string / bytes as they are), what the error message says] */
const bodies: [string, string, unknown, RegExp?][] = [
  // Not JSON, or not an object, or the model field wrong: the same for both routes.
  ...[E, C].flatMap((route): [string, string, unknown, RegExp?][] => {
    const k = route === E ? 'input' : 'prompt';
    const notJson = /could not parse the JSON/;
    const notUtf8 = /not valid UTF-8/;
    const nested = (open: string, close: string, n: number) => `{"model":"tiny","${k}":${open.repeat(n)}${close.repeat(n)}}`;
    return [
      ['empty body', route, '', notJson],
      ['truncated JSON', route, JSON.stringify({ model: 'tiny', [k]: 'hello' }).slice(0, -3), notJson],
      ['unquoted key', route, `{model: "tiny", ${k}: "x"}`, notJson],
      ['trailing comma', route, `{"model":"tiny","${k}":"x",}`, notJson],
      ['NaN literal', route, `{"model":"tiny","${k}":NaN}`, notJson],
      ['Infinity literal', route, `{"model":"tiny","${k}":[Infinity]}`, notJson],
      ['-Infinity literal', route, `{"model":"tiny","${k}":"x","seed":-Infinity}`, notJson],
      ['1e999 (parses to Infinity)', route, `{"model":"tiny","${k}":[1e999]}`, new RegExp(`Invalid value for '${k}'`)],
      ['null', route, 'null', /must be a JSON object/],
      ['array', route, '[]', /must be a JSON object/],
      ['string', route, '"hello"', /must be a JSON object/],
      ['number', route, '42', /must be a JSON object/],
      ['deeply nested arrays', route, nested('[', ']', 100_000), new RegExp(`Invalid value for '${k}'`)],
      ['deeply nested objects', route, nested('{"a":', '}', 50_000).replace(/\{"a":\}/, '{"a":1}'), /./],
      ['invalid UTF-8 byte', route, Buffer.concat([Buffer.from(`{"model":"tiny","${k}":"ab`), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), notUtf8],
      ['overlong UTF-8', route, Buffer.concat([Buffer.from(`{"model":"tiny","${k}":"`), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), notUtf8],
      ['UTF-8 surrogate', route, Buffer.concat([Buffer.from(`{"model":"tiny","${k}":"`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]), notUtf8],
      ['truncated UTF-8', route, Buffer.concat([Buffer.from(`{"model":"tiny","${k}":"x"}`), Buffer.from([0xe2, 0x82])]), notUtf8],
      ['model missing', route, { [k]: 'x' }, /Missing required parameter: 'model'/],
      ['model wrong type', route, { model: 1, [k]: 'x' }, /Invalid value for 'model'/],
      ['model null', route, { model: null, [k]: 'x' }, /Invalid value for 'model'/],
      ['unknown model', route, { model: 'gpt-4', [k]: 'x' }, /model 'gpt-4' does not exist/],
    ];
  }),
  // /v1/embeddings fields.
  ['input missing', E, { model: 'tiny' }],
  ...([1, true, null, {}, [1.5], [-1], [[1, 'a']], [null], ['a', 1], [[1], 2], [['a']], [{}]] as unknown[])
    .map((input): [string, string, unknown] => [`input ${JSON.stringify(input)}`, E, embedding({ input })]),
  ['input empty string', E, embedding({ input: '' })],
  ['input empty array', E, embedding({ input: [] })],
  ['input [""]', E, embedding({ input: ['ok', ''] })],
  ['input [[]]', E, embedding({ input: [[1], []] })],
  ['input 10k texts', E, embedding({ input: Array.from({ length: 10_000 }, () => 'a') })],
  ['token id = vocab size', E, embedding({ input: [50257] })],
  ['token id 2^40', E, embedding({ input: [[1, 2], [2 ** 40]] })],
  ['token ids over n_positions', E, embedding({ input: Array.from({ length: 129 }, () => 1) })],
  ['text over n_positions tokens', E, embedding({ input: ['ok', 'hello '.repeat(300)] })],
  ['encoding_format int8', E, embedding({ encoding_format: 'int8' })],
  ['encoding_format 1', E, embedding({ encoding_format: 1 })],
  ['dimensions 32', E, embedding({ dimensions: 32 })],
  ['dimensions "64"', E, embedding({ dimensions: '64' })],
  ['dimensions 1.5', E, embedding({ dimensions: 1.5 })],
  ['user 1', E, embedding({ user: 1 })],
  ['unknown field', E, embedding({ temperature: 1 })],
  ['unknown field __proto__', E, '{"model":"tiny","input":"x","__proto__":{"polluted":true}}'],
  // /v1/completions fields.
  ['prompt missing', C, { model: 'tiny' }],
  ...([1, true, {}, [1.5], [-1], [[1, 'a']], [null], ['a', 1], []] as unknown[])
    .map((prompt): [string, string, unknown] => [`prompt ${JSON.stringify(prompt)}`, C, completion({ prompt })]),
  ['prompt 10k texts', C, completion({ prompt: Array.from({ length: 10_000 }, () => 'a') })],
  ['prompt token id out of vocab', C, completion({ prompt: [1, 2, 50257] })],
  ['prompt + max_tokens over n_positions', C, completion({ prompt: 'hello '.repeat(100), max_tokens: 100 })],
  ...([1e12, -1, 0, 1.5, '16', 1e308, true, 128] as unknown[])
    .map((max_tokens): [string, string, unknown] => [`max_tokens ${JSON.stringify(max_tokens)}`, C, completion({ max_tokens })]),
  ...([-1, 3, 'hot'] as unknown[]).map((temperature): [string, string, unknown] => [`temperature ${temperature}`, C, completion({ temperature })]),
  ...([0, 2, -0.5] as unknown[]).map((top_p): [string, string, unknown] => [`top_p ${top_p}`, C, completion({ top_p })]),
  ...([0, 1000, 1.5, '2'] as unknown[]).map((n): [string, string, unknown] => [`n ${JSON.stringify(n)}`, C, completion({ n })]),
  ['prompts x n over the cap', C, completion({ prompt: Array.from({ length: 20 }, () => 'a'), n: 10 })],
  ['best_of != n', C, completion({ best_of: 3 })],
  ['stream "yes"', C, completion({ stream: 'yes' })],
  ['stream_options without stream', C, completion({ stream_options: { include_usage: true } })],
  ['stream_options.include_usage "x"', C, completion({ stream: true, stream_options: { include_usage: 'x' } })],
  ['stream_options unknown key', C, completion({ stream: true, stream_options: { foo: 1 } })],
  ['stop 5 strings', C, completion({ stop: ['a', 'b', 'c', 'd', 'e'] })],
  ['stop ""', C, completion({ stop: '' })],
  ['stop [""]', C, completion({ stop: [''] })],
  ['stop 1', C, completion({ stop: 1 })],
  ['presence_penalty 5', C, completion({ presence_penalty: 5 })],
  ['frequency_penalty -5', C, completion({ frequency_penalty: -5 })],
  ['logit_bias key not an id', C, completion({ logit_bias: { abc: 1 } })],
  ['logit_bias value 500', C, completion({ logit_bias: { 1: 500 } })],
  ['logit_bias id out of vocab', C, completion({ logit_bias: { 99999999: 1 } })],
  ['logit_bias array', C, completion({ logit_bias: [] })],
  ['seed 1.5', C, completion({ seed: 1.5 })],
  ['seed "x"', C, completion({ seed: 'x' })],
  ['seed 2^60', C, completion({ seed: 2 ** 60 })],
  ['logprobs 6', C, completion({ logprobs: 6 })],
  ['logprobs -1', C, completion({ logprobs: -1 })],
  ['echo "x"', C, completion({ echo: 'x' })],
  ['suffix', C, completion({ suffix: 'the end' })],
  ['unknown field', C, completion({ top_k: 5 })],
];

/** A raw request, bytes as given (fetch would re-encode strings). */
function raw(url: string, method: string, path: string, body: string | Buffer, headers: Record<string, string>): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers: { 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
        resolve({ status: res.statusCode!, headers: h, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(!haveFixtures)('bad-request sweep', () => {
  let model: Model;
  let server: Gpt2Server;
  let url: string;

  beforeAll(async () => {
    model = await Model.load(modelDir('tiny'));
    // A large body limit, so that the 10 MB text reaches the character cap (the cheap check under test).
    server = createServer(model, { modelName: 'tiny', maxBodyBytes: 32 << 20 });
    url = (await server.listen(0)).url;
  });
  afterAll(async () => {
    await server?.close();
    model?.dispose();
  });

  const tokenized = async () => Number(/^gpt2_server_tokenized_texts_total (\d+)/m.exec(await (await fetch(`${url}/metrics`)).text())![1]);

  it('every malformed, mistyped, empty, huge or unknown field gets a 4xx in OpenAI\'s error shape', async () => {
    for (const [name, route, body, message] of bodies) {
      const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      const r = await raw(url, 'POST', route, payload, { 'content-type': 'application/json' });
      expectOpenAIError(r, '4xx', `${route} ${name}`);
      if (message) expect(r.json.error.message, `${route} ${name}`).toMatch(message);
      if (process.env.GPT2_SWEEP_LOG) console.log(`${route} ${name}: ${r.status} ${r.json.error.message.slice(0, 150)}`);
    }
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('fields named in errors: param is the offending field', async () => {
    const cases: [unknown, string][] = [
      [completion({ max_tokens: 1.5 }), 'max_tokens'], [completion({ temperature: 'hot' }), 'temperature'],
      [completion({ stop: [1] }), 'stop'], [completion({ top_k: 1 }), 'top_k'], [completion({ logprobs: 9 }), 'logprobs'],
    ];
    for (const [body, param] of cases) {
      const r = await post(`${url}${C}`, body);
      expectOpenAIError(r, 400, param);
      expect(r.json.error.param).toBe(param);
      expect(r.json.error.message).toContain(param);
    }
    const ctx = await post(`${url}${C}`, completion({ max_tokens: 1e12 }));
    expect(ctx.json.error.code).toBe('context_length_exceeded');
    expect(ctx.json.error.message).toMatch(/^This model's maximum context length is 128 tokens/);
    const unknown = await post(`${url}${E}`, embedding({ model: 'gpt-4' }));
    expectOpenAIError(unknown, 404);
    expect(unknown.json.error.code).toBe('model_not_found');
  });

  it('a 10 MB text is refused by the character cap, before any tokenization', async () => {
    const before = await tokenized();
    for (const [route, body] of [[E, embedding({ input: 'a'.repeat(10 << 20) })], [C, completion({ prompt: ['ok', 'ab '.repeat(3.5 * 2 ** 20)] })]] as const) {
      const r = await post(`${url}${route}`, body);
      expectOpenAIError(r, 400, route);
      expect(r.json.error.code).toBe('string_above_max_length');
    }
    expect(await tokenized()).toBe(before);
    // A text that is within the cap is tokenized (the counter does count).
    await post(`${url}${E}`, embedding({ input: 'counted' }));
    expect(await tokenized()).toBe(before + 1);
  });

  it('wrong content types, methods and URLs', async () => {
    const json = JSON.stringify(embedding({}));
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
      expectOpenAIError(await raw(url, 'POST', E, json, { 'content-type': type }), 415, type);
    }
    expectOpenAIError(await raw(url, 'POST', E, json, {}), 415, 'no content type');
    expect((await raw(url, 'POST', E, json, { 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);
    for (const [method, path, status] of [['GET', E, 405], ['GET', C, 405], ['PUT', E, 405], ['DELETE', C, 405], ['POST', '/v1/models', 405],
      ['POST', '/health', 405], ['GET', '/v1/chat/completions', 404], ['GET', '/', 404], ['GET', '/v1/embeddingsx', 404]] as const) {
      const r = await raw(url, method, path, method === 'GET' ? '' : json, { 'content-type': 'application/json' });
      expectOpenAIError(r, status, `${method} ${path}`);
      if (status === 405) expect(r.headers.get('allow')).toBeTruthy();
    }
  });

  it('the sweep in parallel with good requests: every bad one gets a 4xx, every good one its correct answer', async () => {
    const prompts = Array.from({ length: 8 }, (_, i) => `Parallel prompt ${i}`);
    const want = await Promise.all(prompts.map((p) => model.generate(p, { maxNewTokens: 6, sampler: { temperature: 0 } }).result()));
    const bad = bodies.filter(([name]) => !/10k|deeply/.test(name)).map(async ([name, route, body]) => {
      const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      const r = await raw(url, 'POST', route, payload, { 'content-type': 'application/json' });
      expectOpenAIError(r, '4xx', `${route} ${name}`);
    });
    const good = prompts.map(async (p, i) => {
      const r = await post(`${url}${C}`, { model: 'tiny', prompt: p, max_tokens: 6, temperature: 0 });
      expect(r.status).toBe(200);
      expect(r.json.choices[0].text).toBe(want[i]!.text);
    });
    await Promise.all([...bad, ...good]);
  });

  it('a client that sends part of its body and disconnects leaves nothing in flight', async () => {
    for (let i = 0; i < 3; i++) {
      const socket = connect(Number(new URL(url).port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(`POST ${E} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model":"tiny","input":"ab`);
      await vi.waitFor(() => expect(server.inFlight).toBe(1), { timeout: 10_000, interval: 5 });
      socket.destroy();
      await vi.waitFor(() => expect(server.inFlight).toBe(0), { timeout: 10_000, interval: 5 });
    }
  });

  it('afterwards the server still serves correct embeddings and completions', async () => {
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const e = await post(`${url}${E}`, { model: 'tiny', input: ['after the sweep', 'still fine'], encoding_format: 'float' });
    expect(e.status).toBe(200);
    const want = await model.embed(['after the sweep', 'still fine'], { normalize: true });
    e.json.data.forEach((d: { embedding: number[] }, i: number) => expect(maxAbsDiff(d.embedding, want[i]!)).toBeLessThanOrEqual(1e-6));
    const c = await post(`${url}${C}`, { model: 'tiny', prompt: 'after the sweep', max_tokens: 8, temperature: 0 });
    expect(c.status).toBe(200);
    const text = (await model.generate('after the sweep', { maxNewTokens: 8, sampler: { temperature: 0 } }).result()).text;
    expect(c.json.choices[0].text).toBe(text);
    expect(server.inFlight).toBe(0);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).not.toMatch(/status="5\d\d"/);
    expect(metrics).toMatch(/^gpt2_server_active_sequences 0$/m);
  });
});
