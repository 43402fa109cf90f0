// JSONL batch jobs for `embed` and `generate` (--in/--out): the input is streamed, at most
// `concurrency` records are in the model at once (the engine batches them), and results are
// written strictly in input order through a bounded reorder window. The output file is the
// checkpoint; `<out>.job.json` records the input and the options, so --resume continues the
// same job (skipping the records already written) and refuses a different one.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { basename, dirname, resolve } from 'node:path';
import { UsageError } from '../command.js';
import { Progress } from '../progress.js';
import { readJobInput, STDIN, type JobItem } from './input.js';
import { countNonEmptyLines } from './lines.js';
import { JsonlFileSink, NpySink, StdoutSink, type JobRecord, type RecordSink, type Resumed } from './sinks.js';

export type OutputFormat = 'jsonl' | 'npy';

export interface JobFile {
  command: string;
  /** stdin ('-') has no size or hash: a resumed stdin job trusts the caller to pipe the same lines. */
  input: { path: string; size: number | null; headSha256: string | null };
  format: OutputFormat;
  /** The options that shape the output (model, pooling, sampling...): must match to resume. */
  settings: Record<string, unknown>;
  /** Values chosen when the job started (e.g. generate's seed), reused on resume. */
  state: Record<string, unknown>;
}

export interface OpenJobOptions {
  command: string;
  inPath: string;
  /** undefined: JSONL on stdout (not resumable). */
  outPath: string | undefined;
  format: OutputFormat;
  /** Values per NPY row. */
  dim?: number;
  settings: Record<string, unknown>;
  state: Record<string, unknown>;
  resume: boolean;
  overwrite: boolean;
}

export interface OpenJob {
  sink: RecordSink;
  resumed: Resumed;
  state: Record<string, unknown>;
  inPath: string;
  outPath: string | undefined;
}

const HEAD_BYTES = 64 * 1024;

function jobFilePath(outPath: string): string {
  return `${outPath}.job.json`;
}

function fingerprint(path: string): JobFile['input'] {
  if (path === STDIN) return { path, size: null, headSha256: null };
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(HEAD_BYTES);
    const n = readSync(fd, head, 0, HEAD_BYTES, 0);
    return { path: resolve(path), size: fstatSync(fd).size, headSha256: createHash('sha256').update(head.subarray(0, n)).digest('hex') };
  } finally {
    closeSync(fd);
  }
}

const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));

/** Why `saved` cannot be resumed as `now` (null when it can). */
function resumeMismatch(saved: JobFile, now: Omit<JobFile, 'state'>): string | null {
  if (saved.command !== now.command) return `it is a '${saved.command}' job`;
  if (saved.format !== now.format) return `its format is ${saved.format}`;
  if (saved.input.size !== now.input.size || saved.input.headSha256 !== now.input.headSha256) {
    const was = saved.input.path === STDIN ? 'stdin' : `${saved.input.path} (${saved.input.size} bytes)`;
    return `its input was ${was}; ${now.input.path === STDIN ? 'stdin' : now.input.path} is different or has changed`;
  }
  const keys = new Set([...Object.keys(saved.settings), ...Object.keys(now.settings)]);
  const changed = [...keys].filter((k) => JSON.stringify(saved.settings[k]) !== JSON.stringify(now.settings[k]));
  if (changed.length) return `options differ: ${changed.map((k) => `${k} was ${show(saved.settings[k])}, now ${show(now.settings[k])}`).join('; ')}`;
  return null;
}

/**
 * The command-line checks of a job's paths and flags (usage errors, exit 2), cheap enough to run
 * before the model loads; openJob runs them again.
 */
export function checkJobPaths(o: Pick<OpenJobOptions, 'inPath' | 'outPath' | 'format' | 'resume' | 'overwrite'>): void {
  if (o.inPath !== STDIN && (!existsSync(o.inPath) || !statSync(o.inPath).isFile())) throw new UsageError(`--in ${o.inPath}: no such file`);
  if (o.resume && o.overwrite) throw new UsageError('give --resume or --overwrite, not both');
  if (o.outPath === undefined) {
    if (o.resume) throw new UsageError('--resume needs --out (a job on stdout cannot be resumed)');
    if (o.format === 'npy') throw new UsageError('--format npy needs --out <file.npy>');
    return;
  }
  if (resolve(o.outPath) === resolve(o.inPath)) throw new UsageError('--out must not be the --in file');
  if (!existsSync(dirname(resolve(o.outPath)))) throw new UsageError(`--out ${o.outPath}: the folder ${dirname(o.outPath)} does not exist`);
  if (existsSync(o.outPath) && !o.resume && !o.overwrite) {
    throw new UsageError(`${o.outPath} exists: pass --resume to continue that job, or --overwrite to replace it`);
  }
}

