// Byte-level line scans over files too large to read at once: counting lines (for the
// progress total), and cutting an output file back to its complete lines when a job resumes.
import { closeSync, createReadStream, ftruncateSync, openSync, readSync } from 'node:fs';

const NL = 0x0a;
const CHUNK = 1 << 20;

/** Lines with at least one byte besides '\r' (blank lines are not records). */
export async function countNonEmptyLines(path: string): Promise<number> {
  let count = 0;
  let lineLength = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(NL); nl !== -1; nl = chunk.indexOf(NL, start)) {
      lineLength += nl - start - (nl > start && chunk[nl - 1] === 0x0d ? 1 : 0);
      if (lineLength > 0) count++;
      lineLength = 0;
      start = nl + 1;
    }
    lineLength += chunk.length - start;
  }
  return count + (lineLength > 0 ? 1 : 0);
}

export interface CompleteLines {
  /** Complete ('\n'-terminated) lines kept. */
  lines: number;
  /** The last kept line, without its '\n' (undefined when none). */
  last: string | undefined;
}

/**
 * Truncates the file after its last complete line (dropping a torn last write), or after
 * `maxLines` lines when it has more. Synchronous: it runs once, before a job starts.
 */
export function cutToCompleteLines(path: string, maxLines = Infinity): CompleteLines {
  const fd = openSync(path, 'r+');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let lines = 0;
    let lastStart = 0; // byte offset where the last complete line starts
    let end = 0; // byte offset just after the last complete line kept
    let pos = 0;
    scan: while (maxLines > 0) {
      const n = readSync(fd, buf, 0, CHUNK, pos);
      if (n === 0) break;
      for (let nl = buf.indexOf(NL); nl !== -1 && nl < n; nl = buf.indexOf(NL, nl + 1)) {
        lastStart = end;
        end = pos + nl + 1;
        if (++lines >= maxLines) break scan;
      }
      pos += n;
    }
    ftruncateSync(fd, end);
    let last: string | undefined;
    if (lines > 0) {
      const lineBuf = Buffer.allocUnsafe(end - 1 - lastStart);
      readSync(fd, lineBuf, 0, lineBuf.length, lastStart);
      last = lineBuf.toString('utf8');
    }
    return { lines, last };
  } finally {
    closeSync(fd);
  }
}
