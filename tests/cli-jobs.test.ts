// The CLI's tokenize, generate and embed commands as users run them (`node dist/cli/main.js`),
// checked against the in-process API on the same random weights: one text, JSONL jobs
// (order, ids, .npy), bad lines, and resuming after SIGKILL / a torn last write / SIGINT.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, Tokenizer } from '../lib/index.js';
import { cutToCompleteLines, countNonEmptyLines } from '../lib/cli/jobs/lines.js';
import { npyHeader, parseNpyHeader } from '../lib/cli/jobs/npy.js';
import { buildDistIfStale, cli } from './helpers/cli.js';

const tiny = { n_layer: 2, n_embd: 64, n_head: 4, n_positions: 128 };
// Slow enough (a few ms a record at concurrency 1) to be killed mid-job.
const slow = { n_layer: 4, n_embd: 256, n_head: 4, n_positions: 256 };
const modelArgs = (config: object = tiny) => ['--random', JSON.stringify(config)];

let dir: string;
let model: Model;

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', input, maxBuffer: 1 << 28 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const path = (name: string) => join(dir, name);
const readLines = (name: string) => readFileSync(path(name), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

function expectVectorsClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-6) {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(atol);
}

/** A minimal NPY v1.0 reader (float32, C order), independent of lib/cli/jobs/npy.ts. */
function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const buf = readFileSync(file);
  expect(buf.subarray(0, 6).equals(Buffer.from('\x93NUMPY', 'latin1'))).toBe(true);
  expect([buf[6], buf[7]]).toEqual([1, 0]);
  const headerEnd = 10 + buf.readUInt16LE(8);
  expect(headerEnd % 64).toBe(0);
  const header = buf.toString('latin1', 10, headerEnd);
  expect(header.endsWith('\n')).toBe(true);
  expect(header).toMatch(/'descr': '<f4'/);
  expect(header).toMatch(/'fortran_order': False/);
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  expect(buf.length - headerEnd).toBe(count * 4);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + headerEnd, buf.byteOffset + headerEnd + count * 4));
  return { shape, data };
}

/** ~`n` input lines: JSON strings, objects with ids, some long, and a unicode one. */
function mixedInput(n: number, longWords = 60): { lines: string[]; texts: string[]; ids: (string | number | undefined)[] } {
  const lines: string[] = [];
  const texts: string[] = [];
  const ids: (string | number | undefined)[] = [];
  for (let i = 0; i < n; i++) {
    const text = i % 17 === 0 ? `long ${i}: ${'the quick brown fox jumps '.repeat(longWords / 5)}` : i === 5 ? 'héllo wörld 🤖 日本語' : `text number ${i}`;
    texts.push(text);
    if (i % 3 === 0) {
      lines.push(JSON.stringify(text));
      ids.push(undefined);
    } else {
      const id = i % 2 ? `doc-${i}` : i;
      lines.push(JSON.stringify({ id, text, extra: true }));
      ids.push(id);
    }
  }
  return { lines, texts, ids };
}

beforeAll(async () => {
  buildDistIfStale();
  dir = mkdtempSync(join(tmpdir(), 'gpt2-cli-jobs-'));
  model = await Model.random(tiny, { seed: 0 });
});

