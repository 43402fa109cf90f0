// `gpt2-node bench`: the GPU-vs-CPU benchmark to run on a new machine. Each device x dtype row
// runs in its own child process (lib/bench/run.ts); this module parses the options, prints the
// side-by-side table (or JSON) and writes the JSON / SVG / Markdown files asked for.
// Exit codes: 0 every planned row ran; 1 a row failed or nothing could run (devices missing:
// the reason is printed); 2 usage error. Devices that are unavailable are skipped, not failures.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { info } from '../info.js';
import { PRESETS, type DType } from '../model.js';
import { kvCacheTokensFor, type BenchSettings } from '../bench/measure.js';
import { formatMarkdown, formatTable, notes } from '../bench/report.js';
import { planRows, runBench } from '../bench/run.js';
import { renderSvg } from '../bench/svg.js';
import { commonHelp, UsageError, type CliCommand, type CommandContext } from './command.js';
import { intOption, modelHelp, modelOptions, randomConfigFrom, resolveModelDir } from './model-options.js';

const { device: _device, ...sharedModelOptions } = modelOptions;

const DTYPES = ['float32', 'bfloat16', 'float16'] as const;

// The shared model options' help, without --device/--dtype (bench takes lists) and with bench's defaults.
const benchModelHelp = modelHelp
  .split('\n')
  .filter((l) => !/^\s+--(device|dtype) /.test(l))
  .map((l) => l.replace('seed of the random weights (default 0)', 'seed of the random weights and of the inputs (default 0)'))
  .map((l) => (/^\s+--kv-cache-tokens /.test(l) ? `${l} (default: room for the largest batch)` : l))
  .join('\n');

const QUICK: Omit<BenchSettings, 'prefillBatch' | 'seed'> = { promptTokens: 16, newTokens: 8, batchSizes: [1, 4], embedTexts: 8, repeat: 1, warmup: 1 };
const FULL: Omit<BenchSettings, 'prefillBatch' | 'seed'> = { promptTokens: 128, newTokens: 64, batchSizes: [1, 8, 32], embedTexts: 64, repeat: 3, warmup: 1 };

/** A comma-separated option: each item checked by `item` (which returns undefined when bad). */
function listOption<T>(values: CommandContext['values'], name: string, what: string, item: (s: string) => T | undefined): T[] | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const parts = String(v).split(',').map((s) => s.trim());
  const parsed = parts.map(item);
  const bad = parts.find((_, i) => parsed[i] === undefined);
  if (parts.length === 0 || bad !== undefined) throw new UsageError(`--${name}: '${bad ?? v}' is not ${what}`);
  if (new Set(parts).size !== parts.length) throw new UsageError(`--${name}: '${v}' repeats an item`);
  return parsed as T[];
}

/** n_positions of the model named by --model / --random, and a name for the report. */
function describeModel(values: CommandContext['values'], dir: string | undefined): { name: string; nPositions: number } {
  const random = values.random as string | undefined;
  if (dir !== undefined) {
    let config: { n_positions?: number };
    try {
      config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as typeof config;
    } catch (err) {
      throw new UsageError(`--model: cannot read ${join(dir, 'config.json')} (${(err as Error).message})`);
    }
    return { name: values.model === dir ? basename(dir) : String(values.model), nPositions: config.n_positions ?? 1024 };
  }
  if (random === undefined) throw new UsageError('give exactly one of --model <dir|hub-id> or --random <preset>');
  const config = randomConfigFrom(random);
  if (typeof config === 'string') {
    if (!(PRESETS as readonly string[]).includes(config)) throw new UsageError(`--random: unknown preset '${config}' (${PRESETS.join(', ')})`);
    return { name: config, nPositions: 1024 };
  }
  return { name: `random ${JSON.stringify(config)}`, nPositions: typeof config.n_positions === 'number' ? config.n_positions : 1024 };
}

function settingsFrom(values: CommandContext['values']): BenchSettings {
  const d = values.quick ? QUICK : FULL;
  const batchSizes =
    listOption(values, 'batch-sizes', 'a batch size (an integer >= 1)', (s) => (/^\d+$/.test(s) && Number(s) >= 1 ? Number(s) : undefined)) ??
    d.batchSizes;
  const newTokens = intOption(values, 'new-tokens', 2) ?? d.newTokens;
  return {
    promptTokens: intOption(values, 'prompt-tokens', 1) ?? d.promptTokens,
    newTokens,
    batchSizes,
    prefillBatch: intOption(values, 'prefill-batch', 1) ?? Math.max(...batchSizes),
    embedTexts: intOption(values, 'embed-texts', 1) ?? d.embedTexts,
    repeat: intOption(values, 'repeat', 1) ?? d.repeat,
    warmup: intOption(values, 'warmup', 0) ?? d.warmup,
    seed: intOption(values, 'seed') ?? 0,
  };
}