/** Opens the output (cut back to whole records when resuming) after checkJobPaths. */
export function openJob(o: OpenJobOptions): OpenJob {
  checkJobPaths(o);
  if (o.outPath === undefined) {
    return { sink: new StdoutSink(), resumed: { records: 0, lastIndex: undefined }, state: o.state, inPath: o.inPath, outPath: undefined };
  }
  const fresh: JobFile = { command: o.command, input: fingerprint(o.inPath), format: o.format, settings: o.settings, state: o.state };
  const open = (resume: boolean) =>
    o.format === 'npy' ? NpySink.open(o.outPath!, o.dim!, resume) : JsonlFileSink.open(o.outPath!, resume);
  const jobPath = jobFilePath(o.outPath);
  if (existsSync(o.outPath) && o.resume) {
    if (!existsSync(jobPath)) {
      throw new Error(`cannot resume ${o.outPath}: ${basename(jobPath)} (the job's input and options) is missing; pass --overwrite to start over`);
    }
    let saved: JobFile;
    try {
      saved = JSON.parse(readFileSync(jobPath, 'utf8')) as JobFile;
    } catch (err) {
      throw new Error(`cannot resume ${o.outPath}: ${jobPath} is not valid JSON (${(err as Error).message}); pass --overwrite to start over`);
    }
    const why = resumeMismatch(saved, fresh);
    if (why) throw new Error(`cannot resume ${o.outPath}: ${why}; run with the same --in and options, or pass --overwrite to start over`);
    const { sink, resumed } = open(true);
    return { sink, resumed, state: saved.state ?? {}, inPath: o.inPath, outPath: o.outPath };
  }
  // The job file first (atomically), then the output: an output never exists without one.
  writeFileSync(`${jobPath}.tmp`, `${JSON.stringify(fresh, null, 2)}\n`);
  renameSync(`${jobPath}.tmp`, jobPath);
  const { sink, resumed } = open(false);
  return { sink, resumed, state: o.state, inPath: o.inPath, outPath: o.outPath };
}

export interface RunJobOptions {
  /** Progress label ('embed'). */
  label: string;
  /** Accepted text fields of object lines, first found wins. */
  fields: readonly string[];
  /** Records in the model at once. */
  concurrency: number;
  /** Write an error record for a bad line and go on (default: stop, exit 1). */
  skipErrors: boolean;
  /** One record's result; a throw is that line's error. `signal` aborts on SIGINT. */
  process(item: JobItem, signal: AbortSignal): Promise<Pick<JobRecord, 'fields' | 'vector'>>;
  /** Progress output (tests); default stderr. */
  progressStream?: NodeJS.WritableStream;
}

interface Slot {
  item: JobItem;
  done: boolean;
  record?: JobRecord;
}

/** Thrown by a record's processing when it was cut short by SIGINT (never written). */
export class Interrupted extends Error {
  override name = 'Interrupted';
}

/** A library error about one record, in command-line terms (its text, its flags). */
function recordErrorMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg
    .replace(/\s*\n\s*/g, ' ')
    .replace(/^Model\.\w+: (item 0 )?/, (_, item: string | undefined) => (item ? 'the text ' : ''))
    .replace("pass truncate: 'end' | 'start' or window", 'pass --truncate end|start or --window <size>:<stride>')
    .replace("pass truncate: 'start'", 'pass --truncate start');
}

export interface JobSummary {
  /** 0, or 130 after SIGINT. */
  exitCode: number;
  out: string | undefined;
  /** Records in the output before this run (resumed), written by this run, and of those, error records. */
  resumed: number;
  written: number;
  errors: number;
  seconds: number;
}