afterAll(() => {
  model?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('job file helpers', () => {
  it('cutToCompleteLines keeps whole lines (or the first maxLines) and returns the last', async () => {
    const f = path('cut.txt');
    for (const [content, max, kept, last] of [
      ['', Infinity, '', undefined],
      ['torn', Infinity, '', undefined],
      ['a\nb\n', Infinity, 'a\nb\n', 'b'],
      ['a\nb\nto', Infinity, 'a\nb\n', 'b'],
      ['a\nb\nc\n', 2, 'a\nb\n', 'b'],
      ['a\nb\nc\n', 0, '', undefined],
    ] as const) {
      writeFileSync(f, content);
      expect(cutToCompleteLines(f, max)).toEqual({ lines: kept.split('\n').length - 1, last });
      expect(readFileSync(f, 'utf8')).toBe(kept);
    }
    writeFileSync(f, 'x\n\n  \r\ny\r\nz');
    expect(await countNonEmptyLines(f)).toBe(4); // the whitespace-only line counts (an estimate for ETA)
  });

  it('npyHeader: 64-byte aligned, fixed length for any row count, parsed back', () => {
    const small = npyHeader(0, 768);
    const big = npyHeader(123_456_789_012, 768);
    expect(small.length % 64).toBe(0);
    expect(big.length).toBe(small.length);
    expect(parseNpyHeader(big)).toEqual({ headerBytes: big.length, rows: 123_456_789_012, dim: 768 });
    expect(parseNpyHeader(Buffer.from('not an npy file'))).toBeNull();
  });
});

describe('gpt2-node tokenize', () => {
  const tok = Tokenizer.gpt2();
  const samples = ['Hello, world!', 'héllo wörld 🤖 日本語', '  spaces\tand\nnewlines  ', "it's <|endoftext|> 123"];

  it('--json ids equal Tokenizer.gpt2().encode, tokens decode each id, --decode round-trips', () => {
    for (const text of samples) {
      const r = run(['tokenize', '--json', text]);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      const ids = Array.from(tok.encode(text));
      expect(j.ids).toEqual(ids);
      expect(j.count).toBe(ids.length);
      expect(j.tokens).toEqual(ids.map((id) => tok.decode([id])));
      const back = run(['tokenize', '--decode', ids.join(','), '--json']);
      expect(back.code, back.stderr).toBe(0);
      expect(JSON.parse(back.stdout).text).toBe(text);
    }
  });

  it('--ids, --count, the default table, and stdin', () => {
    const ids = Array.from(tok.encode('Hello, world!'));
    expect(run(['tokenize', '--ids', 'Hello, world!']).stdout).toBe(`${ids.join(' ')}\n`);
    expect(run(['tokenize', '--count'], 'Hello, world!\n').stdout).toBe(`${ids.length}\n`); // one trailing newline dropped
    const table = run(['tokenize', 'Hello, world!']).stdout.trim().split('\n');
    expect(table).toHaveLength(ids.length);
    expect(table[0]).toMatch(/^\s*15496\s+"Hello"$/);
    expect(run(['tokenize', '--decode', '15496 11 995']).stdout).toBe('Hello, world\n');
  });
});

describe('gpt2-node generate / embed, one text', () => {
  it('generate streams the same text as Model.generate (greedy); --json has the result', async () => {
    const prompt = 'Once upon a time';
    const expected = await model.generate(prompt, { maxNewTokens: 12 }).result();
    const r = run(['generate', prompt, ...modelArgs(), '--max-tokens', '12']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${expected.text}\n`);
    const j = run(['generate', '--json', ...modelArgs(), '--max-tokens', '12'], `${prompt}\n`);
    expect(j.code, j.stderr).toBe(0);
    const res = JSON.parse(j.stdout);
    expect(res.text).toBe(expected.text);
    expect(res.tokenIds).toEqual(Array.from(expected.tokenIds));
    expect(res.finishReason).toBe(expected.finishReason);
    expect(res.usage).toEqual(expected.usage);
  });

  it('generate with --temperature and --seed is reproducible', () => {
    const args = ['generate', 'Hello', ...modelArgs(), '--max-tokens', '8', '--temperature', '1', '--top-k', '20', '--seed', '7', '--json'];
    const a = JSON.parse(run(args).stdout);
    const b = JSON.parse(run(args).stdout);
    expect(a.tokenIds).toHaveLength(8);
    expect(a.tokenIds).toEqual(b.tokenIds);
  });

  it('embed prints the vector of Model.embed; --json adds the token count', async () => {
    const text = 'The quick brown fox';
    const [expected] = await model.embed([text], { pooling: 'last', normalize: true });
    const r = run(['embed', text, ...modelArgs(), '--pooling', 'last', '--normalize']);
    expect(r.code, r.stderr).toBe(0);
    expectVectorsClose(JSON.parse(r.stdout), expected!);
    const j = JSON.parse(run(['embed', '--json', ...modelArgs(), '--layer', '1'], text).stdout);
    expectVectorsClose(j.embedding, (await model.embed([text], { layer: 1 }))[0]!);
    expect(j.tokens).toBe(Tokenizer.gpt2().count(text));
  });

  it('usage errors exit 2 with one line', () => {
    for (const args of [
      ['embed', 'x', ...modelArgs(), '--pooling', 'median'],
      ['embed', 'x', ...modelArgs(), '--layer', '9'],
      ['embed', 'x'],
      ['embed', 'x', '--out', 'y.jsonl', ...modelArgs()],
      ['embed', 'x', '--in', 'a.jsonl', ...modelArgs()],
      ['generate', 'x', ...modelArgs(), '--top-k', '5'],
      ['generate', 'x', ...modelArgs(), '--max-tokens', 'many'],
      ['generate', '--in', 'a.jsonl', '--format', 'npy', ...modelArgs()],
      ['embed', '--in', 'a.jsonl', '--concurrency', '0', ...modelArgs()],
      ['tokenize', '--decode', '1,x'],
      ['tokenize', '--ids', '--count', 'x'],
    ]) {
      const r = run(args, '');
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^gpt2-node: /);
    }
  });
});

describe('JSONL jobs', () => {
  const n = 300;
  const input = mixedInput(n);
  let expected: Float32Array[];

  beforeAll(async () => {
    writeFileSync(path('in.jsonl'), `${input.lines.slice(0, 150).join('\n')}\n\n${input.lines.slice(150).join('\n')}\n`);
    expected = await model.embed(input.texts, { truncate: 'end' });
  });

  it('embed --out x.jsonl keeps input order, line index and ids; values equal Model.embed; plain progress lines', () => {
    const r = run(['embed', '--in', 'in.jsonl', '--out', 'out.jsonl', '--truncate', 'end', ...modelArgs()]);
    expect(r.code, r.stderr).toBe(0);
    const records = readLines('out.jsonl');
    expect(records).toHaveLength(n);
    records.forEach((rec, i) => {
      expect(rec.index).toBe(i < 150 ? i : i + 1); // the blank line 151 is skipped, lines keep their index
      if (input.ids[i] === undefined) expect(rec).not.toHaveProperty('id');
      else expect(rec.id).toBe(input.ids[i]);
      expectVectorsClose(rec.embedding, expected[i]!);
    });
    // Not a terminal: plain lines (no carriage returns), the last with the full count.
    expect(r.stderr).not.toMatch(/\r/);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^embed\\s+${n} records/${n} records \\(100%\\).*records/s`));
    expect(r.stdout).toBe('');
  });

  it('embed --out x.npy writes a valid float32 [N, dim] NPY and an ids sidecar', () => {
    const r = run(['embed', '--in', 'in.jsonl', '--out', 'out.npy', '--truncate', 'end', ...modelArgs()]);
    expect(r.code, r.stderr).toBe(0);
    const { shape, data } = readNpy(path('out.npy'));
    expect(shape).toEqual([n, tiny.n_embd]);
    for (let i = 0; i < n; i++) expectVectorsClose(data.subarray(i * 64, (i + 1) * 64), expected[i]!);
    const ids = readLines('out.npy.ids.jsonl');
    expect(ids.map((x) => x.id)).toEqual(input.ids.map((id) => id));
    const py = spawnSync('python3', ['-c', 'import numpy,sys; a=numpy.load(sys.argv[1]); print(a.shape, a.dtype)', path('out.npy')], { encoding: 'utf8' });
    if (py.status === 0) expect(py.stdout.trim()).toBe(`(${n}, 64) float32`); // numpy is optional
  });

  it('--in without --out writes JSONL to stdout; --in - reads stdin', () => {
    writeFileSync(path('few.jsonl'), input.lines.slice(1, 4).join('\n'));
    const r = run(['embed', '--in', 'few.jsonl', '--truncate', 'end', ...modelArgs()]);
    expect(r.code, r.stderr).toBe(0);
    const recs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(recs.map((x) => x.id)).toEqual(input.ids.slice(1, 4));
    expectVectorsClose(recs[2].embedding, expected[3]!);
    // --in - reads stdin.
    const piped = run(['embed', '--in', '-', '--truncate', 'end', ...modelArgs()], input.lines.slice(1, 4).join('\n'));
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toBe(r.stdout);
  });

  it('generate JSONL equals Model.generate per prompt (prompt field, then text)', async () => {
    const prompts = Array.from({ length: 24 }, (_, i) => `Prompt ${i}: ${'once '.repeat(i % 5)}`);
    writeFileSync(path('prompts.jsonl'), prompts.map((p, i) => JSON.stringify(i % 2 ? { id: i, prompt: p } : { text: p })).join('\n'));
    const r = run(['generate', '--in', 'prompts.jsonl', '--out', 'gen.jsonl', '--max-tokens', '6', '--stop', 'zzz', ...modelArgs()]);
    expect(r.code, r.stderr).toBe(0);
    const recs = readLines('gen.jsonl');
    const want = await model.generateBatch(prompts, { maxNewTokens: 6 });
    expect(recs.map((x) => x.index)).toEqual(prompts.map((_, i) => i));
    recs.forEach((rec, i) => {
      expect(rec.text).toBe(want[i]!.text);
      expect(rec.finishReason).toBe(want[i]!.finishReason);
      expect(rec.usage).toEqual(want[i]!.usage);
      if (i % 2) expect(rec.id).toBe(i);
    });
    // -n 2: every record has both choices; the first is the record's text.
    const two = run(['generate', '--in', 'prompts.jsonl', '-n', '2', '--temperature', '1', '--seed', '3', '--max-tokens', '4', ...modelArgs()]);
    expect(two.code, two.stderr).toBe(0);
    for (const line of two.stdout.trim().split('\n')) {
      const rec = JSON.parse(line);
      expect(rec.choices).toHaveLength(2);
      expect(rec.choices[0].text).toBe(rec.text);
    }
  });

  it('a bad line stops the job (exit 1, naming the line) after the records before it; --skip-errors goes on', () => {
    writeFileSync(path('bad.jsonl'), ['"one"', '{"id": 2, "text": "two"}', '{"id": 3, "body": "x"}', '{not json', '42', '"six"'].join('\n'));
    const r = run(['embed', '--in', 'bad.jsonl', '--out', 'bad-out.jsonl', ...modelArgs()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/line 3: no 'text' field .*'id', 'body'/);
    expect(readLines('bad-out.jsonl').map((x) => x.index)).toEqual([0, 1]);
    const s = run(['embed', '--in', 'bad.jsonl', '--out', 'bad-out.jsonl', '--skip-errors', '--overwrite', '--json', ...modelArgs()]);
    expect(s.code, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ out: 'bad-out.jsonl', resumed: 0, written: 6, errors: 3, interrupted: false });
    const recs = readLines('bad-out.jsonl');
    expect(recs.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(recs[2]).toEqual({ index: 2, id: 3, error: expect.stringMatching(/^line 3: no 'text' field/) });
    expect(recs[3].error).toMatch(/^line 4: not valid JSON/);
    expect(recs[4].error).toMatch(/^line 5: expected a JSON string or an object/);
    expect(recs[5].embedding).toHaveLength(64);
    // .npy: an error record is a NaN row, and its error is in the ids sidecar.
    const npy = run(['embed', '--in', 'bad.jsonl', '--out', 'bad-out.npy', '--skip-errors', ...modelArgs()]);
    expect(npy.code, npy.stderr).toBe(0);
    const { shape, data } = readNpy(path('bad-out.npy'));
    expect(shape).toEqual([6, 64]);
    expect([0, 1, 2, 3, 4, 5].map((row) => Number.isNaN(data[row * 64]!))).toEqual([false, false, true, true, true, false]);
    expect(readLines('bad-out.npy.ids.jsonl')[2]).toEqual({ index: 2, id: 3, error: expect.stringMatching(/^line 3: /) });
    // --field picks another text field.
    const body = run(['embed', '--in', 'bad.jsonl', '--field', 'body', '--skip-errors', ...modelArgs()]);
    expect(body.stdout.trim().split('\n').map((l) => 'embedding' in JSON.parse(l))).toEqual([true, false, true, false, false, true]);
    // A model error on one record (too long, no --truncate) is that record's error.
    writeFileSync(path('long.jsonl'), ['"short"', JSON.stringify('word '.repeat(400)), '"after"'].join('\n'));
    const l = run(['embed', '--in', 'long.jsonl', '--out', 'long-out.jsonl', '--skip-errors', ...modelArgs()]);
    expect(l.code, l.stderr).toBe(0);
    expect(readLines('long-out.jsonl').map((x) => x.error === undefined)).toEqual([true, false, true]);
    expect(readLines('long-out.jsonl')[1].error).toMatch(/^line 2: the text has \d+ tokens, more than n_positions \(128\); pass --truncate end\|start/);
  });

  it('refuses to overwrite an existing --out without --resume or --overwrite; refuses a different job', () => {
    const before = readFileSync(path('out.jsonl'));
    const r = run(['embed', '--in', 'in.jsonl', '--out', 'out.jsonl', '--truncate', 'end', ...modelArgs()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/out\.jsonl exists: pass --resume .* or --overwrite/);
    expect(readFileSync(path('out.jsonl')).equals(before)).toBe(true);
    // Different options, a different input, a different command: refused, file untouched.
    const opts = run(['embed', '--in', 'in.jsonl', '--out', 'out.jsonl', '--truncate', 'start', '--resume', ...modelArgs()]);
    expect(opts.code).toBe(1);
    expect(opts.stderr).toMatch(/cannot resume out\.jsonl: options differ: truncate was "end", now "start"/);
    const other = run(['embed', '--in', 'bad.jsonl', '--out', 'out.jsonl', '--truncate', 'end', '--resume', ...modelArgs()]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/cannot resume out\.jsonl: its input was .*in\.jsonl/);
    expect(run(['generate', '--in', 'in.jsonl', '--out', 'out.jsonl', '--resume', ...modelArgs()]).stderr).toMatch(/it is a 'embed' job/);
    expect(readFileSync(path('out.jsonl')).equals(before)).toBe(true);
    // A finished job resumed: nothing to do, nothing duplicated.
    const again = run(['embed', '--in', 'in.jsonl', '--out', 'out.jsonl', '--truncate', 'end', '--resume', ...modelArgs()]);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(path('out.jsonl')).equals(before)).toBe(true);
  });
});

describe('resuming an interrupted job', () => {
  const n = 400;
  const input = mixedInput(n, 150);
  const args = (out: string) => ['embed', '--in', 'slow.jsonl', '--out', out, '--truncate', 'end', '--concurrency', '1', ...modelArgs(slow)];
  let clean: Float32Array[];
  let slowModel: Model;

  beforeAll(async () => {
    writeFileSync(path('slow.jsonl'), `${input.lines.join('\n')}\n`);
    slowModel = await Model.random(slow, { seed: 0 });
    clean = await slowModel.embed(input.texts, { truncate: 'end' });
  });
  afterAll(() => slowModel?.dispose());

  /** Starts the job `cmd`, waits until `ready()` holds, sends `signal`; resolves with the exit code/signal. */
  async function interrupt(cmd: string[], ready: () => boolean, signal: NodeJS.Signals) {
    const child = spawn(process.execPath, [cli, ...cmd], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += String(d); });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, sig) => res({ code, signal: sig })));
    let done = false;
    void exited.then(() => { done = true; });
    while (!done && !ready()) await new Promise((r) => setTimeout(r, 5));
    expect(done, `the job finished before it could be interrupted: ${stderr}`).toBe(false);
    child.kill(signal);
    return { ...(await exited), stderr: () => stderr };
  }

  const lineCount = (name: string) => (existsSync(path(name)) ? readFileSync(path(name), 'utf8').split('\n').length - 1 : 0);

  function expectComplete(records: { index: number; id?: unknown; embedding: number[] }[]) {
    expect(records).toHaveLength(n);
    records.forEach((rec, i) => {
      expect(rec.index).toBe(i);
      expect(rec.id).toBe(input.ids[i]);
      expectVectorsClose(rec.embedding, clean[i]!, 1e-5);
    });
  }

  it('JSONL: after SIGKILL and a torn last line, --resume writes exactly the missing records', async () => {
    const k = await interrupt(args('kill.jsonl'), () => lineCount('kill.jsonl') >= 40, 'SIGKILL');
    expect(k.signal).toBe('SIGKILL');
    const written = lineCount('kill.jsonl');
    expect(written).toBeLessThan(n);
    // A torn write: half of a record's line at the end.
    appendFileSync(path('kill.jsonl'), '{"index":999,"embedding":[0.1,0.');
    const r = run([...args('kill.jsonl'), '--resume']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`resuming kill\\.jsonl: ${written} records already written`));
    expectComplete(readLines('kill.jsonl'));
  });

  it('.npy: after SIGKILL and a partial row, --resume gives N whole rows and matching ids', async () => {
    const rowBytes = slow.n_embd * 4;
    const k = await interrupt(args('kill.npy'), () => existsSync(path('kill.npy')) && statSync(path('kill.npy')).size > 128 + 30 * rowBytes, 'SIGKILL');
    expect(k.signal).toBe('SIGKILL');
    appendFileSync(path('kill.npy'), Buffer.alloc(rowBytes / 2, 7)); // a torn row
    appendFileSync(path('kill.npy.ids.jsonl'), '{"index":12');
    const r = run([...args('kill.npy'), '--resume']);
    expect(r.code, r.stderr).toBe(0);
    const { shape, data } = readNpy(path('kill.npy'));
    expect(shape).toEqual([n, slow.n_embd]);
    const ids = readLines('kill.npy.ids.jsonl');
    expect(ids.map((x) => x.index)).toEqual(input.ids.map((_, i) => i));
    for (let i = 0; i < n; i++) expectVectorsClose(data.subarray(i * slow.n_embd, (i + 1) * slow.n_embd), clean[i]!, 1e-5);
  });

  it('SIGINT stops cleanly with exit 130 after writing whole records; --resume completes', async () => {
    const k = await interrupt(args('int.jsonl'), () => lineCount('int.jsonl') >= 20, 'SIGINT');
    expect(k.code, k.stderr()).toBe(130);
    expect(k.stderr()).toMatch(/--resume/);
    const text = readFileSync(path('int.jsonl'), 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const r = run([...args('int.jsonl'), '--resume']);
    expect(r.code, r.stderr).toBe(0);
    expectComplete(readLines('int.jsonl'));
  });

  it('generate: a sampling job without --seed resumes with the seed kept in its job file', async () => {
    const prompts = Array.from({ length: 24 }, (_, i) => `Prompt ${i}:`);
    writeFileSync(path('sample.jsonl'), prompts.map((p) => JSON.stringify(p)).join('\n'));
    const gen = ['generate', '--in', 'sample.jsonl', '--out', 'sample-out.jsonl', '--max-tokens', '16', '--temperature', '1',
      '--concurrency', '1', ...modelArgs(slow)];
    const k = await interrupt(gen, () => lineCount('sample-out.jsonl') >= 3, 'SIGKILL');
    expect(k.signal).toBe('SIGKILL');
    const r = run([...gen, '--resume']);
    expect(r.code, r.stderr).toBe(0);
    const seed = JSON.parse(readFileSync(path('sample-out.jsonl.job.json'), 'utf8')).state.seed;
    expect(Number.isSafeInteger(seed)).toBe(true);
    const recs = readLines('sample-out.jsonl');
    expect(recs.map((x) => x.index)).toEqual(prompts.map((_, i) => i));
    for (const [i, p] of prompts.entries()) {
      const want = await slowModel.generate(p, { maxNewTokens: 16, sampler: { temperature: 1 }, seed: seed + i }).result();
      expect(recs[i].text, `record ${i}`).toBe(want.text);
    }
  });

  it('truncating the output mid-file (a lost tail) also resumes exactly', () => {
    const full = readFileSync(path('kill.jsonl'), 'utf8');
    const cut = full.split('\n').slice(0, 123).join('\n').length + 57; // inside record 124
    truncateSync(path('kill.jsonl'), cut);
    const r = run([...args('kill.jsonl'), '--resume']);
    expect(r.code, r.stderr).toBe(0);
    expectComplete(readLines('kill.jsonl'));
  });
});
