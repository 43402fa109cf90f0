// Side-by-side benchmark harness (parent side), shared by bench/engine.mjs and later benches.
//
// Each engine runs in its own child process (so its peak RSS is its own) and speaks a tiny protocol:
// JSON-line commands on the child's stdin, JSON-line replies on its fd 3 (bench/lib/child.mjs for Node
// children, bench/engines/torch_child.py shows the same in Python). Commands: { op: 'load', ... } once,
// then workload ops (e.g. { op: 'prefill', batch, tokens }) answering { seconds: [...], tokens }, then
// { op: 'memory' } -> { peakRss, rss } and { op: 'exit' }. A reply { ok: false, unavailable } marks an
// engine "not available: <reason>"; { ok: false, error } marks one workload failed for that engine.
//
// runInterleaved() measures workload by workload; within a workload the engines take turns round after
// round (A B C, B C A, C A B, ...: the start rotates), so slow drifts of this shared machine hit every
// engine alike. The figure per engine and workload is the median over rounds of tokens / seconds.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import os from 'node:os';
import { dirname } from 'node:path';

export const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** One engine's child process. */
export class Child {
  constructor({ id, command, args = [], env = {}, cwd, verbose = false }) {
    this.id = id;
    this.tail = '';
    this.pending = null;
    this.exited = null;
    this.proc = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const keep = (chunk) => {
      if (verbose) process.stderr.write(`[${id}] ${chunk}`);
      this.tail = (this.tail + chunk).slice(-4000);
    };
    this.proc.stdout.setEncoding('utf8').on('data', keep);
    this.proc.stderr.setEncoding('utf8').on('data', keep);
    this.proc.stdin.on('error', () => {});
    createInterface({ input: this.proc.stdio[3] }).on('line', (line) => {
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      try { p.resolve(JSON.parse(line)); } catch (e) { p.reject(new Error(`bad reply from ${id}: ${line.slice(0, 200)}`)); }
    });
    this.proc.on('error', (e) => this.#fail(e));
    this.proc.on('exit', (code, signal) => {
      this.exited = { code, signal };
      this.#fail(new Error(`child exited (${signal ?? code}): ${this.tail.trim().split('\n').slice(-5).join(' | ')}`));
    });
  }
  #fail(err) {
    const p = this.pending;
    this.pending = null;
    if (p) p.reject(err);
  }
  /** Send one command; resolves with the reply, rejects when the child dies or the timeout passes (child killed). */
  request(msg, timeoutMs = 600_000) {
    if (this.exited) return Promise.reject(new Error(`child already exited: ${this.tail.slice(-300)}`));
    if (this.pending) return Promise.reject(new Error('request already in flight'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = null;
        this.kill();
        reject(new Error(`timed out after ${timeoutMs / 1000} s on ${JSON.stringify(msg)}`));
      }, timeoutMs);
      this.pending = {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.proc.stdin.write(JSON.stringify(msg) + '\n');
    });
  }
  kill() { if (!this.exited) this.proc.kill('SIGKILL'); }
  async close() {
    if (this.exited) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    try { await this.request({ op: 'exit' }, 10_000); } catch {}
    const t = setTimeout(() => this.kill(), 5_000);
    await done;
    clearTimeout(t);
  }
}

/**
 * engines: [{ id, label, spawn: { command, args, env }, load: {...}, unavailable?: string }]
 * workloads: [{ id, label, msg: { op, ... } }]
 * workloads may carry kind (e.g. 'prefill') and tokens (tokens per measurement; projectable: false when the
 * child bounds the time itself, e.g. decode with maxSeconds): an engine whose earlier
 * rate for that kind projects a measurement longer than maxSeconds skips it (result.skipped says why), so one
 * very slow peer cannot eat the whole run or hit the timeout (which kills its child).
 * opts: { rounds, timeoutMs, slowSeconds (after a measurement this long, that engine gets no more rounds
 *         of that workload), maxSeconds, onWorkload(state) after each workload, verbose, log }
 * Returns [{ id, label, status: 'ok'|'unavailable', reason, info, peakRss, results: { [workloadId]:
 *          { median, samples: [tok/s...], error, skipped } } }]
 */
