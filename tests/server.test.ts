// The OpenAI-compatible server on loopback, driven by the official `openai` client (and raw
// fetch where the client hides what is tested): results equal Model.embed / Model.generate,
// streaming, auth, limits, metrics, overload, client disconnects, draining and SIGTERM.
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServer, Model, type Gpt2Server } from '../lib/index.js';
import { buildDistIfStale, cli as cliPath, root, runCli } from './helpers/cli.js';
import { maxAbsDiff } from './helpers/arrays.js';
import { haveFixtures, modelDir } from './helpers/fixtures.js';
import { expectOpenAIError, post, read, readEvents } from './helpers/server.js';

const KEY = 'sk-test-key';
const texts = ['Hello world', 'The quick brown fox jumps over the lazy dog.', 'naïve café ☕ 東京', 'a'];

/** A model slow enough per step (gpt2 width, 2 layers, 1024 positions) that work can be caught mid-flight. */
const slowModel = () => Model.random({ n_layer: 2 });

async function startStream(url: string, body: Record<string, unknown>, signal?: AbortSignal) {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST', signal,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ model: 'slow', stream: true, ...body }),
  });
  expect(r.status).toBe(200);
  const reader = (r.body as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read(); // the first token's chunk
  expect(first.done).toBe(false);
  return { response: r, reader, first: new TextDecoder().decode(first.value) };
}

async function drainReader(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  let text = '';
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text;
    text += decoder.decode(value, { stream: true });
  }
}

