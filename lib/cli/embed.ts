// `gpt2-node embed`: one text's vector, or a JSONL job (--in/--out, JSONL or .npy, resumable).
import type { EmbedOptions } from '../embed.js';
import type { Model } from '../model.js';
import { optionErrorsAsUsage, UsageError, type CliCommand, type CommandContext } from './command.js';
import { openJob } from './jobs/job.js';
import { jobArgsFrom, modelJobHelp, modelJobOptions, modelSettingsFrom, runJobCommand, textArgument } from './jobs/job-options.js';
import { float32Json } from './jobs/sinks.js';
import { intOption, loadModelFrom } from './model-options.js';

function embedOptionsFrom(values: CommandContext['values']): EmbedOptions {
  const o: EmbedOptions = {};
  if (values.pooling !== undefined) o.pooling = values.pooling as EmbedOptions['pooling'];
  if (values.normalize === true) o.normalize = true;
  const layer = intOption(values, 'layer', -1_000_000);
  if (layer !== undefined) o.layer = layer;
  const finalNorm = values['final-norm'] as string | undefined;
  if (finalNorm !== undefined && values['no-final-norm'] === true) throw new UsageError('give --final-norm or --no-final-norm, not both');
  if (finalNorm !== undefined) {
    if (finalNorm !== 'true' && finalNorm !== 'false') throw new UsageError(`--final-norm must be true or false (got '${finalNorm}')`);
    o.finalNorm = finalNorm === 'true';
  }
  if (values['no-final-norm'] === true) o.finalNorm = false;
  if (values.truncate !== undefined) o.truncate = values.truncate as EmbedOptions['truncate'];
  const window = values.window as string | undefined;
  if (window !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(window.trim());
    if (!m) throw new UsageError(`--window must be <size>:<stride> in tokens, e.g. 128:64 (got '${window}')`);
    o.window = { size: Number(m[1]), stride: Number(m[2]) };
  }
  return o;
}

/** Bad embed options (e.g. --layer out of range) are usage errors, found before any work. */
async function checkEmbedOptions(model: Model, opts: EmbedOptions): Promise<void> {
  await optionErrorsAsUsage(() => model.embed([[0]], opts), /^Model\.embed: /);
}

/**
 * embed(text) for a job's records: the texts started in one event-loop turn go to the model
 * as one Model.embed call (a per-text call costs a tokenizer dispatch each). A failing batch
 * is retried text by text, so only the bad record gets the error.
 */
function batchedEmbedder(model: Model, opts: EmbedOptions, signal: AbortSignal): (text: string) => Promise<Float32Array> {
  opts = { ...opts, signal }; // SIGINT drops the texts not yet run
  type Waiter = { text: string; resolve: (v: Float32Array) => void; reject: (e: unknown) => void };
  let queue: Waiter[] = [];
  const one = (w: Waiter) => model.embed([w.text], opts).then((v) => w.resolve(v[0]!), w.reject);
  const runBatch = (batch: Waiter[]) => {
    if (batch.length === 1) return void one(batch[0]!);
    model.embed(batch.map((w) => w.text), opts).then(
      (vectors) => batch.forEach((w, i) => w.resolve(vectors[i]!)),
      () => batch.forEach(one),
    );
  };
  return (text) =>
    new Promise((resolve, reject) => {
      if (queue.push({ text, resolve, reject }) === 1) {
        setImmediate(() => {
          const batch = queue;
          queue = [];
          runBatch(batch);
        });
      }
    });
}

export const command: CliCommand = {
  name: 'embed',
  summary: 'embed a text, or a JSONL file of texts (JSONL or .npy out, resumable)',
  help: `usage: gpt2-node embed [text] --model <dir|hub-id> [options]
       gpt2-node embed --in texts.jsonl --out vectors.jsonl|vectors.npy --model ... [--resume]

One text (the argument, or stdin) prints its vector as a JSON array; with --json
{"embedding": [...], "tokens": n}. A JSONL job writes one record per input line, in input
order: {"index": <0-based line>, "id": <input id>, "embedding": [...]}; or an NPY file
(float32, shape [N, n_embd]) plus <out>.npy.ids.jsonl ({"index", "id"} per row).

Embedding:
  --pooling <p>             mean (default), last, first
  --normalize               scale each vector to unit length
  --layer <n>               hidden state: 0 = embeddings, n_layer = last block; negative
                            counts from the end (default -1)
  --final-norm <bool>       apply ln_f to that layer (default: true for the last layer only)
  --no-final-norm           same as --final-norm false
  --truncate <t>            texts longer than n_positions: none (default: an error), end, start
  --window <size>:<stride>  embed long texts as overlapping windows, averaged

${modelJobHelp('text')}`,
  options: {
    ...modelJobOptions,
    pooling: { type: 'string' },
    normalize: { type: 'boolean', default: false },
    layer: { type: 'string' },
    'final-norm': { type: 'string' },
    'no-final-norm': { type: 'boolean', default: false },
    truncate: { type: 'string' },
    window: { type: 'string' },
  },
  positionals: { min: 0, max: 1 },
  async run(ctx) {
    const opts = embedOptionsFrom(ctx.values);
    const job = jobArgsFrom(ctx, ['jsonl', 'npy']);
    const text = job ? undefined : await textArgument(ctx, 'text');
    const model = await loadModelFrom(ctx.values);
    try {
      await checkEmbedOptions(model, opts);
      if (!job) {
        const [vector] = await model.embed([text!], opts);
        const json = float32Json(vector!);
        ctx.out(ctx.json ? `{"embedding":${json},"tokens":${model.tokenizer.count(text!)}}` : json);
        return 0;
      }
      const opened = openJob({
        command: 'embed', inPath: job.inPath, outPath: job.outPath, format: job.format, dim: model.config.n_embd,
        settings: { ...modelSettingsFrom(ctx.values), ...opts, field: job.fields }, state: {},
        resume: job.resume, overwrite: job.overwrite,
      });
      let embedOne: ((text: string) => Promise<Float32Array>) | undefined; // made with the job's signal
      return await runJobCommand(ctx, opened, {
        label: 'embed',
        fields: job.fields ?? ['text'],
        concurrency: job.concurrency,
        skipErrors: job.skipErrors,
        process: async (item, signal) => ({ vector: await (embedOne ??= batchedEmbedder(model, opts, signal))(item.text) }),
      });
    } finally {
      model.dispose();
    }
  },
};
