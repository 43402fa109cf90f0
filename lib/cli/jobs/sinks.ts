// Where a job's records go: a JSONL file, an NPY file (+ ids sidecar) or stdout. The output
// file is the job's checkpoint: records arrive strictly in input order and each write holds
// whole records (lines, rows), so after a crash the file is a prefix of the full output plus
// at most one torn record, which resuming cuts off (cutToCompleteLines, whole NPY rows).
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { cutToCompleteLines } from './lines.js';
import { npyHeader, parseNpyHeader } from './npy.js';

export interface JobRecord {
  index: number;
  id?: unknown;
  hasId: boolean;
  /** The line's error (with --skip-errors): the record then has no result. */
  error?: string;
  /** Result fields of a JSONL record (generate: text, finishReason, usage). */
  fields?: Record<string, unknown>;
  /** embed: the vector (JSONL 'embedding', or an NPY row). */
  vector?: Float32Array;
}

export interface RecordSink {
  /** Appends records, in order, as whole lines / rows. */
  write(records: JobRecord[]): Promise<void>;
  close(): Promise<void>;
}

/** What a resumed output already holds. */
export interface Resumed {
  records: number;
  /** The `index` of the last complete record (to check it against the input). */
  lastIndex: number | undefined;
}

/** write(2) until every byte is out (it may write fewer for large buffers); at `position` or appended. */
function writeAll(fd: number, data: string | Uint8Array, position?: number): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  for (let off = 0; off < buf.length; ) {
    off += writeSync(fd, buf, off, buf.length - off, position === undefined ? null : position + off);
  }
}

/** A float32 vector as a JSON array: 9 significant digits, which round-trip float32 exactly. */
export function float32Json(v: Float32Array): string {
  let s = '[';
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    s += (i ? ',' : '') + (Number.isFinite(x) ? String(Number(x.toPrecision(9))) : 'null');
  }
  return `${s}]`;
}

/** The JSONL line of a record (with its '\n'). */
function recordLine(r: JobRecord): string {
  const head: Record<string, unknown> = { index: r.index };
  if (r.hasId) head.id = r.id ?? null;
  const json = JSON.stringify(r.error !== undefined ? { ...head, error: r.error } : { ...head, ...r.fields });
  if (r.error !== undefined || !r.vector) return `${json}\n`;
  return `${json.slice(0, -1)},"embedding":${float32Json(r.vector)}}\n`;
}

function lastIndexOf(line: string | undefined, path: string): number | undefined {
  if (line === undefined) return undefined;
  let index: unknown;
  try {
    index = (JSON.parse(line) as { index?: unknown }).index;
  } catch {
    index = undefined;
  }
  if (typeof index !== 'number') throw new Error(`${path}: the last complete line is not a job record (no "index"); pass --overwrite to start over`);
  return index;
}

/** Appends JSONL records to a file with one write per batch of whole lines. */
export class JsonlFileSink implements RecordSink {
  readonly #fd: number;
  private constructor(fd: number) {
    this.#fd = fd;
  }

  static open(path: string, resume: boolean): { sink: JsonlFileSink; resumed: Resumed } {
    if (resume && existsSync(path)) {
      const { lines, last } = cutToCompleteLines(path);
      return { sink: new JsonlFileSink(openSync(path, 'a')), resumed: { records: lines, lastIndex: lastIndexOf(last, path) } };
    }
    return { sink: new JsonlFileSink(openSync(path, 'w')), resumed: { records: 0, lastIndex: undefined } };
  }

