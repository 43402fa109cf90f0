// The bench chart: a self-contained SVG (no scripts, fonts or styles from outside), readable in a
// browser and on GitHub. Horizontal grouped bars, one group per metric, one bar per row; bar
// length is the row's ratio against the baseline row on a log scale (speed-up for speed
// metrics, size for memory), and each bar is labelled with its measured value.
import type { BenchReport } from './run.js';
import { describeRunParts, formatRatio, metricDefs, notes, baselineRow } from './report.js';

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Tick values 1, 2, 5 x 10^k inside [lo, hi] (only the powers of 10 over more than 3 decades). */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const steps = Math.log10(hi / lo) > 3 ? [1] : [1, 2, 5];
  for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
    for (const m of steps) {
      const v = m * 10 ** k;
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

const round = (v: number) => Math.round(v * 10) / 10;

/** Splits a line at spaces into lines of at most `width` characters (longer words stay whole). */
export function wrap(line: string, width: number): string[] {
  const out: string[] = [];
  let current = '';
  for (const word of line.split(' ')) {
    if (current && current.length + 1 + word.length > width) {
      out.push(current);
      current = word;
    } else current = current ? `${current} ${word}` : word;
  }
  if (current) out.push(current);
  return out;
}

export function renderSvg(report: BenchReport): string {
  const defs = metricDefs(report.settings);
  const rows = report.rows;
  const base = baselineRow(rows);
  // ratio[metric][row]: the bar; value[metric][row]: the label.
  const ratioFor = (rowLabel: string, id: string): number | null => {
    if (base && rowLabel === base.label) return base.metrics[id] != null && (base.metrics[id] as number) > 0 ? 1 : null;
    return report.ratios.find((q) => q.row === rowLabel)?.values[id] ?? null;
  };
  const ratios = defs.flatMap((d) => rows.map((r) => ratioFor(r.label, d.id))).filter((v): v is number => v !== null);
  const lo = 10 ** Math.floor(Math.log10(Math.min(1, ...ratios) * 0.9));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(1, ...ratios) * 1.1));

  const labelW = 290, plotW = 440, valueW = 190, barH = 14, barGap = 3, groupGap = 16;
  const plotX = labelW, width = labelW + plotW + valueW;
  const x = (v: number) => plotX + (plotW * (Math.log10(v) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const groupH = rows.length * (barH + barGap) - barGap;
  const legendY = 76, plotTop = legendY + 30;
  const plotBottom = plotTop + defs.length * (groupH + groupGap);
  const noteLines = notes(report).flatMap((n) => wrap(n, 135));
  const height = plotBottom + 40 + noteLines.length * 16 + 10;

  const out: string[] = [];
  const text = (tx: number, ty: number, s: string, attrs = '') =>
    out.push(`<text x="${round(tx)}" y="${round(ty)}"${attrs ? ` ${attrs}` : ''}>${escapeXml(s)}</text>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  text(10, 22, `gpt2-node bench, ${report.date.slice(0, 10)}`, 'font-size="16" font-weight="bold"');
  describeRunParts(report).forEach((line, i) => text(10, 40 + 14 * i, line, 'fill="#555555"'));
  // Legend.
  let lx = 10;
  rows.forEach((r, i) => {
    out.push(`<rect x="${lx}" y="${legendY}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    const label = `${r.label}${r === base ? ' (baseline)' : ''}${r.status === 'failed' ? ' (failed)' : ''}`;
    text(lx + 16, legendY + 10, label);
    lx += 16 + label.length * 7 + 18;
  });
  text(plotX, legendY + 24, `bar: ratio against ${base?.label ?? 'the baseline'} (log scale); label: measured value`, 'fill="#555555"');
  // Grid and axis.
  for (const t of logTicks(lo, hi)) {
    const tx = round(x(t));
    const strong = t === 1;
    out.push(`<line x1="${tx}" y1="${plotTop - 4}" x2="${tx}" y2="${plotBottom}" stroke="${strong ? '#333333' : '#dddddd'}"${strong ? ' stroke-dasharray="4 3"' : ''}/>`);
    text(tx, plotBottom + 14, `${Number(t.toPrecision(1))}x`, 'text-anchor="middle" fill="#555555"');
  }
  out.push(`<line x1="${plotX}" y1="${plotBottom}" x2="${plotX + plotW}" y2="${plotBottom}" stroke="#333333"/>`);
  // Groups.
  defs.forEach((d, g) => {
    const gy = plotTop + g * (groupH + groupGap);
    text(labelW - 10, gy + groupH / 2, d.label, 'text-anchor="end"');
    const hint = d.kind === 'memory' ? 'bar: size, shorter is better' : d.higherIsBetter ? 'bar: speed-up' : 'bar: speed-up (less time)';
    text(labelW - 10, gy + groupH / 2 + 13, hint, 'text-anchor="end" font-size="10" fill="#888888"');
    rows.forEach((r, i) => {
      const by = gy + i * (barH + barGap);
      const v = r.metrics[d.id];
      const q = ratioFor(r.label, d.id);
      if (r.status === 'failed' || v == null || q == null) {
        text(plotX + 4, by + barH - 3, r.status === 'failed' ? 'failed' : 'n/a', 'fill="#888888"');
        return;
      }
      const bw = Math.max(1, x(q) - plotX);
      out.push(`<rect x="${plotX}" y="${round(by)}" width="${round(bw)}" height="${barH}" fill="${COLORS[i % COLORS.length]}"><title>${escapeXml(`${r.label}: ${d.label} ${d.format(v)}, ${formatRatio(q)}`)}</title></rect>`);
      text(plotX + bw + 4, by + barH - 3, `${d.format(v)}${r === base ? '' : ` (${formatRatio(q)})`}`);
    });
  });
  noteLines.forEach((n, i) => text(10, plotBottom + 36 + i * 16, n, 'fill="#555555"'));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
