// gpt2-node's OpenAI-compatible HTTP server (node:http, no framework). One Model serves every
// connection: its engine batches all requests together. Each request passes the cheap checks
// first, in order (route/method, draining, auth, overload, content type, body size, UTF-8, JSON,
// schema, model name, counts and lengths), so a bad or oversized request costs microseconds and
// never reaches the tokenizer or the model. See docs/ARCHITECTURE.md "Server".
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Pooling } from '../embed.js';
import { ErrorCode, withCode } from '../errors.js';
import type { Model } from '../model.js';
import { checkOptions, describe, oneOf, optionalBoolean } from '../options.js';
import { badRequest, HttpError, sendError, sendJson, shuttingDown, toHttpError } from './errors.js';
import { ServerMetrics } from './metrics.js';
import { completions, embeddings, type EndpointContext, type RequestLimits } from './openai.js';

export interface ServerOptions {
  /** The model id clients name in requests and see in /v1/models (default 'gpt2-node'). */
  modelName?: string;
  /** Require `Authorization: Bearer <apiKey>` on /v1/* (default: no auth). */
  apiKey?: string;
  /** Request bodies larger than this get 413 without being read further (default 8 MiB). */
  maxBodyBytes?: number;
  /** Texts / token-id arrays per request (default 2048, OpenAI's). */
  maxInputs?: number;
  /** Characters per text, checked before tokenizing (default 32 x n_positions). */
  maxInputChars?: number;
  /** Prompt tokens per request, all inputs together (default 256 x n_positions). */
  maxRequestTokens?: number;
  /** Completions: prompts x n per request (default 128). */
  maxChoices?: number;
  /** Embedding and completion requests served at once; more get 429 (default 256). */
  maxConcurrent?: number;
  /** close(): how long in-flight requests may take before they are aborted (default 30000 ms). */
  drainTimeoutMs?: number;
  /** Retry-After on 429 and 503 answers (default 1 s). */
  retryAfterSeconds?: number;
  /** Embedding pooling (default 'mean'). */
  pooling?: Pooling;
  /** Unit-length embeddings, as OpenAI's are (default true). */
  normalize?: boolean;
}

const OPTION_KEYS = ['modelName', 'apiKey', 'maxBodyBytes', 'maxInputs', 'maxInputChars', 'maxRequestTokens', 'maxChoices',
  'maxConcurrent', 'drainTimeoutMs', 'retryAfterSeconds', 'pooling', 'normalize'] as const;

