// The bench's parent side: plans the rows (device x dtype, skipping what this machine cannot
// run, with the reason), runs each row in a fresh child process (child.ts) one at a time, and
// assembles the schema-versioned report (report.ts formats it).
import { fork } from 'node:child_process';
import { loadavg, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { info, type CudaInfo, type SystemInfo } from '../info.js';
import type { DType, GPT2Config } from '../model.js';
import type { RowReply, RowSpec } from './child.js';
import type { BenchSettings, Metrics } from './measure.js';
import { computeRatios, rowLabel, type Ratio } from './report.js';
import { gpuPeaks, roofline, type Roofline } from './roofline.js';

export interface RowPlan {
  device: string;
  dtype: DType;
  label: string;
}

export interface Skipped {
  device: string;
  dtype?: DType;
  reason: string;
}

export interface BenchRow extends RowPlan {
  status: 'ok' | 'failed';
  error?: string;
  /** The backend the model reported ('cpu', 'cuda:0'). */
  backend?: string;
  metrics: Metrics;
  samples: Record<string, number[]>;
  maxStepSequences?: number;
  decodeStepSequences?: Record<string, number>;
  /** CUDA rows: decode bandwidth and prefill FLOP/s against the device's peaks. */
  roofline?: Roofline;
}

export interface BenchReport {
  version: 1;
  date: string;
  machine: {
    cpu: string;
    isa: string;
    threads: number;
    node: string;
    os: string;
    /** 1-minute load average when the rows started and when they ended (other work on the machine). */
    loadAverage: { start: number; end: number };
    cuda: { available: boolean; reason: string | null; devices: { name: string; computeCapability: string; totalMemory: number }[] };
  };
  model: { name: string; source: 'random' | 'model'; config: GPT2Config | null; parameters: number | null; dtypes: DType[] };
  settings: BenchSettings & { threads: number | null; kvCacheTokens: number };
  rows: BenchRow[];
  /** Speed-ups (and memory ratios) of every other row against the baseline row. */
  ratios: Ratio[];
  skipped: Skipped[];
}

/**
 * Rows for devices x dtypes. `devices` undefined: every available device (cpu, plus cuda when
 * usable; otherwise a skipped entry with the reason). float16 is CUDA only.
 */
export function planRows(devices: string[] | undefined, dtypes: DType[], cuda: Pick<CudaInfo, 'available' | 'reason' | 'devices'>) {
  const rows: RowPlan[] = [];
  const skipped: Skipped[] = [];
  for (const device of devices ?? ['cpu', 'cuda']) {
    if (device !== 'cpu') {
      const index = device === 'cuda' ? 0 : Number(device.slice('cuda:'.length));
      if (!cuda.available) {
        skipped.push({ device, reason: cuda.reason ?? 'CUDA is not available' });
        continue;
      }
      if (index >= cuda.devices.length) {
        skipped.push({ device, reason: `no CUDA device ${index} (${cuda.devices.length} found)` });
        continue;
      }
    }
    for (const dtype of dtypes) {
      if (device === 'cpu' && dtype === 'float16') skipped.push({ device, dtype, reason: 'float16 runs on CUDA only' });
      else rows.push({ device, dtype, label: rowLabel(device, dtype) });
    }
  }
  return { rows, skipped };
}

/** Parameter count of a GPT-2 config (tied lm_head counted once). */
export function parameterCount(c: Pick<GPT2Config, 'n_layer' | 'n_embd' | 'vocab_size' | 'n_positions'> & { n_inner?: number | null }): number {
  const e = c.n_embd;
  const inner = c.n_inner ?? 4 * e;
  const block = 4 * e + (3 * e * e + 3 * e) + (e * e + e) + (e * inner + inner) + (inner * e + e);
  return c.n_layer * block + (c.vocab_size + c.n_positions) * e + 2 * e;
}

export function machineInfo(loadAtStart: number, i: SystemInfo = info()): BenchReport['machine'] {
  return {
    cpu: i.cpu.brand || 'unknown',
    isa: i.cpu.isa,
    threads: i.cpu.defaultThreads,
    node: process.version,
    os: `${process.platform}-${process.arch} ${release()}`,
    loadAverage: { start: loadAtStart, end: loadavg()[0] },
    cuda: {
      available: i.cuda.available,
      reason: i.cuda.reason,
      devices: i.cuda.devices.map((d) => ({ name: d.name, computeCapability: d.computeCapability, totalMemory: d.totalMemory })),
    },
  };
}

export interface RunOptions {
  /** --model (a folder: hub ids are resolved by the caller) or --random, --seed, --threads. */
  modelValues: Record<string, string>;
  modelName: string;
  source: 'random' | 'model';
  rows: RowPlan[];
  skipped: Skipped[];
  dtypes: DType[];
  settings: BenchSettings;
  threads?: number;
  kvCacheTokens: number;
  /** Child progress lines on stderr. */
  progress?: boolean;
  /** Seconds a row may take before its process is killed and the row fails (default: no limit). */
  rowTimeoutS?: number;
}

const childScript = fileURLToPath(new URL('./child.js', import.meta.url));

/** Runs one row in a fresh process; failures (thrown, crashed, killed) come back as the row's error. */
export function runRow(plan: RowPlan, spec: Omit<RowSpec, 'label'>, timeoutS?: number): Promise<BenchRow & { config?: GPT2Config }> {
  return new Promise((resolve) => {
    const child = fork(childScript, [], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    child.stdout?.pipe(process.stderr); // stdout of the parent is for the report
    let reply: RowReply | undefined;
    let timedOut = false;
    const timer = timeoutS === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.on('message', (m) => (reply = m as RowReply));
    const fail = (error: string) => resolve({ ...plan, status: 'failed', error, metrics: {}, samples: {} });
    child.on('error', (err) => fail(err.message));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) fail(`timed out after ${timeoutS} s (--row-timeout)`);
      else if (!reply) fail(`the row's process ended without a result (${signal ? `signal ${signal}` : `exit code ${code}`})`);
      else if (!reply.ok) fail(reply.error);
      else {
        resolve({ ...plan, status: 'ok', backend: reply.device, metrics: reply.metrics, samples: reply.samples,
          maxStepSequences: reply.maxStepSequences, decodeStepSequences: reply.decodeStepSequences, config: reply.config });
      }
    });
    child.send({ ...spec, label: plan.label } satisfies RowSpec);
  });
}

