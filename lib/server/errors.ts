// HTTP errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. Every 4xx/5xx
// the server sends is one of these (the openai client reads message, type, param and code).
// sendJson writes them and every other JSON answer.
import type { ServerResponse } from 'node:http';
import { ErrorCode } from '../errors.js';

export type OpenAIErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error';

export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: OpenAIErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): HttpError =>
  new HttpError(400, message, 'invalid_request_error', param, code);

/** 503: the server is shutting down (new requests while draining, or work it stopped). */
export const shuttingDown = (message: string, headers: Record<string, string> = {}): HttpError =>
  new HttpError(503, message, 'server_error', null, 'server_shutting_down', headers);

/**
 * The HttpError to answer for any error thrown while handling a request: HttpErrors as they are;
 * the library's argument errors (TypeError / RangeError with an ERR_GPT2 code) are the client's
 * fault (400); anything else is ours (500, message kept: it is a local server).
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { message?: unknown; code?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if ((err instanceof TypeError || err instanceof RangeError) && typeof e.code === 'string' && e.code.startsWith('ERR_GPT2')) {
    return badRequest(message, null, e.code);
  }
  // Work the server itself stopped (the drain timed out, or the model was disposed).
  if (e?.code === ErrorCode.Aborted || e?.code === ErrorCode.Disposed) {
    return shuttingDown(`${message} (the server is shutting down)`);
  }
  return new HttpError(500, message, 'server_error', null, typeof e?.code === 'string' ? e.code : null);
}

/** Sends `err` as JSON unless headers are already out (then the connection is just ended). */
export function sendError(res: ServerResponse, err: HttpError, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, err.toJSON(), err.status, { ...err.headers, ...extraHeaders });
}

/** Sends `value` as a JSON response. */
export function sendJson(res: ServerResponse, value: unknown, status = 200, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), ...headers });
  res.end(json);
}
