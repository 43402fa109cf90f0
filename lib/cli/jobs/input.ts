// JSONL job input, streamed line by line (never the whole file): each non-blank line is one
// record, either a JSON string or an object with a text field and an optional `id`.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** --in - reads the records from stdin. */
export const STDIN = '-';

export interface JobItem {
  /** 1-based line number (for messages). */
  line: number;
  /** 0-based line index, written into the output record. */
  index: number;
  /** The input's `id` (any JSON value) when it has one. */
  id?: unknown;
  hasId: boolean;
  text: string;
  /** Why the line is not a record (the text is then ''). */
  error?: string;
}

function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** One input line as a record; `fields` are the accepted text fields, first found wins. */
function parseJobLine(raw: string, line: number, fields: readonly string[]): JobItem {
  const item: JobItem = { line, index: line - 1, hasId: false, text: '' };
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    item.error = `line ${line}: not valid JSON (${(err as Error).message})`;
    return item;
  }
  if (typeof v === 'string') {
    item.text = v;
    return item;
  }
  const want = fields.map((f) => `'${f}'`).join(' or ');
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    item.error = `line ${line}: expected a JSON string or an object with a ${want} field (got ${describeJson(v)})`;
    return item;
  }
  const obj = v as Record<string, unknown>;
  if (Object.hasOwn(obj, 'id')) {
    item.id = obj.id;
    item.hasId = true;
  }
  const field = fields.find((f) => Object.hasOwn(obj, f));
  if (field === undefined) {
    const keys = Object.keys(obj);
    item.error = `line ${line}: no ${want} field (the object has ${keys.length ? keys.map((k) => `'${k}'`).join(', ') : 'no fields'}; see --field)`;
  } else if (typeof obj[field] !== 'string') {
    item.error = `line ${line}: field '${field}' must be a string (got ${describeJson(obj[field])})`;
  } else {
    item.text = obj[field] as string;
  }
  return item;
}

/**
 * The records of a JSONL file ('-': stdin) in order. The first `skip` records (already in a resumed
 * output) are yielded unparsed, with `text` '' and only `line`/`index` set.
 */
export async function* readJobInput(path: string, fields: readonly string[], skip: number): AsyncGenerator<JobItem & { skipped: boolean }> {
  const input = path === STDIN ? process.stdin.setEncoding('utf8') : createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  let records = 0;
  try {
    for await (let raw of lines) {
      if (++line === 1 && raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1); // a UTF-8 byte order mark
      if (raw.trim() === '') continue;
      if (records++ < skip) yield { line, index: line - 1, hasId: false, text: '', skipped: true };
      else yield { ...parseJobLine(raw, line, fields), skipped: false };
    }
  } finally {
    lines.close();
  }
}
