// `gpt2-node serve`: the OpenAI-compatible server (lib/server/) on one model. Prints the bound
// address, serves until SIGTERM / SIGINT, then drains in-flight requests, disposes the model and
// exits 0.
import { basename, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import type { Pooling } from '../embed.js';
import { createServer } from '../server/server.js';
import { commonHelp, UsageError, type CliCommand } from './command.js';
import { intOption, loadModelFrom, modelHelp, modelOptions } from './model-options.js';

export const command: CliCommand = {
  name: 'serve',
  summary: 'OpenAI-compatible HTTP server: /v1/embeddings, /v1/completions, /v1/models, /health, /metrics',
  help: `usage: gpt2-node serve (--model <dir|hub-id> | --random <preset>) [options]

Serves POST /v1/embeddings, POST /v1/completions (SSE with "stream": true), GET /v1/models,
GET /health and GET /metrics (Prometheus). All requests share the model's batching engine.
SIGTERM / SIGINT stop accepting requests, let in-flight ones finish (--drain-timeout), then exit 0;
a second signal exits at once.

${modelHelp}
  --host <addr>             address to listen on (default 127.0.0.1)
  --port <n>                port (default 8080; 0 = any free port); the bound address is printed
  --api-key <key>           require 'Authorization: Bearer <key>' on /v1/* (or env GPT2_NODE_API_KEY)
  --model-name <id>         the model id of /v1/models and requests (default: the --model value,
                            or the --random preset)
  --max-body-bytes <n>      larger request bodies get 413 (default 8388608)
  --max-inputs <n>          texts / token arrays per request (default 2048)
  --max-input-chars <n>     characters per text, checked before tokenizing (default 32 x n_positions)
  --max-request-tokens <n>  prompt tokens per request, all inputs (default 256 x n_positions)
  --max-choices <n>         completions: prompts x n per request (default 128)
  --max-concurrent <n>      embedding + completion requests at once; more get 429 (default 256)
  --drain-timeout <s>       on shutdown, seconds in-flight requests may take (default 30)
  --pooling <p>             embedding pooling: mean (default), last, first
  --no-normalize            embeddings as pooled, not scaled to unit length
${commonHelp}`,
  options: {
    ...modelOptions,
    host: { type: 'string' },
    port: { type: 'string' },
    'api-key': { type: 'string' },
    'model-name': { type: 'string' },
    'max-body-bytes': { type: 'string' },
    'max-inputs': { type: 'string' },
    'max-input-chars': { type: 'string' },
    'max-request-tokens': { type: 'string' },
    'max-choices': { type: 'string' },
    'max-concurrent': { type: 'string' },
    'drain-timeout': { type: 'string' },
    pooling: { type: 'string' },
    'no-normalize': { type: 'boolean', default: false },
  },
  async run({ values, json, out }) {
    const port = intOption(values, 'port') ?? 8080;
    if (port > 65535) throw new UsageError(`--port must be at most 65535 (got ${port})`);
    const pooling = values.pooling as string | undefined;
    if (pooling !== undefined && !['mean', 'last', 'first'].includes(pooling)) {
      throw new UsageError(`--pooling must be mean, last or first (got '${pooling}')`);
    }
    const apiKey = (values['api-key'] as string | undefined) ?? (process.env.GPT2_NODE_API_KEY || undefined);
    const modelArg = values.model as string | undefined;
    // A local folder is named by its basename, a hub id as it is; --random by its preset.
    const defaultName = modelArg !== undefined ? (existsSync(modelArg) ? basename(resolve(modelArg)) : modelArg)
      : String(values.random ?? '').trimStart().startsWith('{') ? 'random' : String(values.random);
    const drainSeconds = intOption(values, 'drain-timeout', 1);
    const limits = {
      maxBodyBytes: intOption(values, 'max-body-bytes', 1),
      maxInputs: intOption(values, 'max-inputs', 1),
      maxInputChars: intOption(values, 'max-input-chars', 1),
      maxRequestTokens: intOption(values, 'max-request-tokens', 1),
      maxChoices: intOption(values, 'max-choices', 1),
      maxConcurrent: intOption(values, 'max-concurrent', 1),
      drainTimeoutMs: drainSeconds === undefined ? undefined : drainSeconds * 1000,
    };
    const model = await loadModelFrom(values);
    const server = createServer(model, {
      modelName: (values['model-name'] as string | undefined) ?? defaultName,
      ...(apiKey !== undefined ? { apiKey } : {}),
      ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)),
      ...(pooling !== undefined ? { pooling: pooling as Pooling } : {}),
      normalize: values['no-normalize'] !== true,
    });
    let address;
    try {
      address = await server.listen(port, (values.host as string | undefined) ?? '127.0.0.1');
    } catch (err) {
      model.dispose();
      throw err;
    }
    if (json) out(JSON.stringify({ url: address.url, host: address.host, port: address.port, model: server.modelName, device: model.device, dtype: model.dtype }));
    else out(`gpt2-node: serving '${server.modelName}' (${model.device}, ${model.dtype}) on ${address.url}`);
    await new Promise<void>((resolveStop) => {
      const stop = (signal: string) => {
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        if (!json) process.stderr.write(`gpt2-node: ${signal}: draining ${server.inFlight} request(s)\n`);
        server.close().then(resolveStop, resolveStop);
      };
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
    });
    model.dispose();
  },
};
