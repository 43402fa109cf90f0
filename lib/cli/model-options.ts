// The model options every model-using command shares (generate, embed, serve, bench, tokenize):
// --model <folder or hub id> or --random <preset>, plus device, dtype and threads.
import { modelDirFor, type ResolveOptions } from '../hub/index.js';
import { Model, type Device, type DType, type GPT2Config, type LoadOptions } from '../model.js';
import { UsageError, type CommandContext, type OptionSpec } from './command.js';
import { downloadProgressPrinter } from './pull.js';

export const modelOptions: OptionSpec = {
  model: { type: 'string', short: 'm' },
  random: { type: 'string' },
  seed: { type: 'string' },
  device: { type: 'string' },
  dtype: { type: 'string' },
  threads: { type: 'string' },
  'kv-cache-tokens': { type: 'string' },
};

export const modelHelp = `  -m, --model <dir|hub-id>  a model folder, or a hub id downloaded into the Hugging Face cache
  --random <preset|json>    random weights instead: gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2,
                            or a config.json-style object ('{"n_layer":2,"n_embd":64,"n_head":2}')
  --seed <n>                seed of the random weights (default 0)
  --device <d>              auto (default), cpu, cuda, cuda:N
  --dtype <t>               float32 (default), bfloat16, float16 (CUDA only)
  --threads <n>             compute threads (default: all cores)
  --kv-cache-tokens <n>     KV-cache capacity in tokens`;

/** Parses an integer option; absent gives undefined. Bad values are usage errors (exit 2). */
export function intOption(values: CommandContext['values'], name: string, min = 0): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min} (got '${String(v)}')`);
  return n;
}

/** Parses a finite number option; absent gives undefined. Bad values are usage errors (exit 2). */
export function numberOption(values: CommandContext['values'], name: string, min = -Infinity, max = Infinity): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` and <= ${max}` : ''} (got '${String(v)}')`);
  }
  return n;
}

/** The LoadOptions given on the command line. */
function loadOptionsFrom(values: CommandContext['values']): LoadOptions {
  const o: LoadOptions = {};
  if (values.device !== undefined) o.device = values.device as Device;
  if (values.dtype !== undefined) o.dtype = values.dtype as DType;
  const threads = intOption(values, 'threads', 1);
  if (threads !== undefined) o.threads = threads;
  const kv = intOption(values, 'kv-cache-tokens', 1);
  if (kv !== undefined) o.kvCacheTokens = kv;
  return o;
}

/** --random: a preset name, or a config.json-style object when it starts with '{'. */
export function randomConfigFrom(random: string): Parameters<typeof Model.random>[0] {
  if (!random.trimStart().startsWith('{')) return random as Parameters<typeof Model.random>[0];
  try {
    return JSON.parse(random) as Partial<GPT2Config>;
  } catch (err) {
    throw new UsageError(`--random: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Loads --model (folder or hub id) or --random; exactly one must be given. A hub id not yet in
 * the cache is downloaded first, with progress on stderr (as `gpt2-node pull` shows it).
 */
export async function loadModelFrom(values: CommandContext['values'], resolveOptions?: ResolveOptions): Promise<Model> {
  const model = values.model as string | undefined;
  const random = values.random as string | undefined;
  if ((model === undefined) === (random === undefined)) throw new UsageError('give exactly one of --model <dir|hub-id> or --random <preset>');
  const opts = loadOptionsFrom(values);
  if (random !== undefined) return Model.random(randomConfigFrom(random), { ...opts, seed: intOption(values, 'seed') ?? 0 });
  return Model.load(await resolveModelDir(model as string, resolveOptions), opts);
}

/**
 * The folder of --model: as given when it is a folder (or not a hub id: the caller names the
 * missing folder), else the hub id's snapshot, downloaded first with progress on stderr.
 */
export async function resolveModelDir(model: string, resolveOptions?: ResolveOptions): Promise<string> {
  return modelDirFor(model, { onProgress: downloadProgressPrinter(process.stderr), ...resolveOptions });
}