export const command: CliCommand = {
  name: 'bench',
  summary: 'benchmark every device and dtype side by side (tokens/s, TTFT, memory)',
  help: `usage: gpt2-node bench (--model <dir|hub-id> | --random <preset|json>) [options]

Measures, on each device x dtype (one fresh process per row): load time, prefill tokens/s,
decode tokens/s and time to first token at each batch size, embedding texts/s and peak
memory; prints them side by side with speed-ups against the cpu/f32 row. Inputs are random
token ids from --seed, so runs are comparable. Without a usable GPU the CUDA row is skipped
and the reason printed. Exit code 1 when a row failed (the others still run and are shown).

${benchModelHelp}
  --devices <list>          cpu, cuda, cuda:N, comma-separated (default: every available device)
  --dtype <list>            float32, bfloat16, float16 (CUDA only; skipped on the CPU)
                            (default float32,bfloat16)
  --batch-sizes <list>      concurrent generate() requests per decode run (default 1,8,32)
  --prompt-tokens <n>       tokens per prompt (default 128)
  --new-tokens <n>          tokens generated per request (default 64, at least 2)
  --prefill-batch <n>       prompts in the prefill forward (default: the largest batch size)
  --embed-texts <n>         texts per embed() call, lengths mixed up to --prompt-tokens (default 64)
  --warmup <n>              untimed runs of each workload first (default 1)
  --repeat <n>              timed runs of each workload; medians are reported (default 3)
  --row-timeout <s>         kill a row's process after <s> seconds and mark the row failed (default: none)
  --quick                   tiny sizes (16-token prompts, 8 new tokens, batches 1,4, 8 texts, 1 run):
                            seconds, for a first look; its figures are noisy
  --out <file>              also write the JSON report to <file>
  --svg <file>              write a bar chart (ratios against cpu/f32, log scale) to <file>
  --md <file>               write the table as Markdown to <file>
${commonHelp}`,
  options: {
    ...sharedModelOptions,
    devices: { type: 'string' },
    'batch-sizes': { type: 'string' },
    'prompt-tokens': { type: 'string' },
    'new-tokens': { type: 'string' },
    'prefill-batch': { type: 'string' },
    'embed-texts': { type: 'string' },
    warmup: { type: 'string' },
    repeat: { type: 'string' },
    'row-timeout': { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    svg: { type: 'string' },
    md: { type: 'string' },
  },
  async run({ values, json, out }) {
    const devices = listOption(values, 'devices', 'a device (cpu, cuda, cuda:N)', (s) => (/^(cpu|cuda|cuda:\d+)$/.test(s) ? s : undefined));
    const dtypes = listOption(values, 'dtype', 'a dtype (float32, bfloat16, float16)', (s) =>
      (DTYPES as readonly string[]).includes(s) ? (s as DType) : undefined,
    ) ?? ['float32', 'bfloat16'];
    const settings = settingsFrom(values);
    for (const name of ['out', 'svg', 'md']) {
      const file = values[name];
      if (file !== undefined && !existsSync(dirname(resolve(String(file))))) throw new UsageError(`--${name}: no folder ${dirname(resolve(String(file)))}`);
    }
    const threads = intOption(values, 'threads', 1);
    if (values.model !== undefined && values.random !== undefined) throw new UsageError('give exactly one of --model <dir|hub-id> or --random <preset>');
    // A hub id is downloaded once, here, not per row.
    const dir = values.model === undefined ? undefined : await resolveModelDir(String(values.model));
    const model = describeModel(values, dir);
    if (settings.promptTokens + settings.newTokens > model.nPositions) {
      throw new UsageError(`--prompt-tokens + --new-tokens (${settings.promptTokens + settings.newTokens}) is more than the model's n_positions (${model.nPositions})`);
    }
    const kvCacheTokens = intOption(values, 'kv-cache-tokens', 1) ?? kvCacheTokensFor(settings, model.nPositions);
    const plan = planRows(devices, dtypes, info().cuda);
    if (plan.rows.length === 0) {
      throw new Error(`bench: nothing to run (${notes({ rows: [], skipped: plan.skipped, ratios: [] }).join('; ')})`);
    }
    const modelValues: Record<string, string> = dir !== undefined ? { model: dir } : { random: String(values.random) };
    modelValues.seed = String(settings.seed);
    if (threads !== undefined) modelValues.threads = String(threads);
    const report = await runBench({
      modelValues, modelName: model.name, source: dir !== undefined ? 'model' : 'random', rows: plan.rows, skipped: plan.skipped,
      dtypes, settings, threads, kvCacheTokens, progress: true, rowTimeoutS: intOption(values, 'row-timeout', 1),
    });
    out(json ? JSON.stringify(report, null, 2) : formatTable(report));
    const files: [unknown, () => string][] = [
      [values.out, () => `${JSON.stringify(report, null, 2)}\n`],
      [values.svg, () => renderSvg(report)],
      [values.md, () => formatMarkdown(report)],
    ];
    for (const [file, text] of files) {
      if (file === undefined) continue;
      writeFileSync(String(file), text());
      process.stderr.write(`bench: wrote ${String(file)}\n`);
    }
    const failed = report.rows.filter((r) => r.status === 'failed');
    if (failed.length) throw new Error(`bench: ${failed.length} of ${report.rows.length} rows failed (${failed.map((r) => r.label).join(', ')})`);
  },
};
