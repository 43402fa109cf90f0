// Progress for long CLI work (downloads, JSONL jobs), always on stderr so stdout stays data.
// On a terminal: one line redrawn in place with count, rate and ETA. Otherwise (CI, pipes,
// log files): a plain line at most every `plainEveryMs`, and one at the end.
import type { WriteStream } from 'node:tty';

export interface ProgressOptions {
  /** What is counted ('records', 'B' for bytes: shown in KiB/MiB/GiB). */
  unit: string;
  label: string;
  /** Total when known; rate is shown either way, ETA only with a total. */
  total?: number | null;
  stream?: NodeJS.WritableStream;
  /** Force the plain-line form (tests) or the terminal form. Default: stream.isTTY. */
  tty?: boolean;
  plainEveryMs?: number;
  now?: () => number;
}

function formatCount(n: number, unit: string): string {
  if (unit !== 'B') return `${Math.round(n)} ${unit}`;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (x: number) => String(x).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export class Progress {
  readonly #o: Required<Omit<ProgressOptions, 'total'>> & { total: number | null };
  readonly #start: number;
  #done = 0;
  #lastDraw = -Infinity;
  #finished = false;

  constructor(opts: ProgressOptions) {
    const stream = opts.stream ?? process.stderr;
    this.#o = {
      unit: opts.unit,
      label: opts.label,
      total: opts.total ?? null,
      stream,
      tty: opts.tty ?? Boolean((stream as Partial<WriteStream>).isTTY),
      plainEveryMs: opts.plainEveryMs ?? 5000,
      now: opts.now ?? (() => performance.now()),
    };
    this.#start = this.#o.now();
  }

  /** Sets the total once it is known (e.g. after a HEAD request). */
  setTotal(total: number | null): void {
    this.#o.total = total;
  }

  /** Adds `n` to the count (or sets it with `absolute`), redrawing at most 10 times a second. */
  tick(n = 1, absolute = false): void {
    this.#done = absolute ? n : this.#done + n;
    const now = this.#o.now();
    const every = this.#o.tty ? 100 : this.#o.plainEveryMs;
    if (now - this.#lastDraw >= every) {
      this.#lastDraw = now;
      this.#draw(false);
    }
  }

  /** Final line (always printed, once). */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#draw(true);
  }

  /** The status line as drawn (exported for tests). */
  line(): string {
    const o = this.#o;
    const elapsed = Math.max((o.now() - this.#start) / 1000, 1e-9);
    const rate = this.#done / elapsed;
    const parts = [o.label];
    if (o.total !== null && o.total > 0) {
      const pct = Math.min(100, (100 * this.#done) / o.total);
      parts.push(`${formatCount(this.#done, o.unit)}/${formatCount(o.total, o.unit)} (${pct.toFixed(0)}%)`);
    } else {
      parts.push(formatCount(this.#done, o.unit));
    }
    parts.push(`${formatCount(rate, o.unit)}/s`);
    if (this.#finished) parts.push(`in ${formatDuration(elapsed)}`);
    else if (o.total !== null && rate > 0) parts.push(`ETA ${formatDuration((o.total - this.#done) / rate)}`);
    return parts.join('  ');
  }

  #draw(final: boolean): void {
    const o = this.#o;
    if (o.tty) o.stream.write(`\r\x1b[2K${this.line()}${final ? '\n' : ''}`);
    else o.stream.write(`${this.line()}\n`);
  }
}
