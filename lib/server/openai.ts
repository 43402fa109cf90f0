// The OpenAI endpoints: a checked request body -> Model.embed / Model.generate options, and the
// results -> OpenAI's response shapes (JSON, or SSE chunks for stream: true). The cheap checks
// (counts, string lengths, token ids, max_tokens) all come before tokenization, which runs off the
// event loop (Tokenizer.encodeBatch); token caps come after it.
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Pooling } from '../embed.js';
import type { Generation, GenerationResult, GenerationToken } from '../generation.js';
import type { GenerateOptions, Model } from '../model.js';
import { badRequest, HttpError, sendJson, shuttingDown, toHttpError } from './errors.js';
import type { ServerMetrics } from './metrics.js';
import { checkCompletionRequest, checkEmbeddingRequest } from './schemas.js';

/** Per-request limits (see ServerOptions for the defaults). */
export interface RequestLimits {
  /** Texts / token-id arrays in one request's input or prompt. */
  maxInputs: number;
  /** UTF-16 characters in one text: checked before tokenizing. */
  maxInputChars: number;
  /** Prompt tokens in one request, all inputs together. */
  maxRequestTokens: number;
  /** Completions: prompts x n. */
  maxChoices: number;
}

export interface EmbeddingDefaults {
  pooling: Pooling;
  normalize: boolean;
}

/** What the endpoints need from the server, per request. */
export interface EndpointContext {
  model: Model;
  modelName: string;
  limits: RequestLimits;
  embedding: EmbeddingDefaults;
  metrics: ServerMetrics;
  /** Aborted when the client goes away (or the drain times out). */
  signal: AbortSignal;
  /** performance.now() when the request arrived. */
  startedAt: number;
}

const contextMessage = (limit: number, requested: number, detail: string, advice: string) =>
  `This model's maximum context length is ${limit} tokens, however you requested ${requested} tokens (${detail}). ${advice}`;

function checkModelName(requested: string, ctx: EndpointContext): void {
  if (requested !== ctx.modelName) {
    throw new HttpError(404, `The model '${requested.length > 100 ? requested.slice(0, 100) + '…' : requested}' does not exist (this server serves '${ctx.modelName}').`,
      'invalid_request_error', 'model', 'model_not_found');
  }
}

/**
 * input / prompt as a list of texts and token-id arrays, with the cheap caps applied: count,
 * characters per text, token ids in range and at most n_positions of them.
 */
function toItems(value: string | string[] | number[] | number[][], param: string, ctx: EndpointContext, allowEmptyText: boolean): (string | number[])[] {
  const { vocab_size: vocab, n_positions: nPositions } = ctx.model.config;
  let items: (string | number[])[];
  if (typeof value === 'string') items = [value];
  else if (value.length === 0) throw badRequest(`'${param}' must not be empty.`, param);
  else if (typeof value[0] === 'number') items = [value as number[]];
  else items = value as (string | number[])[];
  if (items.length > ctx.limits.maxInputs) {
    throw badRequest(`'${param}' has ${items.length} items; at most ${ctx.limits.maxInputs} are allowed per request.`, param);
  }
  items.forEach((item, i) => {
    const where = typeof value === 'string' || typeof value[0] === 'number' ? `'${param}'` : `'${param}[${i}]'`;
    if (typeof item === 'string') {
      if (item.length === 0 && !allowEmptyText) throw badRequest(`${where} must not be an empty string.`, param);
      if (item.length > ctx.limits.maxInputChars) {
        throw badRequest(`${where} is ${item.length} characters long; at most ${ctx.limits.maxInputChars} are allowed.`, param, 'string_above_max_length');
      }
      return;
    }
    if (item.length === 0) throw badRequest(`${where} is an empty token-id array.`, param);
    if (item.length > nPositions) {
      throw badRequest(contextMessage(nPositions, item.length, `${where}`, 'Please reduce the length of the input.'), param, 'context_length_exceeded');
    }
    for (let k = 0; k < item.length; k++) {
      if (item[k]! >= vocab) throw badRequest(`${where}: token id ${item[k]} at position ${k} is out of range (vocab size ${vocab}).`, param);
    }
  });
  return items;
}

