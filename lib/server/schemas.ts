// Request-body schemas (ajv, compiled once at module load). A failed check becomes a 400 naming
// the field in OpenAI's style: `param` is the top-level field, the message says what was expected.
// Unknown top-level fields are refused (OpenAI's "Unrecognized request argument supplied").
// Ranges that depend on the model or the server's limits are checked in openai.ts.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { badRequest, type HttpError } from './errors.js';

const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: 'null' }] });
const tokenIds = { type: 'array', items: { type: 'integer', minimum: 0 } };
/** input / prompt: one text, texts, one token-id array or token-id arrays. */
const textsOrTokenIds = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, tokenIds, { type: 'array', items: tokenIds }] };

const embeddingSchema = {
  type: 'object',
  required: ['model', 'input'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    input: textsOrTokenIds,
    encoding_format: nullable({ enum: ['float', 'base64'] }),
    dimensions: nullable({ type: 'integer' }),
    user: nullable({ type: 'string' }),
  },
};

const completionSchema = {
  type: 'object',
  required: ['model', 'prompt'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    prompt: textsOrTokenIds,
    max_tokens: nullable({ type: 'integer' }),
    temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
    top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
    n: nullable({ type: 'integer', minimum: 1, maximum: 128 }),
    best_of: nullable({ type: 'integer', minimum: 1, maximum: 128 }),
    stream: nullable({ type: 'boolean' }),
    stream_options: nullable({ type: 'object', additionalProperties: false, properties: { include_usage: { type: 'boolean' } } }),
    stop: nullable({ anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', maxItems: 4, items: { type: 'string', minLength: 1 } }] }),
    presence_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
    frequency_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
    logit_bias: nullable({
      type: 'object',
      propertyNames: { pattern: '^[0-9]{1,9}$' },
      additionalProperties: { type: 'number', minimum: -100, maximum: 100 },
    }),
    seed: nullable({ type: 'integer' }),
    logprobs: nullable({ type: 'integer', minimum: 0, maximum: 5 }),
    echo: nullable({ type: 'boolean' }),
    suffix: nullable({ type: 'string' }),
    user: nullable({ type: 'string' }),
  },
};

/** What each field must be, for error messages (anyOf errors alone say little). */
const TEXTS_OR_TOKEN_IDS = 'a string, an array of strings, an array of token ids (integers >= 0) or an array of token-id arrays';
const EXPECTED: Record<string, string> = {
  model: 'a string',
  input: TEXTS_OR_TOKEN_IDS,
  prompt: TEXTS_OR_TOKEN_IDS,
  encoding_format: "'float' or 'base64'",
  dimensions: 'an integer',
  user: 'a string',
  max_tokens: 'an integer',
  temperature: 'a number in [0, 2]',
  top_p: 'a number in (0, 1]',
  n: 'an integer in [1, 128]',
  best_of: 'an integer in [1, 128]',
  stream: 'a boolean',
  stream_options: "an object { include_usage: boolean }",
  stop: 'a non-empty string or an array of at most 4 non-empty strings',
  presence_penalty: 'a number in [-2, 2]',
  frequency_penalty: 'a number in [-2, 2]',
  logit_bias: 'an object mapping token ids to numbers in [-100, 100]',
  seed: 'an integer',
  logprobs: 'an integer in [0, 5]',
  echo: 'a boolean',
  suffix: 'a string',
};

export interface EmbeddingRequest {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64' | null;
  dimensions?: number | null;
  user?: string | null;
}

export interface CompletionRequest {
  model: string;
  prompt: string | string[] | number[] | number[][];
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  best_of?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  stop?: string | string[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  seed?: number | null;
  logprobs?: number | null;
  echo?: boolean | null;
  suffix?: string | null;
  user?: string | null;
}

const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const validateEmbedding = ajv.compile(embeddingSchema);
const validateCompletion = ajv.compile(completionSchema);

function toError(body: unknown, errors: ErrorObject[] | null | undefined): HttpError {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return badRequest('The request body must be a JSON object.');
  }
  const e = errors?.[0];
  if (!e) return badRequest('Invalid request body.');
  if (e.keyword === 'additionalProperties' && e.instancePath === '') {
    const name = String((e.params as { additionalProperty: string }).additionalProperty);
    return badRequest(`Unrecognized request argument supplied: ${name}`, name);
  }
  if (e.keyword === 'required' && e.instancePath === '') {
    const name = String((e.params as { missingProperty: string }).missingProperty);
    return badRequest(`Missing required parameter: '${name}'.`, name);
  }
  const segments = e.instancePath.split('/').slice(1);
  const param = segments[0] ?? '';
  const path = segments.map((s, i) => (i === 0 ? s : /^\d+$/.test(s) ? `[${s}]` : `.${s}`)).join('');
  const expected = EXPECTED[param] ?? 'valid';
  return badRequest(
    path === param ? `Invalid value for '${param}': expected ${expected}.` : `Invalid value for '${path}': ${e.message ?? 'invalid'} ('${param}' must be ${expected}).`,
    param,
  );
}

function check<T>(validate: ValidateFunction, body: unknown): T {
  if (!validate(body)) throw toError(body, validate.errors);
  return body as T;
}

export const checkEmbeddingRequest = (body: unknown): EmbeddingRequest => check<EmbeddingRequest>(validateEmbedding, body);
export const checkCompletionRequest = (body: unknown): CompletionRequest => check<CompletionRequest>(validateCompletion, body);