export async function runInterleaved(engines, workloads, opts = {}) {
  const { rounds = 3, timeoutMs = 600_000, slowSeconds = Infinity, maxSeconds = Infinity, verbose = false, log = console.error } = opts;
  const state = [];
  for (const e of engines) {
    const s = { id: e.id, label: e.label, status: 'ok', reason: null, info: null, peakRss: null, loadSeconds: null, results: {} };
    state.push(s);
    if (e.unavailable) { s.status = 'unavailable'; s.reason = e.unavailable; log(`  ${e.id}: not available: ${s.reason}`); continue; }
    const t0 = performance.now();
    try {
      s.child = new Child({ id: e.id, ...e.spawn, verbose });
      const r = await s.child.request({ op: 'load', ...e.load }, timeoutMs);
      if (!r.ok) throw Object.assign(new Error(r.unavailable ?? r.error), { unavailable: true });
      const { ok, ...info } = r;
      s.info = info;
      s.loadSeconds = (performance.now() - t0) / 1000;
      log(`  ${e.id}: loaded in ${s.loadSeconds.toFixed(1)} s ${JSON.stringify(info)}`);
    } catch (err) {
      s.status = 'unavailable';
      s.reason = String(err.message).split('\n')[0];
      log(`  ${e.id}: not available: ${s.reason}`);
      s.child?.kill();
      s.child = null;
    }
  }
  const live = state.filter((s) => s.status === 'ok');
  for (const w of workloads) {
    for (const s of live) {
      const res = (s.results[w.id] = { median: null, samples: [], error: null, skipped: null });
      const rate = w.kind && w.projectable !== false && s.rates?.[w.kind];
      if (rate && w.tokens && w.tokens / rate > maxSeconds) {
        res.skipped = `projected ${(w.tokens / rate).toFixed(0)} s per measurement (> ${maxSeconds} s) at its ${rate.toFixed(1)} tok/s`;
        log(`  ${w.id} ${s.id}: skipped, ${res.skipped}`);
      }
    }
    for (let round = 0; round < rounds; round++) {
      const order = live.map((_, i) => live[(i + round) % live.length]);
      for (const s of order) {
        const res = s.results[w.id];
        if (res.error || res.skipped || res.done || !s.child) continue;
        try {
          const r = await s.child.request(w.msg, timeoutMs);
          if (!r.ok) throw new Error(r.error ?? r.unavailable);
          // tokens: per rep (a number), or one count per rep (decode may stop early at maxSeconds)
          const total = r.seconds.reduce((a, b) => a + b, 0);
          const tokens = Array.isArray(r.tokens) ? r.tokens.reduce((a, b) => a + b, 0) : r.tokens * r.seconds.length;
          res.samples.push(tokens / total);
          if (total > slowSeconds) res.done = true;
          if (verbose) log(`  ${w.id} round ${round + 1} ${s.id}: ${res.samples.at(-1).toFixed(1)} tok/s (${total.toFixed(2)} s)`);
        } catch (err) {
          res.error = String(err.message).split('\n').slice(-3).join(' ').slice(0, 400);
          log(`  ${w.id} ${s.id}: failed: ${res.error}`);
          if (s.child?.exited) s.child = null;
        }
      }
    }
    for (const s of live) {
      const res = s.results[w.id];
      delete res.done;
      res.median = median(res.samples);
      if (w.kind && res.median) {
        s.rates ??= {};
        s.rates[w.kind] = Math.min(s.rates[w.kind] ?? Infinity, res.median);
      }
    }
    opts.onWorkload?.(state);
    log(`  ${w.label}: ${live.map((s) => `${s.id} ${s.results[w.id].median?.toFixed(1) ?? 'failed'}`).join(', ')}`);
  }
  for (const s of live) {
    if (s.child) {
      try { const m = await s.child.request({ op: 'memory' }, 30_000); s.peakRss = m.peakRss; } catch {}
      await s.child.close();
    }
    delete s.child;
    delete s.rates;
  }
  return state;
}

function sh(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
}

/** What machine the numbers come from. */
export function machineInfo(repoRoot) {
  let cpuinfo = '';
  try { cpuinfo = readFileSync('/proc/cpuinfo', 'utf8'); } catch {}
  const flags = new Set((cpuinfo.match(/^flags\s*:\s*(.*)$/m)?.[1] ?? '').split(/\s+/));
  const simd = ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16',
    'avx512_fp16', 'amx_tile', 'amx_bf16', 'amx_int8'].filter((f) => flags.has(f));
  let memTotal = null;
  try { memTotal = Number(readFileSync('/proc/meminfo', 'utf8').match(/MemTotal:\s+(\d+)/)[1]) * 1024; } catch {}
  return {
    cpu: cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    simd,
    logicalCores: os.availableParallelism?.() ?? os.cpus().length,
    memTotal,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    date: new Date().toISOString(),
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
    gitCommit: sh('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']),
    gitBranch: sh('git', ['-C', repoRoot, 'rev-parse', '--abbrev-ref', 'HEAD']),
  };
}

export const fmtRate = (x) => (x == null ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
export const fmtBytes = (b) => (b == null ? '–' : `${(b / 2 ** 20).toFixed(0)} MiB`);

/** Markdown table: one row per engine, one column per workload, "rate (ratio vs baseline)". */
export function markdownTable(state, workloads, opts = {}) {
  const { baseline, unit = 'tok/s' } = opts;
  const base = state.find((s) => s.id === baseline);
  const head = ['engine', ...workloads.map((w) => `${w.label} (${unit})`), 'peak RSS'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`];
  for (const s of state) {
    if (s.status !== 'ok') {
      lines.push(`| ${s.label} | ${workloads.map(() => '–').join(' | ')} | not available: ${s.reason.replace(/\|/g, '\\|')} |`);
      continue;
    }
    const cells = workloads.map((w) => {
      const r = s.results[w.id];
      if (!r || r.median == null) return r?.error ? 'failed' : r?.skipped ? 'skipped' : '–';
      const b = base?.results?.[w.id]?.median;
      const ratio = b && s !== base ? ` (${(r.median / b).toFixed(2)}x)` : '';
      const n = r.samples.length < (opts.rounds ?? 1) ? '¹' : '';
      return `${fmtRate(r.median)}${n}${ratio}`;
    });
    lines.push(`| ${s.label} | ${cells.join(' | ')} | ${fmtBytes(s.peakRss)} |`);
  }
  return lines.join('\n');
}

export function writeResults(basePath, json, markdown) {
  mkdirSync(dirname(basePath), { recursive: true });
  writeFileSync(`${basePath}.json`, JSON.stringify(json, null, 2) + '\n');
  writeFileSync(`${basePath}.md`, markdown);
}