/** Token ids per item: texts through encodeBatch (off the event loop), then the request token cap. */
async function tokenize(items: (string | number[])[], param: string, ctx: EndpointContext): Promise<Uint32Array[]> {
  const textAt: number[] = [];
  items.forEach((item, i) => {
    if (typeof item === 'string' && item.length > 0) textAt.push(i);
  });
  const ids: Uint32Array[] = items.map((item) => (typeof item === 'string' ? new Uint32Array(0) : Uint32Array.from(item)));
  if (textAt.length > 0) {
    ctx.metrics.tokenizedTexts.inc(textAt.length);
    const encoded = await ctx.model.tokenizer.encodeBatch(textAt.map((i) => items[i] as string));
    textAt.forEach((at, k) => {
      ids[at] = encoded[k]!;
    });
  }
  const total = ids.reduce((n, t) => n + t.length, 0);
  if (total > ctx.limits.maxRequestTokens) {
    throw badRequest(`'${param}' has ${total} tokens in all; at most ${ctx.limits.maxRequestTokens} are allowed per request.`, param, 'too_many_tokens');
  }
  return ids;
}

/** Why a request was aborted: the server's reason (an HttpError, e.g. the drain timed out), else the client left. */
function abortReason(signal: AbortSignal): HttpError {
  return signal.reason instanceof HttpError
    ? signal.reason
    : new HttpError(499, 'The client closed the request.', 'invalid_request_error', null, 'client_closed_request');
}

function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortReason(signal);
}

/** The server, not the client, stopped this request: it still gets an answer. */
const serverAborted = (signal: AbortSignal) => signal.aborted && signal.reason instanceof HttpError;

// ---------------------------------------------------------------------------------------------
// POST /v1/embeddings

export async function embeddings(body: unknown, ctx: EndpointContext): Promise<object> {
  const req = checkEmbeddingRequest(body);
  checkModelName(req.model, ctx);
  const nEmbd = ctx.model.config.n_embd;
  if (req.dimensions !== undefined && req.dimensions !== null && req.dimensions !== nEmbd) {
    throw badRequest(`'dimensions' must be ${nEmbd} for this model (got ${req.dimensions}); it cannot shorten embeddings.`, 'dimensions');
  }
  const items = toItems(req.input, 'input', ctx, false);
  const ids = await tokenize(items, 'input', ctx);
  const nPositions = ctx.model.config.n_positions;
  ids.forEach((t, i) => {
    if (t.length > nPositions) {
      throw badRequest(contextMessage(nPositions, t.length, `input ${i}`, 'Please reduce the length of the input.'), 'input', 'context_length_exceeded');
    }
  });
  checkAborted(ctx.signal);
  ctx.metrics.requestSequences.observe({ route: '/v1/embeddings' }, ids.length);
  ctx.metrics.activeSequences.inc(ids.length);
  let vectors: Float32Array[];
  try {
    // A client that goes away cancels its queued texts (signal).
    vectors = await ctx.model.embed(ids, { pooling: ctx.embedding.pooling, normalize: ctx.embedding.normalize, signal: ctx.signal });
  } finally {
    ctx.metrics.activeSequences.dec(ids.length);
  }
  const promptTokens = ids.reduce((n, t) => n + t.length, 0);
  ctx.metrics.promptTokens.inc({ route: '/v1/embeddings' }, promptTokens);
  const base64 = req.encoding_format === 'base64';
  return {
    object: 'list',
    data: vectors.map((v, index) => ({
      object: 'embedding',
      index,
      // base64: the float32 values' little-endian bytes, what the openai client decodes.
      embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
    })),
    model: ctx.modelName,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

// ---------------------------------------------------------------------------------------------
// POST /v1/completions

interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[] | null;
  text_offset: number[];
}

interface Choice {
  index: number;
  promptIndex: number;
  generation: Generation;
  /** Text before the completion (echo). */
  prefix: string;
}

const finishReason = (r: GenerationResult): 'stop' | 'length' => (r.finishReason === 'stop' ? 'stop' : 'length');

/** OpenAI's logprobs object for some tokens, text offsets counted from `offset`. */
function logprobsOf(tokens: GenerationToken[], model: Model, offset: number, withTop: boolean): CompletionLogprobs {
  const tok = model.tokenizer;
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: withTop ? [] : null, text_offset: [] };
  for (const t of tokens) {
    out.tokens.push(tok.decode([t.tokenId]));
    out.token_logprobs.push(t.logprob ?? 0);
    out.text_offset.push(offset);
    offset += t.text.length;
    if (withTop) {
      const top: Record<string, number> = {};
      for (const a of t.topLogprobs ?? []) top[tok.decode([a.tokenId])] ??= a.logprob;
      out.top_logprobs!.push(top);
    }
  }
  return out;
}