describe.skipIf(!haveFixtures)('server with the openai client', () => {
  let model: Model;
  let server: Gpt2Server;
  let url: string;
  let client: OpenAI;

  beforeAll(async () => {
    model = await Model.load(modelDir('tiny'));
    server = createServer(model, { modelName: 'tiny', apiKey: KEY, maxBodyBytes: 1 << 20 });
    url = (await server.listen(0)).url;
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.close();
    model?.dispose();
  });

  it('embeddings: default (base64) and float both equal Model.embed, in input order', async () => {
    const want = await model.embed(texts, { normalize: true });
    const b64 = await client.embeddings.create({ model: 'tiny', input: texts });
    const flt = await client.embeddings.create({ model: 'tiny', input: texts, encoding_format: 'float' });
    for (const r of [b64, flt]) {
      expect(r.object).toBe('list');
      expect(r.model).toBe('tiny');
      expect(r.data.map((d) => d.index)).toEqual([0, 1, 2, 3]);
      r.data.forEach((d, i) => {
        expect(d.object).toBe('embedding');
        expect(maxAbsDiff(d.embedding, want[i]!)).toBeLessThanOrEqual(1e-6);
      });
      const tokens = texts.reduce((n, t) => n + model.tokenizer.count(t), 0);
      expect(r.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    }
    // Unit length, as OpenAI's embeddings.
    expect(Math.hypot(...flt.data[0]!.embedding)).toBeCloseTo(1, 5);
    // One string alone.
    const one = await client.embeddings.create({ model: 'tiny', input: texts[1]!, encoding_format: 'float' });
    expect(maxAbsDiff(one.data[0]!.embedding, want[1]!)).toBeLessThanOrEqual(1e-6);
  });

  it('embeddings: token-id inputs (one array, or several) equal the texts they encode', async () => {
    const ids = texts.map((t) => Array.from(model.tokenizer.encode(t)));
    const want = await model.embed(texts, { normalize: true });
    const many = await client.embeddings.create({ model: 'tiny', input: ids, encoding_format: 'float' });
    many.data.forEach((d, i) => expect(maxAbsDiff(d.embedding, want[i]!)).toBeLessThanOrEqual(1e-6));
    const one = await client.embeddings.create({ model: 'tiny', input: ids[2]!, encoding_format: 'float' });
    expect(maxAbsDiff(one.data[0]!.embedding, want[2]!)).toBeLessThanOrEqual(1e-6);
    expect(one.usage.prompt_tokens).toBe(ids[2]!.length);
  });

  it('completions: greedy equals Model.generate, streamed or not, with usage', async () => {
    const prompt = 'The meaning of life is';
    const want = await model.generate(prompt, { maxNewTokens: 12, sampler: { temperature: 0 } }).result();
    const r = await client.completions.create({ model: 'tiny', prompt, max_tokens: 12, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.id).toMatch(/^cmpl-/);
    expect(r.model).toBe('tiny');
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.text).toBe(want.text);
    expect(r.choices[0]!.index).toBe(0);
    expect(r.choices[0]!.finish_reason).toBe(want.finishReason === 'stop' ? 'stop' : 'length');
    expect(r.usage).toEqual({ prompt_tokens: want.usage.promptTokens, completion_tokens: want.usage.completionTokens,
      total_tokens: want.usage.totalTokens });

    const stream = await client.completions.create({ model: 'tiny', prompt, max_tokens: 12, temperature: 0, stream: true,
      stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.object).toBe('text_completion');
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text).toBe(want.text);
    expect(finish).toBe(r.choices[0]!.finish_reason);
    expect(usage).toEqual(r.usage);
  });

  it('completions: an empty prompt starts from <|endoftext|>; token-id prompts equal their text', async () => {
    const empty = await client.completions.create({ model: 'tiny', prompt: '', max_tokens: 5, temperature: 0 });
    expect(empty.usage!.prompt_tokens).toBe(1);
    expect(empty.choices[0]!.text).toBe((await model.generate('', { maxNewTokens: 5, sampler: { temperature: 0 } }).result()).text);
    const ids = Array.from(model.tokenizer.encode('The meaning of life is'));
    const byIds = await client.completions.create({ model: 'tiny', prompt: ids, max_tokens: 5, temperature: 0 });
    const byText = await client.completions.create({ model: 'tiny', prompt: 'The meaning of life is', max_tokens: 5, temperature: 0 });
    expect(byIds.choices[0]!.text).toBe(byText.choices[0]!.text);
  });

  it('completions: n > 1 with a seed is deterministic; prompts x n get OpenAI indexes', async () => {
    const req = { model: 'tiny', prompt: ['Once upon a time', 'In the beginning'], n: 3, max_tokens: 8, temperature: 1, seed: 42 };
    const a = await client.completions.create(req);
    const b = await client.completions.create(req);
    expect(a.choices.map((c) => c.index).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(a.choices.map((c) => c.text)).toEqual(b.choices.map((c) => c.text));
    // Choice j of a prompt uses seed + j: equal to Model.generate with that seed.
    const want = await model.generate('In the beginning', { maxNewTokens: 8, sampler: { temperature: 1, topK: 0 }, seed: 43 }).result();
    expect(a.choices.find((c) => c.index === 4)!.text).toBe(want.text);
    expect(a.usage!.prompt_tokens).toBe(model.tokenizer.count(req.prompt[0]!) + model.tokenizer.count(req.prompt[1]!));
    expect(a.usage!.completion_tokens).toBe(b.usage!.completion_tokens);
    expect(a.usage!.completion_tokens).toBeGreaterThan(0);
    expect(a.usage!.completion_tokens).toBeLessThanOrEqual(6 * 8);
  });

  it('completions: many choices (n 32) without listener-leak warnings', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const r = await client.completions.create({ model: 'tiny', prompt: 'Count:', n: 32, max_tokens: 3, seed: 7 });
      expect(r.choices).toHaveLength(32);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('completions: stop strings end the text before the match (stream and not)', async () => {
    const prompt = 'The meaning of life is';
    const full = (await model.generate(prompt, { maxNewTokens: 20, sampler: { temperature: 0 } }).result()).text;
    const stop = full.slice(6, 9);
    expect(stop.length).toBe(3);
    const want = full.slice(0, full.indexOf(stop));
    const r = await client.completions.create({ model: 'tiny', prompt, max_tokens: 20, temperature: 0, stop: [stop, 'zzzz'] });
    expect(r.choices[0]!.text).toBe(want);
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const stream = await client.completions.create({ model: 'tiny', prompt, max_tokens: 20, temperature: 0, stop, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices.map((c) => c.text).join('');
    expect(text).toBe(want);
  });

  it('completions: logprobs and echo', async () => {
    const prompt = 'Hello there';
    const r = await client.completions.create({ model: 'tiny', prompt, max_tokens: 6, temperature: 0, logprobs: 3, echo: true });
    const c = r.choices[0]!;
    expect(c.text.startsWith(prompt)).toBe(true);
    const lp = c.logprobs!;
    expect(lp.tokens).toHaveLength(6);
    expect(lp.tokens!.join('')).toBe(c.text.slice(prompt.length));
    expect(lp.text_offset![0]).toBe(prompt.length);
    for (let i = 0; i < 6; i++) {
      expect(lp.token_logprobs![i]).toBeLessThanOrEqual(0);
      const top = lp.top_logprobs![i]!;
      expect(Object.keys(top).length).toBeGreaterThan(0);
      expect(Object.keys(top).length).toBeLessThanOrEqual(3);
      // Greedy: the chosen token is the most likely one.
      expect(Math.max(...Object.values(top))).toBeCloseTo(lp.token_logprobs![i]!, 5);
    }
  });

  it('streaming with echo and logprobs: the prompt first, then one logprobs entry per token', async () => {
    const prompt = 'Hello there';
    const full = await client.completions.create({ model: 'tiny', prompt, max_tokens: 6, temperature: 0, logprobs: 2, echo: true });
    const stream = await client.completions.create({ model: 'tiny', prompt, max_tokens: 6, temperature: 0, logprobs: 2, echo: true, stream: true });
    const texts: string[] = [];
    const tokens: string[] = [];
    const logprobs: number[] = [];
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        texts.push(c.text);
        tokens.push(...(c.logprobs?.tokens ?? []));
        logprobs.push(...(c.logprobs?.token_logprobs ?? []));
      }
    }
    expect(texts[0]).toBe(prompt);
    expect(texts.join('')).toBe(full.choices[0]!.text);
    expect(tokens).toEqual(full.choices[0]!.logprobs!.tokens);
    logprobs.forEach((lp, i) => expect(lp).toBeCloseTo(full.choices[0]!.logprobs!.token_logprobs![i]!, 5));
  });

  it('GET /v1/models, /v1/models/{id} and /health', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['tiny']);
    expect(list.data[0]).toMatchObject({ object: 'model', owned_by: 'gpt2-node' });
    expect((await client.models.retrieve('tiny')).id).toBe('tiny');
    await expect(client.models.retrieve('nope')).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    const h = await fetch(`${url}/health`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok' });
  });

  it('auth: 401 without a key or with a wrong one; the right key works', async () => {
    const body = { model: 'tiny', input: 'hi' };
    expectOpenAIError(await post(`${url}/v1/embeddings`, body), 401, 'no key');
    expectOpenAIError(await post(`${url}/v1/embeddings`, body, { authorization: 'Bearer sk-wrong' }), 401, 'wrong key');
    expectOpenAIError(await post(`${url}/v1/embeddings`, body, { authorization: `Bearer ${KEY}x` }), 401, 'longer key');
    expect((await post(`${url}/v1/embeddings`, body, { authorization: `Bearer ${KEY}` })).status).toBe(200);
    const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await expect(wrong.embeddings.create(body)).rejects.toMatchObject({ status: 401 });
    expect((await fetch(`${url}/health`)).status).toBe(200); // health and metrics stay open
  });

  it('a body over --max-body-bytes gets 413 (declared length or streamed), and the server keeps serving', async () => {
    const big = JSON.stringify({ model: 'tiny', input: 'x'.repeat((1 << 20) + 10) });
    expectOpenAIError(await post(`${url}/v1/embeddings`, big, { authorization: `Bearer ${KEY}` }), 413, 'declared');
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const r = await fetch(`${url}/v1/embeddings`, { method: 'POST', body: chunked, duplex: 'half',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` } } as RequestInit);
    expectOpenAIError(await read(r), 413, 'chunked');
    const ok = await client.embeddings.create({ model: 'tiny', input: 'still here', encoding_format: 'float' });
    expect(ok.data).toHaveLength(1);
  });

  it('20 concurrent requests (embeddings and completions) all get their own correct answers', async () => {
    const prompts = Array.from({ length: 10 }, (_, i) => `Story number ${i}:`);
    const wantText = await Promise.all(prompts.map((p) => model.generate(p, { maxNewTokens: 10, sampler: { temperature: 0 } }).result()));
    const inputs = Array.from({ length: 10 }, (_, i) => `embedding text ${i} ${'word '.repeat(i)}`);
    const wantVec = await model.embed(inputs, { normalize: true });
    const [comps, embs] = await Promise.all([
      Promise.all(prompts.map((p, i) => (i % 2
        ? client.completions.create({ model: 'tiny', prompt: p, max_tokens: 10, temperature: 0 }).then((r) => r.choices[0]!.text)
        : (async () => {
          let t = '';
          for await (const c of await client.completions.create({ model: 'tiny', prompt: p, max_tokens: 10, temperature: 0, stream: true })) {
            t += c.choices[0]?.text ?? '';
          }
          return t;
        })()))),
      Promise.all(inputs.map((t) => client.embeddings.create({ model: 'tiny', input: t }))),
    ]);
    expect(comps).toEqual(wantText.map((w) => w.text));
    embs.forEach((r, i) => expect(maxAbsDiff(r.data[0]!.embedding, wantVec[i]!)).toBeLessThanOrEqual(1e-6));
  });

  it('/metrics: Prometheus text with the server and engine metrics after traffic', async () => {
    const r = await fetch(`${url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await r.text();
    for (const name of ['gpt2_server_requests_total', 'gpt2_server_requests_in_flight', 'gpt2_server_active_sequences',
      'gpt2_server_request_duration_seconds_bucket', 'gpt2_server_time_to_first_token_seconds_bucket',
      'gpt2_server_prompt_tokens_total', 'gpt2_server_completion_tokens_total', 'gpt2_server_request_batch_size_bucket',
      'gpt2_server_tokenized_texts_total', 'gpt2_engine_steps', 'gpt2_engine_max_step_sequences', 'gpt2_engine_kv_free_blocks']) {
      expect(text, name).toMatch(new RegExp(`^${name}`, 'm'));
    }
    expect(text).toMatch(/^gpt2_server_requests_total\{route="\/v1\/completions",status="200"\} [1-9]/m);
    expect(text).toMatch(/^gpt2_server_requests_total\{route="\/v1\/embeddings",status="401"\} [1-9]/m);
    const generated = Number(/^gpt2_server_completion_tokens_total (\d+)/m.exec(text)![1]);
    expect(generated).toBeGreaterThan(100);
    expect(Number(/^gpt2_engine_max_step_sequences (\d+)/m.exec(text)![1])).toBeGreaterThan(1); // concurrent requests shared steps
    expect(text).toMatch(/^gpt2_server_requests_in_flight 0$/m);
    // Engine batch sizes: a cumulative histogram whose +Inf bucket and count are the step count,
    // with steps above one sequence (the concurrent requests above shared steps).
    const steps = Number(/^gpt2_engine_steps (\d+)/m.exec(text)![1]);
    expect(Number(/^gpt2_engine_step_sequences_bucket\{le="\+Inf"\} (\d+)/m.exec(text)![1])).toBe(steps);
    expect(Number(/^gpt2_engine_step_sequences_count (\d+)/m.exec(text)![1])).toBe(steps);
    expect(Number(/^gpt2_engine_step_sequences_bucket\{le="1"\} (\d+)/m.exec(text)![1])).toBeLessThan(steps);
    expect(Number(/^gpt2_engine_step_tokens_sum (\d+)/m.exec(text)![1])).toBe(Number(/^gpt2_engine_tokens (\d+)/m.exec(text)![1]));
  });
});

describe.skipIf(!haveFixtures)('server lifecycle: disconnects, overload, draining', () => {
  let model: Model;
  beforeAll(async () => {
    model = await slowModel();
  });
  afterAll(() => model?.dispose());

  it('a client that disconnects mid-stream stops its generation; the server stays healthy', async () => {
    const server = createServer(model, { modelName: 'slow', apiKey: KEY });
    const { url } = await server.listen(0);
    try {
      const controller = new AbortController();
      const { reader } = await startStream(url, { prompt: 'Hello', max_tokens: 1000 }, controller.signal);
      expect(server.inFlight).toBe(1);
      controller.abort();
      await reader.cancel().catch(() => {});
      await vi.waitFor(() => expect(server.inFlight).toBe(0), { timeout: 10_000, interval: 20 });
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/^gpt2_server_active_sequences 0$/m);
      expect(metrics).toMatch(/^gpt2_server_requests_total\{route="\/v1\/completions",status="499"\} 1$/m);
      // The aborted request generated far fewer than its 1000 tokens, and the server still serves.
      const r = await post(`${url}/v1/completions`, { model: 'slow', prompt: 'Hi', max_tokens: 3, temperature: 0 }, { authorization: `Bearer ${KEY}` });
      expect(r.status).toBe(200);
      expect(r.json.usage.completion_tokens).toBe(3);
    } finally {
      await server.close();
    }
  });

  it('a client that disconnects during a large embedding request cancels its queued texts', async () => {
    const server = createServer(model, { modelName: 'slow', apiKey: KEY });
    const { url } = await server.listen(0);
    try {
      // 64 texts of 1000 tokens: 32 engine steps or more.
      const input = Array.from({ length: 64 }, (_, i) => Array.from({ length: 1000 }, (_, p) => (i * 31 + p * 7) % 50000));
      const controller = new AbortController();
      const stepsBefore = model.engineStats.steps;
      const request = fetch(`${url}/v1/embeddings`, { method: 'POST', signal: controller.signal,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ model: 'slow', input }) }).catch((e: Error) => e.name);
      await vi.waitFor(() => expect(model.engineStats.steps).toBeGreaterThanOrEqual(stepsBefore + 2), { timeout: 60_000, interval: 5 });
      controller.abort();
      expect(await request).toBe('AbortError');
      await vi.waitFor(() => expect(server.inFlight).toBe(0), { timeout: 10_000, interval: 20 });
      const stepsAtAbort = model.engineStats.steps;
      const r = await post(`${url}/v1/embeddings`, { model: 'slow', input: 'after', encoding_format: 'float' }, { authorization: `Bearer ${KEY}` });
      expect(r.status).toBe(200);
      expect(model.engineStats.steps - stepsAtAbort).toBeLessThan(5); // it did not wait behind the cancelled texts
      expect(stepsAtAbort - stepsBefore).toBeLessThan(32);
    } finally {
      await server.close();
    }
  });

  it('over --max-concurrent: 429 with Retry-After; in flight again once one finishes', async () => {
    const server = createServer(model, { modelName: 'slow', apiKey: KEY, maxConcurrent: 1, retryAfterSeconds: 2 });
    const { url } = await server.listen(0);
    try {
      const controller = new AbortController();
      const { reader } = await startStream(url, { prompt: 'Hello', max_tokens: 1000 }, controller.signal);
      const r = await post(`${url}/v1/embeddings`, { model: 'slow', input: 'hi' }, { authorization: `Bearer ${KEY}` });
      expectOpenAIError(r, 429);
      expect(r.headers.get('retry-after')).toBe('2');
      expect(r.json.error.code).toBe('rate_limit_exceeded');
      controller.abort();
      await reader.cancel().catch(() => {});
      await vi.waitFor(() => expect(server.inFlight).toBe(0), { timeout: 10_000, interval: 20 });
      expect((await post(`${url}/v1/embeddings`, { model: 'slow', input: 'hi' }, { authorization: `Bearer ${KEY}` })).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('close() drains: the running completion finishes, new requests get 503 or are refused, then close resolves', async () => {
    const server = createServer(model, { modelName: 'slow', apiKey: KEY });
    const { url } = await server.listen(0);
    const { reader } = await startStream(url, { prompt: 'Hello', max_tokens: 60, temperature: 0 });
    let closed = false;
    const closing = server.close().then(() => { closed = true; });
    expect(server.draining).toBe(true);
    const health = await fetch(`${url}/health`).then((r) => r.status, () => 'refused');
    expect([503, 'refused']).toContain(health);
    const late = await post(`${url}/v1/embeddings`, { model: 'slow', input: 'hi' }, { authorization: `Bearer ${KEY}` })
      .then((r) => r.status, () => 'refused');
    expect([503, 'refused']).toContain(late);
    expect(closed).toBe(false);
    const rest = await drainReader(reader);
    expect(rest).toMatch(/"finish_reason":"(length|stop)"/);
    expect(rest.trimEnd().endsWith('data: [DONE]')).toBe(true);
    await closing;
    expect(server.inFlight).toBe(0);
  });
  it('a drain that times out stops the remaining work: a stream gets an error event, a plain request 503', async () => {
    const server = createServer(model, { modelName: 'slow', apiKey: KEY, drainTimeoutMs: 300 });
    const { url } = await server.listen(0);
    const { reader } = await startStream(url, { prompt: 'Hello', max_tokens: 1000 });
    const plain = post(`${url}/v1/completions`, { model: 'slow', prompt: 'Hi', max_tokens: 1000 }, { authorization: `Bearer ${KEY}` });
    await vi.waitFor(() => expect(server.inFlight).toBe(2), { timeout: 10_000, interval: 5 });
    await server.close();
    const rest = await drainReader(reader);
    expect(rest).toMatch(/data: \{"error":\{"message":"The server is shutting down[^"]*","type":"server_error","param":null,"code":"server_shutting_down"\}\}/);
    expect(rest).not.toMatch(/\[DONE\]/);
    const r = await plain;
    expectOpenAIError(r, 503);
    expect(r.json.error.code).toBe('server_shutting_down');
    expect(server.inFlight).toBe(0);
  });
});

describe.skipIf(!haveFixtures)('gpt2-node serve (the CLI)', () => {
  beforeAll(buildDistIfStale);

  it('usage errors exit 2 before loading a model; --help lists the flags', () => {
    for (const args of [['serve'], ['serve', '--random', 'gpt2', '--port', '70000'], ['serve', '--random', 'gpt2', '--pooling', 'max'],
      ['serve', '--random', 'gpt2', '--max-inputs', '0'], ['serve', '--random', 'gpt2', '--bogus']]) {
      const r = runCli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/^gpt2-node: /);
    }
    const h = runCli(['serve', '--help']);
    expect(h.code).toBe(0);
    for (const flag of ['--host', '--port', '--api-key', '--model-name', '--max-body-bytes', '--max-concurrent', '--drain-timeout']) {
      expect(h.stdout).toContain(flag);
    }
    expect(runCli(['--help']).stdout).toMatch(/^\s+serve\s+/m);
  });

  it('SIGTERM lets a running stream finish with [DONE], then exits 0', async () => {
    // The key from the environment (GPT2_NODE_API_KEY), as --api-key would give it.
    const child = spawn(process.execPath, [cliPath, 'serve', '--random', '{"n_layer":2}', '--port', '0', '--model-name', 'slow'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GPT2_NODE_API_KEY: KEY } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /http:\/\/[\d.]+:\d+/.exec(out);
          if (m) resolve(m[0]);
        });
        child.on('exit', () => reject(new Error(`serve exited: ${stderr}`)));
      });
      expectOpenAIError(await post(`${url}/v1/embeddings`, { model: 'slow', input: 'x' }), 401, 'no key');
      const { reader } = await startStream(url, { prompt: 'Hello', max_tokens: 60, temperature: 0 });
      child.kill('SIGTERM');
      const rest = await drainReader(reader);
      expect(rest).toMatch(/"finish_reason":"(length|stop)"/);
      expect(rest.trimEnd().endsWith('data: [DONE]')).toBe(true);
      expect(await exited, stderr).toBe(0);
      expect(stderr).toMatch(/SIGTERM: draining 1 request/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
