// The bench report's presentation: which metrics there are (label, unit, direction), the
// ratios against the baseline row, and the side-by-side table as aligned text or Markdown.
// Pure functions of the report, so they are unit-tested with fixed data.
import { metricId, type BenchSettings } from './measure.js';
import type { DType } from '../model.js';
import type { Roofline } from './roofline.js';
import type { BenchReport, BenchRow } from './run.js';

export interface MetricDef {
  id: string;
  label: string;
  /** 'speed': ratios are speed-ups (times faster: inverted for times); 'memory': size ratios. */
  kind: 'speed' | 'memory';
  /** Whether a larger value is better. */
  higherIsBetter: boolean;
  /** The value as shown (unit in the label). */
  format(v: number): string;
}

/** Speed-ups and size ratios of one row against the baseline row, per metric id. */
export interface Ratio {
  row: string;
  baseline: string;
  values: Record<string, number | null>;
}

const DTYPE_SHORT: Record<DType, string> = { float32: 'f32', bfloat16: 'bf16', float16: 'f16' };

/** 'cpu/f32', 'cuda/bf16': a row's name in tables, ratios and the chart. */
export function rowLabel(device: string, dtype: DType): string {
  return `${device}/${DTYPE_SHORT[dtype]}`;
}

/** Three significant digits at most, no exponent. */
export function formatNumber(v: number): string {
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(2);
}

export function formatRatio(r: number): string {
  return `${r >= 10 ? r.toFixed(1) : r >= 0.01 ? r.toFixed(2) : r.toPrecision(2)}x`;
}

const mib = (v: number) => formatNumber(v / 2 ** 20);

type LabelSettings = Pick<BenchSettings, 'batchSizes' | 'promptTokens' | 'prefillBatch' | 'embedTexts'>;

/** Every metric of a report with these settings, in table order. */
export function metricDefs(s: LabelSettings): MetricDef[] {
  const def = (id: string, label: string): MetricDef => {
    const k = metricKind(id);
    return { id, label, ...k, format: k.kind === 'memory' ? mib : formatNumber };
  };
  return [
    def(metricId.load, 'load (s)'),
    def(metricId.prefill, `prefill ${s.prefillBatch}x${s.promptTokens} (tok/s)`),
    ...s.batchSizes.map((b) => def(metricId.decode(b), `decode batch ${b} (tok/s)`)),
    ...s.batchSizes.map((b) => def(metricId.generate(b), `generate batch ${b}, end to end (tok/s)`)),
    ...s.batchSizes.map((b) => def(metricId.ttft(b), `time to first token, batch ${b} (ms)`)),
    def(metricId.embed, `embed ${s.embedTexts} texts (texts/s)`),
    def(metricId.peakRss, 'peak RSS (MiB)'),
    def(metricId.weights, 'weights (MiB)'),
    def(metricId.kvCache, 'KV cache (MiB)'),
    def(metricId.peakDevice, 'peak device memory (MiB)'),
  ];
}

/** The row others are compared with: cpu/f32 when it ran, else the first row that ran. */
export function baselineRow(rows: BenchRow[]): BenchRow | undefined {
  const ok = rows.filter((r) => r.status === 'ok');
  return ok.find((r) => r.device === 'cpu' && r.dtype === 'float32') ?? ok[0];
}

/** One value's ratio: a speed-up for speed metrics (times faster), row / baseline for memory. */
function ratioOf(kind: MetricDef['kind'], higherIsBetter: boolean, row: number | null | undefined, base: number | null | undefined) {
  if (row == null || base == null || !(row > 0) || !(base > 0)) return null;
  if (kind === 'memory') return row / base;
  return higherIsBetter ? row / base : base / row;
}

/** Ratios of every other successful row against the baseline, for every metric both have. */
export function computeRatios(rows: BenchRow[]): Ratio[] {
  const base = baselineRow(rows);
  if (!base) return [];
  const ids = new Set(rows.flatMap((r) => Object.keys(r.metrics)));
  return rows
    .filter((r) => r.status === 'ok' && r !== base)
    .map((r) => {
      const values: Record<string, number | null> = {};
      for (const id of ids) {
        const def = metricKind(id);
        values[id] = ratioOf(def.kind, def.higherIsBetter, r.metrics[id], base.metrics[id]);
      }
      return { row: r.label, baseline: base.label, values };
    });
}

/** Kind and direction from a metric id alone: the one place they are decided (metricDefs and computeRatios use it). */
export function metricKind(id: string): Pick<MetricDef, 'kind' | 'higherIsBetter'> {
  if (id.endsWith('_bytes')) return { kind: 'memory', higherIsBetter: false };
  return { kind: 'speed', higherIsBetter: !(id === metricId.load || id.startsWith('ttft_ms@')) };
}