/** Runs every planned row, one at a time, and builds the report. */
export async function runBench(o: RunOptions): Promise<BenchReport> {
  const loadAtStart = loadavg()[0];
  const rows: BenchRow[] = [];
  let config: GPT2Config | null = null;
  for (const plan of o.rows) {
    const modelValues = { ...o.modelValues, device: plan.device, dtype: plan.dtype, 'kv-cache-tokens': String(o.kvCacheTokens) };
    const { config: rowConfig, ...row } = await runRow(plan, { modelValues, settings: o.settings, progress: o.progress ?? false }, o.rowTimeoutS);
    config ??= rowConfig ?? null;
    rows.push(row);
  }
  const machine = machineInfo(loadAtStart);
  for (const row of rows) {
    if (row.status !== 'ok' || !row.device.startsWith('cuda') || !config) continue;
    const name = machine.cuda.devices[Number(row.backend?.split(':')[1] ?? 0)]?.name ?? '';
    row.roofline = roofline(row.metrics, config, o.settings, gpuPeaks(name));
  }
  return {
    version: 1,
    date: new Date().toISOString(),
    machine,
    model: { name: o.modelName, source: o.source, config, parameters: config ? parameterCount(config) : null, dtypes: o.dtypes },
    settings: { ...o.settings, threads: o.threads ?? null, kvCacheTokens: o.kvCacheTokens },
    rows,
    ratios: computeRatios(rows),
    skipped: o.skipped,
  };
}