/** Parses and checks a completion request, tokenizes its prompts and starts every choice. */
async function startCompletion(body: unknown, ctx: EndpointContext) {
  const req = checkCompletionRequest(body);
  checkModelName(req.model, ctx);
  const { n_positions: nPositions } = ctx.model.config;
  const maxTokens = req.max_tokens ?? 16;
  if (maxTokens < 1) throw badRequest(`'max_tokens' must be at least 1 (got ${maxTokens}).`, 'max_tokens');
  if (maxTokens >= nPositions) {
    throw badRequest(contextMessage(nPositions, maxTokens, `${maxTokens} for the completion`, 'Please reduce your completion length.'),
      'max_tokens', 'context_length_exceeded');
  }
  const n = req.n ?? 1;
  if (req.best_of !== undefined && req.best_of !== null && req.best_of !== n) {
    throw badRequest(`'best_of' is not supported unless it equals 'n' (${n}).`, 'best_of');
  }
  if (req.suffix) throw badRequest("'suffix' is not supported by this model.", 'suffix');
  if (req.stream !== true && req.stream_options) throw badRequest("'stream_options' is only allowed with 'stream': true.", 'stream_options');
  if (req.seed !== undefined && req.seed !== null && !Number.isSafeInteger(req.seed)) throw badRequest("'seed' must be a safe integer.", 'seed');
  for (const id of Object.keys(req.logit_bias ?? {})) {
    if (Number(id) >= ctx.model.config.vocab_size) throw badRequest(`'logit_bias': token id ${id} is out of range (vocab size ${ctx.model.config.vocab_size}).`, 'logit_bias');
  }
  const items = toItems(req.prompt, 'prompt', ctx, true);
  if (items.length * n > ctx.limits.maxChoices) {
    throw badRequest(`${items.length} prompts x n = ${n} is ${items.length * n} choices; at most ${ctx.limits.maxChoices} are allowed per request.`, 'n');
  }
  const prompts = await tokenize(items, 'prompt', ctx);
  prompts.forEach((ids, i) => {
    const promptTokens = Math.max(1, ids.length); // '' starts from <|endoftext|>
    if (promptTokens + maxTokens > nPositions) {
      throw badRequest(contextMessage(nPositions, promptTokens + maxTokens, `${promptTokens} in your prompt${prompts.length > 1 ? ` ${i}` : ''}; ${maxTokens} for the completion`,
        'Please reduce your prompt; or completion length.'), null, 'context_length_exceeded');
    }
  });
  checkAborted(ctx.signal);
  const temperature = req.temperature ?? 1;
  const base: GenerateOptions = {
    maxNewTokens: maxTokens,
    sampler: {
      temperature,
      topK: 0, // OpenAI has no top-k
      topP: req.top_p ?? 1,
      presencePenalty: req.presence_penalty ?? 0,
      frequencyPenalty: req.frequency_penalty ?? 0,
      logitBias: Object.fromEntries(Object.entries(req.logit_bias ?? {}).map(([k, v]) => [Number(k), v])),
    },
    signal: ctx.signal,
  };
  if (req.stop) base.stop = req.stop;
  const logprobs = req.logprobs ?? null;
  if (logprobs !== null) base.logprobs = logprobs === 0 ? true : logprobs;
  const seed = req.seed ?? null;
  const choices: Choice[] = [];
  ctx.metrics.requestSequences.observe({ route: '/v1/completions' }, prompts.length * n);
  try {
    prompts.forEach((ids, i) => {
      const prefix = req.echo ? (typeof items[i] === 'string' ? (items[i] as string) : ctx.model.tokenizer.decode(ids)) : '';
      for (let j = 0; j < n; j++) {
        // One generate() per choice so that every choice streams; choice j of a seeded request uses seed + j.
        const opts: GenerateOptions = { ...base };
        if (seed !== null) opts.seed = (((seed + j) % 2 ** 32) + 2 ** 32) % 2 ** 32;
        choices.push({ index: i * n + j, promptIndex: i, generation: ctx.model.generate(ids, opts), prefix });
      }
    });
  } catch (err) {
    for (const c of choices) c.generation.abort(); // none runs without its request
    throw err;
  }
  ctx.metrics.activeSequences.inc(choices.length);
  return { req, choices, logprobs, id: `cmpl-${randomBytes(12).toString('hex')}`, created: Math.floor(Date.now() / 1000) };
}

