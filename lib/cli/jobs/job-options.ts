// The command-line side of JSONL jobs, shared by `embed` and `generate`: --in/--out and
// friends, the one-text input (argument or stdin), and the model settings a resumed job
// must match.
import { extname, resolve } from 'node:path';
import { isLocalModelDir } from '../../hub/index.js';
import { UsageError, type CommandContext, type OptionSpec } from '../command.js';
import { commonHelp } from '../command.js';
import { intOption, modelHelp, modelOptions } from '../model-options.js';
import { checkJobPaths, runJob, type OpenJob, type OutputFormat, type RunJobOptions } from './job.js';

const jobOptions: OptionSpec = {
  in: { type: 'string', short: 'i' },
  out: { type: 'string', short: 'o' },
  format: { type: 'string' },
  field: { type: 'string' },
  concurrency: { type: 'string' },
  'skip-errors': { type: 'boolean', default: false },
  resume: { type: 'boolean', default: false },
  overwrite: { type: 'boolean', default: false },
};

const jobHelp = `JSONL jobs:
  -i, --in <file.jsonl>     one record per line (- for stdin): a JSON string, or an object with a text
                            field and an optional "id" (blank lines are skipped)
  -o, --out <file>          results in input order (default: JSONL on stdout)
  --format <jsonl|npy>      output format (default: from --out's extension; npy: embed only)
  --field <name>            the text field of object lines
  --concurrency <n>         records in the model at once (default 64)
  --skip-errors             write an {"index","error"} record for a bad line and go on
                            (default: stop with exit 1 naming the line)
  --resume                  continue an interrupted job: keeps the complete records in --out,
                            cuts a torn last one, and appends the rest (same --in and options)
  --overwrite               replace an existing --out
  With --out, --json prints a summary on stdout at the end:
  {"out", "resumed", "written", "errors", "seconds", "interrupted"}`;

/** The options of a model command that also runs jobs (embed, generate). */
export const modelJobOptions: OptionSpec = { ...modelOptions, ...jobOptions };

/** The end of such a command's help: job, model and common options. */
export function modelJobHelp(fieldDefault: string): string {
  return `${jobHelp}
  (--field default: ${fieldDefault})

Model:
${modelHelp}

${commonHelp}`;
}

export interface JobArgs {
  inPath: string;
  outPath: string | undefined;
  format: OutputFormat;
  fields: string[] | undefined;
  concurrency: number;
  skipErrors: boolean;
  resume: boolean;
  overwrite: boolean;
}

/** The job flags, or null when there is no --in (one text). `formats` are the allowed outputs. */
export function jobArgsFrom(ctx: CommandContext, formats: readonly OutputFormat[]): JobArgs | null {
  const v = ctx.values;
  const inPath = v.in as string | undefined;
  if (inPath === undefined) {
    for (const flag of ['out', 'format', 'field', 'concurrency'] as const) {
      if (v[flag] !== undefined) throw new UsageError(`--${flag} needs --in <file.jsonl>`);
    }
    for (const flag of ['skip-errors', 'resume', 'overwrite'] as const) {
      if (v[flag] === true) throw new UsageError(`--${flag} needs --in <file.jsonl>`);
    }
    return null;
  }
  if (ctx.positionals.length > 0) throw new UsageError('give a text argument or --in <file.jsonl>, not both');
  const outPath = v.out as string | undefined;
  const format = (v.format as string | undefined) ?? (outPath !== undefined && extname(outPath).toLowerCase() === '.npy' ? 'npy' : 'jsonl');
  if (!(formats as readonly string[]).includes(format)) {
    throw new UsageError(`--format must be ${formats.join(' or ')} (got '${format}')`);
  }
  const args: JobArgs = {
    inPath,
    outPath,
    format: format as OutputFormat,
    fields: v.field === undefined ? undefined : [v.field as string],
    concurrency: intOption(v, 'concurrency', 1) ?? 64,
    skipErrors: v['skip-errors'] === true,
    resume: v.resume === true,
    overwrite: v.overwrite === true,
  };
  checkJobPaths(args); // before the model loads
  return args;
}

/** The model options that change results (a resumed job must use the same ones). */
export function modelSettingsFrom(values: CommandContext['values']): Record<string, unknown> {
  const model = values.model as string | undefined;
  // A folder by its absolute path, so a resume from another directory matches.
  return { model: model !== undefined && isLocalModelDir(model) ? resolve(model) : model, random: values.random, seed: values.seed, dtype: values.dtype };
}

/** The one text of a command: its argument, else all of stdin (one trailing newline dropped). */
export async function textArgument(ctx: CommandContext, what: string, orJob = true): Promise<string> {
  if (ctx.positionals.length > 0) return ctx.positionals[0]!;
  if (process.stdin.isTTY) throw new UsageError(`give the ${what} as an argument${orJob ? ', on stdin, or --in <file.jsonl>' : ' or on stdin'}`);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Runs a job for a command: with --json and --out, a summary on stdout. Resolves with the exit code. */
export async function runJobCommand(ctx: CommandContext, job: OpenJob, o: RunJobOptions): Promise<number> {
  const summary = await runJob(job, o);
  if (ctx.json && summary.out !== undefined) {
    const { exitCode, ...rest } = summary;
    ctx.out(JSON.stringify({ ...rest, interrupted: exitCode === 130 }));
  }
  return summary.exitCode;
}