  async write(records: JobRecord[]): Promise<void> {
    writeAll(this.#fd, records.map(recordLine).join(''));
  }

  async close(): Promise<void> {
    closeSync(this.#fd);
  }
}

/** JSONL records on stdout (not resumable), waiting for the pipe to drain. */
export class StdoutSink implements RecordSink {
  async write(records: JobRecord[]): Promise<void> {
    if (!process.stdout.write(records.map(recordLine).join(''))) {
      await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
    }
  }
  async close(): Promise<void> {}
}

/**
 * float32 rows in an NPY file, the header's row count rewritten after every batch, plus
 * `<path>.ids.jsonl` with {"index", "id"?, "error"?} per row. A line's error (with
 * --skip-errors) is a row of NaN.
 */
export class NpySink implements RecordSink {
  readonly #fd: number;
  readonly #idsFd: number;
  readonly #dim: number;
  readonly #headerBytes: number;
  #rows: number;

  private constructor(fd: number, idsFd: number, dim: number, rows: number) {
    this.#fd = fd;
    this.#idsFd = idsFd;
    this.#dim = dim;
    this.#headerBytes = npyHeader(0, dim).length;
    this.#rows = rows;
  }

  static idsPath(path: string): string {
    return `${path}.ids.jsonl`;
  }

  static open(path: string, dim: number, resume: boolean): { sink: NpySink; resumed: Resumed } {
    const idsPath = NpySink.idsPath(path);
    const headerBytes = npyHeader(0, dim).length;
    // A file shorter than the header was killed before it was written: nothing to keep, start over.
    if (resume && existsSync(path) && statSync(path).size >= headerBytes) {
      const fd = openSync(path, 'r+');
      try {
        const head = Buffer.alloc(4096);
        const layout = parseNpyHeader(head.subarray(0, readSync(fd, head, 0, head.length, 0)));
        if (!layout) throw new Error(`${path}: not a float32 2-D NPY file; pass --overwrite to start over`);
        if (layout.dim !== dim) throw new Error(`${path}: rows have ${layout.dim} values, the model gives ${dim}; pass --overwrite to start over`);
        if (layout.headerBytes !== headerBytes) throw new Error(`${path}: not written by gpt2-node embed; pass --overwrite to start over`);
        const rowBytes = dim * 4;
        const fullRows = Math.floor((fstatSync(fd).size - layout.headerBytes) / rowBytes);
        // Rows are written before their ids lines: keep what both hold completely.
        const ids = existsSync(idsPath) ? cutToCompleteLines(idsPath, Math.max(0, fullRows)) : { lines: 0, last: undefined };
        const rows = Math.min(Math.max(0, fullRows), ids.lines);
        ftruncateSync(fd, layout.headerBytes + rows * rowBytes);
        writeAll(fd, npyHeader(rows, dim), 0);
        const sink = new NpySink(fd, openSync(idsPath, 'a'), dim, rows);
        return { sink, resumed: { records: rows, lastIndex: lastIndexOf(ids.last, idsPath) } };
      } catch (err) {
        closeSync(fd);
        throw err;
      }
    }
    const fd = openSync(path, 'w');
    writeAll(fd, npyHeader(0, dim), 0);
    return { sink: new NpySink(fd, openSync(idsPath, 'w'), dim, 0), resumed: { records: 0, lastIndex: undefined } };
  }

  async write(records: JobRecord[]): Promise<void> {
    const dim = this.#dim;
    const rows = new Float32Array(records.length * dim);
    records.forEach((r, i) => {
      if (r.vector && r.vector.length !== dim) throw new Error(`record ${r.index}: ${r.vector.length} values, expected ${dim}`);
      if (r.vector) rows.set(r.vector, i * dim);
      else rows.fill(NaN, i * dim, (i + 1) * dim);
    });
    // Float32Array bytes are little-endian on every platform Node supports.
    writeAll(this.#fd, new Uint8Array(rows.buffer), this.#headerBytes + this.#rows * dim * 4);
    writeAll(this.#idsFd, records.map((r) => recordLine({ index: r.index, id: r.id, hasId: r.hasId, error: r.error })).join(''));
    this.#rows += records.length;
    writeAll(this.#fd, npyHeader(this.#rows, dim), 0);
  }

  async close(): Promise<void> {
    closeSync(this.#fd);
    closeSync(this.#idsFd);
  }
}
