// Helpers for the server tests: raw JSON requests and the OpenAI error shape.
import { expect } from 'vitest';

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** POSTs `body` (an object is JSON-encoded, a string or bytes are sent as they are). */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  const payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: payload });
  return read(r);
}

export async function read(r: Response): Promise<RawResponse> {
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

/** An OpenAI error body: {error: {message, type, param, code}}. */
export function expectOpenAIError(r: RawResponse, status: number | '4xx', what = ''): void {
  if (status === '4xx') {
    expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
    expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBeLessThan(500);
  } else {
    expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBe(status);
  }
  expect(r.headers.get('content-type'), what).toMatch(/application\/json/);
  expect(Object.keys(r.json ?? {}), what).toEqual(['error']);
  const e = r.json.error;
  expect(typeof e.message, what).toBe('string');
  expect(e.message.length, what).toBeGreaterThan(0);
  expect(typeof e.type, what).toBe('string');
  expect('param' in e && 'code' in e, what).toBe(true);
}

/** Reads an SSE response body to its end: the data payloads in order. */
export async function readEvents(r: Response, onEvent?: (data: string) => void): Promise<string[]> {
  const events: string[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let at;
    while ((at = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      const data = event.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      events.push(data);
      onEvent?.(data);
    }
  }
  return events;
}
