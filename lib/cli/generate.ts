// `gpt2-node generate`: one prompt streamed to stdout, or a JSONL job of prompts (resumable).
import type { GenerationResult } from '../generation.js';
import type { GenerateOptions, Model } from '../model.js';
import type { SamplerOptions } from '../sampler.js';
import { optionErrorsAsUsage, UsageError, type CliCommand, type CommandContext } from './command.js';
import { Interrupted, openJob } from './jobs/job.js';
import { jobArgsFrom, modelJobHelp, modelJobOptions, modelSettingsFrom, runJobCommand, textArgument } from './jobs/job-options.js';
import { intOption, loadModelFrom, numberOption } from './model-options.js';

/** The generate options of the command line (without seed and signal, which are per request). */
function generateOptionsFrom(values: CommandContext['values']): GenerateOptions {
  const o: GenerateOptions = {};
  const maxTokens = intOption(values, 'max-tokens', 1);
  if (maxTokens !== undefined) o.maxNewTokens = maxTokens;
  const temperature = numberOption(values, 'temperature', 0) ?? 0;
  const topK = intOption(values, 'top-k', 0);
  const topP = numberOption(values, 'top-p', 0, 1);
  if (temperature === 0 && (topK !== undefined || topP !== undefined)) {
    throw new UsageError('--top-k and --top-p apply to sampling: give --temperature > 0 too (0, the default, is greedy)');
  }
  const sampler: SamplerOptions = { temperature };
  if (topK !== undefined) sampler.topK = topK;
  if (topP !== undefined) sampler.topP = topP;
  o.sampler = sampler;
  const stop = values.stop as string[] | undefined;
  if (stop?.length) {
    const empty = stop.findIndex((s) => s.length === 0);
    if (empty !== -1) throw new UsageError('--stop must not be empty');
    o.stop = stop;
  }
  const n = intOption(values, 'n', 1);
  if (n !== undefined) o.numReturnSequences = n;
  if (values['ignore-eos'] === true) o.ignoreEos = true;
  if (values.truncate !== undefined) o.truncate = values.truncate as GenerateOptions['truncate'];
  return o;
}

/** Bad options (e.g. --max-tokens beyond n_positions) are usage errors, found before any work. */
async function checkGenerateOptions(model: Model, opts: GenerateOptions): Promise<void> {
  const stopAtOnce = new AbortController();
  stopAtOnce.abort();
  await optionErrorsAsUsage(() => model.generate([0], { ...opts, seed: 0, signal: stopAtOnce.signal }).result(), /^(Model\.generate|Sampler): /);
}

const resultJson = (r: GenerationResult) => ({ ...r, tokenIds: Array.from(r.tokenIds) });

/** One prompt: the first sequence streams to stdout as it is generated. */
async function generateOne(ctx: CommandContext, model: Model, prompt: string, opts: GenerateOptions, seed: number | undefined): Promise<number> {
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.on('SIGINT', onSigint);
  try {
    const generation = model.generate(prompt, { ...opts, seed, signal: abort.signal });
    const streaming = !ctx.json && (opts.numReturnSequences ?? 1) === 1;
    if (streaming) {
      for await (const token of generation) {
        if (token.text && !process.stdout.write(token.text)) await new Promise((r) => process.stdout.once('drain', r));
      }
    }
    const results = await generation.results();
    if (ctx.json) ctx.out(JSON.stringify(results.length === 1 ? resultJson(results[0]!) : results.map(resultJson)));
    else if (streaming) process.stdout.write('\n');
    else ctx.out(results.map((r) => r.text).join('\n---\n'));
    return abort.signal.aborted ? 130 : 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export const command: CliCommand = {
  name: 'generate',
  summary: 'continue a prompt (streamed), or a JSONL file of prompts (resumable)',
  help: `usage: gpt2-node generate [prompt] --model <dir|hub-id> [options]
       gpt2-node generate --in prompts.jsonl --out results.jsonl --model ... [--resume]

One prompt (the argument, or stdin) streams its continuation to stdout; --json prints the
result ({"text", "tokenIds", "finishReason", "usage"}). A JSONL job writes one record per
input line, in input order: {"index": <0-based line>, "id": <input id>, "text",
"finishReason", "usage"} (with -n > 1, also "choices": [{"text", "finishReason"}]).

Generation:
  --max-tokens <n>          new tokens at most (default 20)
  --temperature <t>         0 = greedy (default); > 0 samples
  --top-k <k>               sample among the k most likely tokens (default 50; 0 = all)
  --top-p <p>               nucleus sampling mass in (0, 1] (default 1)
  --seed <n>                sampling seed (also the seed of --random weights); a job uses
                            seed + line index per record, so a resumed job samples the same
  --stop <text>             stop at this text (repeatable); it is not included
  -n <n>                    sequences per prompt (default 1)
  --ignore-eos              do not stop at <|endoftext|>
  --truncate start          drop a long prompt's oldest tokens (default: an error)

${modelJobHelp('prompt, else text')}`,
  options: {
    ...modelJobOptions,
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    stop: { type: 'string', multiple: true },
    n: { type: 'string', short: 'n' },
    'ignore-eos': { type: 'boolean', default: false },
    truncate: { type: 'string' },
  },
  positionals: { min: 0, max: 1 },
  async run(ctx) {
    const opts = generateOptionsFrom(ctx.values);
    const job = jobArgsFrom(ctx, ['jsonl']);
    const seed = intOption(ctx.values, 'seed');
    const prompt = job ? undefined : await textArgument(ctx, 'prompt');
    const model = await loadModelFrom(ctx.values);
    try {
      await checkGenerateOptions(model, opts);
      if (!job) return await generateOne(ctx, model, prompt!, opts, seed);
      const opened = openJob({
        command: 'generate', inPath: job.inPath, outPath: job.outPath, format: job.format,
        settings: { ...modelSettingsFrom(ctx.values), ...opts, field: job.fields },
        // Without --seed, a random base seed, kept in the job file so a resumed job goes on with it.
        state: { seed: seed ?? Math.floor(Math.random() * 2 ** 31) },
        resume: job.resume, overwrite: job.overwrite,
      });
      const baseSeed = opened.state.seed as number;
      return await runJobCommand(ctx, opened, {
        label: 'generate',
        fields: job.fields ?? ['prompt', 'text'],
        concurrency: job.concurrency,
        skipErrors: job.skipErrors,
        async process(item, signal) {
          const results = await model.generate(item.text, { ...opts, seed: baseSeed + item.index, signal }).results();
          if (signal.aborted && results.some((r) => r.finishReason === 'abort')) throw new Interrupted('interrupted');
          const [first] = results;
          const fields: Record<string, unknown> = { text: first!.text, finishReason: first!.finishReason, usage: first!.usage };
          if (results.length > 1) fields.choices = results.map((r) => ({ text: r.text, finishReason: r.finishReason }));
          return { fields };
        },
      });
    } finally {
      model.dispose();
    }
  },
};