type Route = '/v1/embeddings' | '/v1/completions' | '/v1/models' | '/health' | '/metrics';
const ROUTES: Record<Route, 'GET' | 'POST'> = {
  '/v1/embeddings': 'POST', '/v1/completions': 'POST', '/v1/models': 'GET', '/health': 'GET', '/metrics': 'GET',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
const digest = (s: string) => createHash('sha256').update(s).digest();

interface ActiveRequest {
  controller: AbortController;
  modelWork: boolean;
}

export class Gpt2Server {
  readonly model: Model;
  readonly modelName: string;
  readonly metrics: ServerMetrics;
  /** The node:http server (for tests and embedding into an app; listen() with this class). */
  readonly http: Server;
  #limits: RequestLimits;
  #opts: Required<Omit<ServerOptions, 'apiKey' | keyof RequestLimits>>;
  #apiKeyDigest: Buffer | undefined;
  #active = new Set<ActiveRequest>();
  #modelRequests = 0;
  #draining = false;
  #closing: Promise<void> | undefined;
  #onIdle: (() => void)[] = [];
  #created = Math.floor(Date.now() / 1000);

  constructor(model: Model, options?: ServerOptions) {
    const where = 'createServer';
    const o = checkOptions(options, OPTION_KEYS, where) as ServerOptions;
    const nPositions = model.config.n_positions;
    const positive = (v: unknown, name: string, fallback: number): number => {
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
        throw withCode(new RangeError(`${where}: ${name} must be a positive integer (got ${describe(v)})`), ErrorCode.OutOfRange);
      }
      return v;
    };
    for (const key of ['modelName', 'apiKey'] as const) {
      if (o[key] !== undefined && (typeof o[key] !== 'string' || o[key].length === 0)) {
        throw withCode(new TypeError(`${where}: ${key} must be a non-empty string (got ${describe(o[key])})`), ErrorCode.InvalidArg);
      }
    }
    this.model = model;
    this.modelName = o.modelName ?? 'gpt2-node';
    this.#apiKeyDigest = o.apiKey === undefined ? undefined : digest(o.apiKey);
    this.#limits = {
      maxInputs: positive(o.maxInputs, 'maxInputs', 2048),
      maxInputChars: positive(o.maxInputChars, 'maxInputChars', 32 * nPositions),
      maxRequestTokens: positive(o.maxRequestTokens, 'maxRequestTokens', 256 * nPositions),
      maxChoices: positive(o.maxChoices, 'maxChoices', 128),
    };
    this.#opts = {
      modelName: this.modelName,
      maxBodyBytes: positive(o.maxBodyBytes, 'maxBodyBytes', 8 * 2 ** 20),
      maxConcurrent: positive(o.maxConcurrent, 'maxConcurrent', 256),
      drainTimeoutMs: positive(o.drainTimeoutMs, 'drainTimeoutMs', 30_000),
      retryAfterSeconds: positive(o.retryAfterSeconds, 'retryAfterSeconds', 1),
      pooling: o.pooling === undefined ? 'mean' : oneOf(o.pooling, ['mean', 'last', 'first'] as const, 'pooling', where),
      normalize: optionalBoolean(o.normalize, 'normalize', where) ?? true,
    };
    this.metrics = new ServerMetrics(model);
    this.http = createHttpServer({ keepAlive: true }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => sendError(res, toHttpError(err)));
    });
  }

  /** Starts listening (port 0 = any free port); resolves with the bound address. */
  listen(port = 0, host = '127.0.0.1'): Promise<{ host: string; port: number; url: string }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.http.once('error', onError);
      this.http.listen(port, host, () => {
        this.http.off('error', onError);
        resolve(this.address!);
      });
    });
  }

  /** The bound address, once listening. */
  get address(): { host: string; port: number; url: string } | undefined {
    const a = this.http.address() as AddressInfo | null;
    if (!a || typeof a === 'string') return undefined;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return { host: a.address, port: a.port, url: `http://${host}:${a.port}` };
  }

  /** Embedding and completion requests being served. */
  get inFlight(): number {
    return this.#modelRequests;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Drains: stops accepting connections, answers new requests on open ones with 503, waits for
   * in-flight requests (aborting them after drainTimeoutMs), then closes every connection.
   * Does not dispose the model. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#drain();
    return this.#closing;
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    const idle = () => new Promise<void>((resolve) => (this.#active.size === 0 ? resolve() : this.#onIdle.push(resolve)));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.#opts.drainTimeoutMs);
    });
    if (await Promise.race([idle().then(() => false), timedOut])) {
      // Generations end within one engine step; the requests answer 503 (an error event if streaming).
      const reason = shuttingDown(`The server is shutting down and stopped this request after ${this.#opts.drainTimeoutMs} ms.`);
      for (const r of this.#active) r.controller.abort(reason);
      await idle();
    }
    clearTimeout(timer);
    this.http.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startedAt = performance.now();
    const path = (req.url ?? '/').split('?')[0]!;
    const route: Route | undefined = Object.hasOwn(ROUTES, path) ? (path as Route) : path.startsWith('/v1/models/') ? '/v1/models' : undefined;
    const active: ActiveRequest = { controller: new AbortController(), modelWork: false };
    // Every choice of a completion listens on the request's signal (up to maxChoices of them).
    setMaxListeners(this.#limits.maxChoices + 8, active.controller.signal);
    this.#active.add(active);
    res.on('close', () => {
      // The client went away before the response ended: stop its work.
      if (!res.writableFinished) active.controller.abort();
      const status = res.writableFinished ? res.statusCode : 499;
      this.metrics.requests.inc({ route: route ?? 'unknown', status });
      if (route) this.metrics.latency.observe({ route }, (performance.now() - startedAt) / 1000);
    });
    try {
      await this.#route(req, res, route, path, active, startedAt);
    } catch (err) {
      if (!res.destroyed) {
        sendError(res, toHttpError(err), this.#draining ? { connection: 'close' } : {});
      }
    } finally {
      if (active.modelWork) {
        this.#modelRequests--;
        this.metrics.inFlight.dec();
      }
      this.#active.delete(active);
      if (this.#active.size === 0) for (const f of this.#onIdle.splice(0)) f();
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse, route: Route | undefined, path: string, active: ActiveRequest, startedAt: number): Promise<void> {
    const retryAfter = { 'retry-after': String(this.#opts.retryAfterSeconds) };
    if (!route) throw new HttpError(404, `Unknown request URL: ${req.method} ${path.slice(0, 200)}.`, 'invalid_request_error', null, 'unknown_url');
    const method = ROUTES[route];
    if (req.method !== method && !(method === 'GET' && req.method === 'HEAD')) {
      throw new HttpError(405, `Method ${req.method} is not allowed on ${route} (use ${method}).`, 'invalid_request_error', null, 'method_not_allowed', { allow: method });
    }
    if (route === '/health') {
      const body = JSON.stringify({ status: this.#draining ? 'draining' : 'ok' });
      res.writeHead(this.#draining ? 503 : 200, { 'content-type': 'application/json', ...(this.#draining ? { ...retryAfter, connection: 'close' } : {}) });
      res.end(body);
      return;
    }
    if (this.#draining) {
      this.metrics.rejected.inc({ reason: 'draining' });
      throw shuttingDown('The server is shutting down; retry on another instance.', { ...retryAfter, connection: 'close' });
    }
    if (route === '/metrics') {
      const text = await this.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      res.end(text);
      return;
    }
    this.#authorize(req);
    if (route === '/v1/models') {
      const card = { id: this.modelName, object: 'model', created: this.#created, owned_by: 'gpt2-node' };
      if (path === '/v1/models') return sendJson(res, { object: 'list', data: [card] });
      let id: string;
      try {
        id = decodeURIComponent(path.slice('/v1/models/'.length));
      } catch {
        throw badRequest('The model id in the URL is not valid percent-encoding.');
      }
      if (id !== this.modelName) throw new HttpError(404, `The model '${id.slice(0, 100)}' does not exist.`, 'invalid_request_error', 'model', 'model_not_found');
      return sendJson(res, card);
    }

    // POST /v1/embeddings, /v1/completions: model work, bounded.
    if (this.#modelRequests >= this.#opts.maxConcurrent) {
      this.metrics.rejected.inc({ reason: 'overload' });
      throw new HttpError(429, `The server is busy (${this.#modelRequests} requests in flight); retry after ${this.#opts.retryAfterSeconds} s.`,
        'rate_limit_error', null, 'rate_limit_exceeded', retryAfter);
    }
    active.modelWork = true;
    this.#modelRequests++;
    this.metrics.inFlight.inc();
    const body = await this.#readJson(req);
    const ctx: EndpointContext = { model: this.model, modelName: this.modelName, limits: this.#limits, metrics: this.metrics,
      embedding: { pooling: this.#opts.pooling, normalize: this.#opts.normalize }, signal: active.controller.signal, startedAt };
    if (route === '/v1/embeddings') {
      const response = await embeddings(body, ctx);
      if (!ctx.signal.aborted) sendJson(res, response);
    } else {
      await completions(body, ctx, res);
    }
  }

  #authorize(req: IncomingMessage): void {
    if (!this.#apiKeyDigest) return;
    const header = req.headers.authorization;
    const key = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header.trim())?.[1] : undefined;
    if (key === undefined) {
      throw new HttpError(401, "You didn't provide an API key. Pass it as 'Authorization: Bearer YOUR_KEY'.", 'invalid_request_error', null, 'missing_api_key');
    }
    // Compare digests: constant time, whatever the lengths.
    if (!timingSafeEqual(digest(key), this.#apiKeyDigest)) {
      throw new HttpError(401, 'Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key');
    }
  }

  /** Content type, size (declared and streamed), UTF-8, then JSON.parse: all before any schema or model work. */
  async #readJson(req: IncomingMessage): Promise<unknown> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      throw new HttpError(415, `Content-Type must be application/json (got '${type.slice(0, 100)}').`, 'invalid_request_error', null, 'unsupported_media_type');
    }
    const max = this.#opts.maxBodyBytes;
    const tooLarge = () => new HttpError(413, `The request body is larger than ${max} bytes.`, 'invalid_request_error', null, 'request_too_large',
      { connection: 'close' });
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > max) throw tooLarge();
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
      };
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          done();
          req.resume(); // discard the rest (the connection closes after the 413)
          reject(tooLarge());
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = () => {
        done();
        resolve(Buffer.concat(chunks, size));
      };
      // A client that goes away in the middle of its body: 'error' (ECONNRESET), no 'end'.
      const onError = (err: Error) => {
        done();
        reject(err);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
    });
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw badRequest('The request body is not valid UTF-8.');
    }
    try {
      return JSON.parse(text);
    } catch (err) {
      throw badRequest(`We could not parse the JSON body of your request (${(err as Error).message.slice(0, 200)}). The OpenAI API expects a JSON payload.`);
    }
  }
}

/** An OpenAI-compatible server for `model` (not listening yet: call listen()). */
export function createServer(model: Model, options?: ServerOptions): Gpt2Server {
  return new Gpt2Server(model, options);
}