/** The usage object: prompt tokens once per prompt, completion tokens of every choice. */
function usageOf(choices: Choice[], results: GenerationResult[]) {
  const promptTokens = new Map<number, number>();
  let completion = 0;
  choices.forEach((c, k) => {
    promptTokens.set(c.promptIndex, results[k]!.usage.promptTokens);
    completion += results[k]!.usage.completionTokens;
  });
  const prompt = [...promptTokens.values()].reduce((a, b) => a + b, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function recordUsage(ctx: EndpointContext, usage: { prompt_tokens: number }): void {
  ctx.metrics.promptTokens.inc({ route: '/v1/completions' }, usage.prompt_tokens);
}

/** A generation the server stopped (drain timeout) rather than the client: not a normal end. */
function checkNotAborted(results: GenerationResult[], ctx: EndpointContext): void {
  if (!ctx.signal.aborted && results.some((r) => r.finishReason === 'abort')) {
    throw shuttingDown('The server stopped this request (it is shutting down).');
  }
}

export async function completions(body: unknown, ctx: EndpointContext, res: ServerResponse): Promise<void> {
  const started = await startCompletion(body, ctx);
  const { req, choices, id, created } = started;
  const withTop = (started.logprobs ?? 0) > 0;
  let firstToken = true;
  // Generated tokens are counted as they come (so tokens/s includes requests still running or cut off).
  const onToken = () => {
    ctx.metrics.completionTokens.inc();
    if (!firstToken) return;
    firstToken = false;
    ctx.metrics.timeToFirstToken.observe((performance.now() - ctx.startedAt) / 1000);
  };
  // Runs one choice to its end; on any failure every other choice of the request is stopped too.
  const run = async <T>(body: () => Promise<T>): Promise<T> => {
    try {
      return await body();
    } catch (err) {
      for (const other of choices) other.generation.abort();
      throw err;
    } finally {
      ctx.metrics.activeSequences.dec(1);
    }
  };

  if (req.stream !== true) {
    const results = await Promise.all(choices.map((c) => run(async () => {
      const tokens: GenerationToken[] = [];
      for await (const t of c.generation) {
        onToken();
        if (started.logprobs !== null) tokens.push(t);
      }
      return { result: await c.generation.result(), tokens };
    })));
    checkAborted(ctx.signal);
    checkNotAborted(results.map((r) => r.result), ctx);
    const usage = usageOf(choices, results.map((r) => r.result));
    recordUsage(ctx, usage);
    const response = {
      id, object: 'text_completion', created, model: ctx.modelName,
      choices: choices.map((c, k) => ({
        text: c.prefix + results[k]!.result.text,
        index: c.index,
        logprobs: started.logprobs === null ? null : logprobsOf(results[k]!.tokens, ctx.model, c.prefix.length, withTop),
        finish_reason: finishReason(results[k]!.result),
      })),
      usage,
    };
    sendJson(res, response);
    return;
  }

  // Streaming: SSE chunks in OpenAI's shape; every choice streams as its tokens come.
  const includeUsage = req.stream_options?.include_usage === true;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  const send = (data: unknown) => writeEvent(res, JSON.stringify(data));
  const chunk = (index: number, text: string, logprobs: CompletionLogprobs | null, finish: string | null) => {
    const c: Record<string, unknown> = { id, object: 'text_completion', created, model: ctx.modelName,
      choices: [{ text, index, logprobs, finish_reason: finish }] };
    if (includeUsage) c.usage = null;
    return c;
  };
  try {
    const results = await Promise.all(choices.map((c) => run(async () => {
      let offset = 0;
      if (c.prefix) {
        await send(chunk(c.index, c.prefix, null, null));
        offset = c.prefix.length;
      }
      for await (const t of c.generation) {
        onToken();
        if (ctx.signal.aborted) continue; // let the generation finish its abort (within a step)
        if (t.text === '' && started.logprobs === null) continue; // inside a character or a possible stop string
        await send(chunk(c.index, t.text, started.logprobs === null ? null : logprobsOf([t], ctx.model, offset, withTop), null));
        offset += t.text.length;
      }
      const r = await c.generation.result();
      if (r.finishReason !== 'abort') await send(chunk(c.index, '', null, finishReason(r)));
      return r;
    })));
    if (ctx.signal.aborted && !serverAborted(ctx.signal)) return; // nobody to answer
    checkAborted(ctx.signal);
    checkNotAborted(results, ctx);
    const usage = usageOf(choices, results);
    recordUsage(ctx, usage);
    if (includeUsage) await send({ id, object: 'text_completion', created, model: ctx.modelName, choices: [], usage });
    await writeEvent(res, '[DONE]');
    res.end();
  } catch (err) {
    // Headers are out: the error goes as an event (the openai client throws it as an APIError).
    await writeEvent(res, JSON.stringify((serverAborted(ctx.signal) ? abortReason(ctx.signal) : toHttpError(err)).toJSON()));
    res.end();
  }
}

/** Writes one SSE event; waits for the socket to drain when its buffer is full. */
async function writeEvent(res: ServerResponse, data: string): Promise<void> {
  if (res.destroyed || res.writableEnded) return;
  if (res.write(`data: ${data}\n\n`)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