/** Header and body cells of the side-by-side table (values, then one ratio column per row). */
export function tableCells(report: Pick<BenchReport, 'rows' | 'ratios' | 'settings'>): string[][] {
  const defs = metricDefs(report.settings);
  const header = ['metric', ...report.rows.map((r) => r.label), ...report.ratios.map((q) => `${q.row} vs ${q.baseline}`)];
  const cell = (r: BenchRow, d: MetricDef) => {
    if (r.status === 'failed') return 'failed';
    const v = r.metrics[d.id];
    return v == null ? 'n/a' : d.format(v);
  };
  const body = defs.map((d) => [
    d.label,
    ...report.rows.map((r) => cell(r, d)),
    ...report.ratios.map((q) => {
      const v = q.values[d.id];
      return v == null ? '-' : formatRatio(v);
    }),
  ]);
  return [header, ...body];
}

/** What was run and where: [model, sizes, machine] (joined for the table, one line each in the chart). */
export function describeRunParts(report: BenchReport): string[] {
  const m = report.model;
  const params = m.parameters ? `, ${formatNumber(m.parameters / 1e6)}M parameters` : '';
  const s = report.settings;
  const machine = report.machine;
  return [
    `${m.name} (${m.source === 'random' ? 'random weights' : 'checkpoint'}${params})`,
    `prompts of ${s.promptTokens} tokens, ${s.newTokens} new tokens; median of ${s.repeat} after ${s.warmup} warm-up`,
    `${machine.cpu} (${machine.isa}, ${s.threads ?? machine.threads} threads), node ${machine.node}, ${machine.os}, ` +
      `load average ${machine.loadAverage.start.toFixed(1)} -> ${machine.loadAverage.end.toFixed(1)}`,
  ];
}

export function describeRun(report: BenchReport): string {
  return describeRunParts(report).join('; ');
}

/** One line: a CUDA row's decode bandwidth and prefill FLOP/s, as fractions of the peaks when known. */
export function formatRoofline(label: string, r: Roofline): string {
  const pct = (f: number | null) => (f == null ? '' : ` = ${(100 * f).toFixed(1)}% of`);
  const parts: string[] = [];
  if (r.decodeGBs != null) {
    parts.push(`decode batch 1 moves ~${formatNumber(r.decodeGBs)} GB/s of weights${r.peaks ? `${pct(r.decodeBandwidthFraction)} the ${r.peaks.gbs} GB/s ceiling` : ''}`);
  }
  if (r.prefillTflops != null) {
    parts.push(`prefill reaches ${formatNumber(r.prefillTflops)} TFLOP/s${r.peaks ? `${pct(r.prefillTensorFraction)} the ${r.peaks.tflops} bf16 TFLOP/s tensor-core peak` : ''}`);
  }
  return `${label}: ${parts.join('; ')}`;
}

/** The lines after the table: skipped devices with their reasons, failed rows with their errors. */
export function notes(report: Pick<BenchReport, 'rows' | 'skipped' | 'ratios'> & { machine?: BenchReport['machine'] }): string[] {
  const lines: string[] = [];
  if (report.machine?.cuda.devices.some((d) => /cusim/.test(d.name)) && report.rows.some((r) => r.device.startsWith('cuda'))) {
    lines.push('the CUDA device is the cusim emulator: its rows check the code path, their timings say nothing about a GPU');
  }
  for (const s of report.skipped) {
    const what = s.dtype ? rowLabel(s.device, s.dtype) : s.device === 'cuda' ? 'CUDA' : s.device;
    lines.push(`no ${what} row: ${s.reason}`);
  }
  for (const r of report.rows) if (r.status === 'failed') lines.push(`${r.label} failed: ${r.error}`);
  for (const r of report.rows) if (r.roofline) lines.push(formatRoofline(r.label, r.roofline));
  if (report.ratios.length) {
    lines.push('ratios: speed-ups against the baseline (times faster; for load and time to first token, times less time); memory rows: size against the baseline');
  }
  return lines;
}

/** The table as aligned plain text, with the notes under it. */
export function formatTable(report: BenchReport): string {
  const cells = tableCells(report);
  const widths = cells[0].map((_, c) => Math.max(...cells.map((row) => row[c].length)));
  const line = (row: string[]) => row.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  ').trimEnd();
  return [describeRun(report), '', line(cells[0]), ...cells.slice(1).map(line), '', ...notes(report)].join('\n').trimEnd();
}

/** The same as Markdown (bench/results/*.md). */
export function formatMarkdown(report: BenchReport): string {
  const cells = tableCells(report);
  const row = (r: string[]) => `| ${r.join(' | ')} |`;
  const rule = `|${cells[0].map((_, c) => (c === 0 ? '---' : '---:')).join('|')}|`;
  return [
    `# gpt2-node bench, ${report.date.slice(0, 10)}`,
    '',
    describeRun(report),
    '',
    row(cells[0]),
    rule,
    ...cells.slice(1).map(row),
    '',
    ...notes(report).map((n) => `- ${n}`),
    '',
  ].join('\n');
}