/** Runs the job. Bad lines without --skip-errors throw (after the records before them are written). */
export async function runJob(job: OpenJob, o: RunJobOptions): Promise<JobSummary> {
  const started = performance.now();
  let written = 0;
  let errors = 0;
  const skip = job.resumed.records;
  if (skip > 0 && job.outPath) {
    process.stderr.write(`resuming ${job.outPath}: ${skip} records already written\n`);
  }
  const progress = new Progress({ label: o.label, unit: 'records', stream: o.progressStream });
  if (job.inPath !== STDIN) {
    void countNonEmptyLines(job.inPath).then(
      (n) => progress.setTotal(Math.max(0, n - skip)),
      () => {},
    );
  }

  const abort = new AbortController();
  setMaxListeners(Infinity, abort.signal); // one listener per record in flight
  let interrupted = false;
  let fatal: Error | undefined;
  let wakeUp: (() => void) | undefined;
  let woken = false;
  const wake = () => {
    if (wakeUp) {
      const w = wakeUp;
      wakeUp = undefined;
      w();
    } else woken = true;
  };
  const changed = () =>
    woken ? ((woken = false), Promise.resolve()) : new Promise<void>((r) => { wakeUp = r; });
  const onSigint = () => {
    if (interrupted) process.exit(130); // a second Ctrl-C: now
    interrupted = true;
    process.stderr.write('\ninterrupted: writing the finished records (Ctrl-C again to quit at once)\n');
    abort.abort();
    wake();
  };
  process.on('SIGINT', onSigint);

  const window: Slot[] = [];
  let inFlight = 0;
  // Completed records wait here until every earlier one is done: bounded, so one slow
  // record (a long generation) stalls the input instead of growing memory.
  const maxWindow = Math.max(4 * o.concurrency, 16);

  /** Writes the finished records at the head of the window, in order. */
  const flush = async () => {
    const ready: JobRecord[] = [];
    while (window.length > 0 && window[0]!.done && !fatal) {
      const r = window[0]!.record!;
      if (r.error !== undefined && (interrupted || !o.skipErrors)) {
        if (!interrupted) fatal = new Error(`${r.error} (--skip-errors writes an error record for such lines and goes on)`);
        break;
      }
      ready.push(r);
      window.shift();
    }
    if (ready.length > 0) {
      await job.sink.write(ready);
      written += ready.length;
      errors += ready.filter((r) => r.error !== undefined).length;
      progress.tick(ready.length);
    }
  };

  const start = (item: JobItem) => {
    const slot: Slot = { item, done: false };
    window.push(slot);
    const base = { index: item.index, id: item.id, hasId: item.hasId };
    if (item.error !== undefined) {
      slot.done = true;
      slot.record = { ...base, error: item.error };
      return;
    }
    inFlight++;
    o.process(item, abort.signal).then(
      (result) => { slot.record = { ...base, ...result }; },
      (err: unknown) => {
        slot.record = { ...base, error: `line ${item.line}: ${recordErrorMessage(err)}` };
      },
    ).finally(() => {
      slot.done = true;
      inFlight--;
      wake();
    });
  };

  let seen = 0;
  try {
    for await (const item of readJobInput(job.inPath, o.fields, skip)) {
      if (item.skipped) {
        if (++seen === skip && job.resumed.lastIndex !== undefined && item.index !== job.resumed.lastIndex) {
          throw new Error(`cannot resume ${job.outPath}: its last record is input line ${job.resumed.lastIndex + 1}, but record ${skip} of the input is line ${item.line}; pass --overwrite to start over`);
        }
        continue;
      }
      while (!interrupted && !fatal && (inFlight >= o.concurrency || window.length >= maxWindow)) {
        await changed();
        await flush();
      }
      if (interrupted || fatal) break;
      start(item);
      await flush();
      if (fatal) break;
    }
    if (seen < skip) {
      throw new Error(`cannot resume ${job.outPath}: it has ${skip} records but the input only ${seen}; pass --overwrite to start over`);
    }
    // Drain: everything started finishes (after SIGINT, generations end at once as 'abort').
    for (;;) {
      await flush();
      if (fatal || inFlight === 0) break; // with nothing in flight, flush wrote all it could
      await changed();
    }
    if (fatal) {
      abort.abort();
      while (inFlight > 0) await changed();
      throw fatal;
    }
  } finally {
    process.off('SIGINT', onSigint);
    progress.finish();
    await job.sink.close();
  }
  if (interrupted) {
    process.stderr.write(`stopped: the output holds every finished record; run the same command with --resume to continue\n`);
  }
  return { exitCode: interrupted ? 130 : 0, out: job.outPath, resumed: skip, written, errors, seconds: Math.round(performance.now() - started) / 1000 };
}
