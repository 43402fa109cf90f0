// `gpt2-node bench`: the report's table, ratios and SVG chart from fixed data (including a fake
// CUDA row), row planning, and the real CLI on a tiny model with --quick. No timing asserts.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { metricId, median, seededRandom, type BenchSettings } from '../lib/bench/measure.js';
import { computeRatios, formatMarkdown, formatTable, metricDefs, tableCells } from '../lib/bench/report.js';
import { gpuPeaks, roofline } from '../lib/bench/roofline.js';
import { parameterCount, planRows, type BenchReport, type BenchRow } from '../lib/bench/run.js';
import type { GPT2Config } from '../lib/model.js';
import { escapeXml, renderSvg, wrap } from '../lib/bench/svg.js';
import { info } from '../lib/info.js';
import { buildDistIfStale, root, runCli as run, runCliAsync } from './helpers/cli.js';
import { MockHub } from './helpers/mock-hub.js';

const tinyRandom = '{"n_layer":2,"n_embd":64,"n_head":4,"n_positions":128}';
const tinyFixture = join(root, '../shared/fixtures/models/tiny');

beforeAll(buildDistIfStale);

/**
 * Minimal XML well-formedness check: every tag is closed in order, attributes are quoted,
 * text and attribute values carry no raw '<' and no '&' outside an entity. Returns the tag names.
 */
function checkXml(xml: string): string[] {
  const stack: string[] = [];
  const names: string[] = [];
  const badAmp = /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i;
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<\?xml[^>]*\?>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (badAmp.test(text) || text.includes('>')) throw new Error(`bad text near ${JSON.stringify(text.slice(0, 40))}`);
    if (lt < 0) break;
    token.lastIndex = lt;
    const m = token.exec(xml);
    if (!m) throw new Error(`malformed tag at ${lt}: ${JSON.stringify(xml.slice(lt, lt + 60))}`);
    if (m[2]) {
      if (badAmp.test(m[3])) throw new Error(`bad attribute in <${m[2]}>`);
      if (m[1]) {
        const open = stack.pop();
        if (open !== m[2]) throw new Error(`</${m[2]}> closes <${open}>`);
      } else {
        names.push(m[2]);
        if (!m[4]) stack.push(m[2]);
      }
    }
    i = token.lastIndex;
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`);
  return names;
}

const settings: BenchSettings = { promptTokens: 128, newTokens: 32, batchSizes: [1, 8], prefillBatch: 8, embedTexts: 64, repeat: 3, warmup: 1, seed: 0 };

function row(device: string, dtype: BenchRow['dtype'], label: string, scale: number, extra: Partial<BenchRow> = {}): BenchRow {
  return {
    device, dtype, label, status: 'ok', backend: device === 'cuda' ? 'cuda:0' : 'cpu', samples: {},
    metrics: {
      [metricId.load]: 1 / scale, [metricId.prefill]: 1000 * scale, [metricId.decode(1)]: 40 * scale,
      [metricId.decode(8)]: 200 * scale, [metricId.generate(1)]: 35 * scale, [metricId.generate(8)]: 180 * scale,
      [metricId.ttft(1)]: 100 / scale, [metricId.ttft(8)]: 800 / scale, [metricId.embed]: 50 * scale,
      [metricId.peakRss]: 600 * 2 ** 20 / scale, [metricId.weights]: 500 * 2 ** 20 / scale, [metricId.kvCache]: 300 * 2 ** 20,
      [metricId.peakDevice]: null,
    },
    ...extra,
  };
}

function fakeReport(rows: BenchRow[], skipped: BenchReport['skipped'] = []): BenchReport {
  return {
    version: 1, date: '2026-12-02T04:00:00.000Z',
    machine: { cpu: 'Test CPU <x&y>', isa: 'avx512', threads: 2, node: 'v20.0.0', os: 'linux-x64', loadAverage: { start: 0.5, end: 1.25 },
      cuda: { available: false, reason: 'no driver', devices: [] } },
    model: { name: 'gpt2', source: 'random', config: null, parameters: 124_439_808, dtypes: ['float32', 'bfloat16'] },
    settings: { ...settings, threads: null, kvCacheTokens: 4096 },
    rows, ratios: computeRatios(rows), skipped,
  };
}

describe('bench report (fixed data)', () => {
  const cpu = row('cpu', 'float32', 'cpu/f32', 1);
  const cpuBf16 = row('cpu', 'bfloat16', 'cpu/bf16', 2);
  const cuda = row('cuda', 'bfloat16', 'cuda/bf16', 41.2);
  const report = fakeReport([cuda, cpu, cpuBf16]);

  it('ratios are against cpu/f32: speed-ups (inverted for times), size ratios for memory', () => {
    expect(report.ratios.map((r) => [r.row, r.baseline])).toEqual([['cuda/bf16', 'cpu/f32'], ['cpu/bf16', 'cpu/f32']]);
    const v = report.ratios[0].values;
    expect(v[metricId.prefill]).toBeCloseTo(41.2, 9);
    expect(v[metricId.decode(8)]).toBeCloseTo(41.2, 9);
    expect(v[metricId.ttft(1)]).toBeCloseTo(41.2, 9); // less time is a speed-up
    expect(v[metricId.load]).toBeCloseTo(41.2, 9);
    expect(v[metricId.weights]).toBeCloseTo(1 / 41.2, 9); // memory: row / baseline
    expect(v[metricId.kvCache]).toBe(1);
    expect(v[metricId.peakDevice]).toBeNull();
  });

  it('the baseline is the first row that ran when there is no cpu/f32 row', () => {
    const failed = { ...row('cpu', 'float32', 'cpu/f32', 1), status: 'failed' as const, error: 'boom', metrics: {} };
    const r = computeRatios([failed, cuda, cpuBf16]);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ row: 'cpu/bf16', baseline: 'cuda/bf16' });
    expect(computeRatios([failed])).toEqual([]);
  });

  it('the table has one column per row, a ratio column per other row, and the notes', () => {
    const skipped = fakeReport([cpu, cpuBf16], [{ device: 'cuda', reason: 'driver too old' }, { device: 'cpu', dtype: 'float16', reason: 'float16 runs on CUDA only' }]);
    const text = formatTable(skipped);
    expect(text).toMatch(/^metric\s+cpu\/f32\s+cpu\/bf16\s+cpu\/bf16 vs cpu\/f32$/m);
    expect(text).toMatch(/^prefill 8x128 \(tok\/s\)\s+1000\s+2000\s+2\.00x$/m);
    expect(text).toMatch(/^time to first token, batch 8 \(ms\)\s+800\s+400\s+2\.00x$/m);
    expect(text).toMatch(/^peak device memory \(MiB\)\s+n\/a\s+n\/a\s+-$/m);
    expect(text).toContain('no CUDA row: driver too old');
    expect(text).toContain('no cpu/f16 row: float16 runs on CUDA only');
    const withCuda = formatTable(report);
    expect(withCuda).toMatch(/cuda\/bf16 vs cpu\/f32/);
    expect(withCuda).toMatch(/^decode batch 1 \(tok\/s\)\s+1648\s+40\.0\s+80\.0\s+41\.2x\s+2\.00x$/m);
    // Every metric has a row.
    const cells = tableCells(report);
    expect(cells.slice(1).map((c) => c[0])).toEqual(metricDefs(settings).map((d) => d.label));
    expect(formatMarkdown(report)).toMatch(/^\| metric \| cuda\/bf16 \| cpu\/f32 \| cpu\/bf16 \| cuda\/bf16 vs cpu\/f32 \| cpu\/bf16 vs cpu\/f32 \|$/m);
  });

  it('a failed row shows "failed" in its column and its error under the table', () => {
    const failed: BenchRow = { ...row('cuda', 'float32', 'cuda/f32', 1), status: 'failed', error: 'out of device memory', metrics: {} };
    const text = formatTable(fakeReport([cpu, failed]));
    expect(text).toMatch(/^load \(s\)\s+1\.00\s+failed$/m);
    expect(text).toContain('cuda/f32 failed: out of device memory');
  });

  it('the SVG is well-formed, escapes text and has one bar group per metric', () => {
    const svg = renderSvg(report);
    const tags = checkXml(svg);
    expect(tags[0]).toBe('svg');
    expect(svg).toContain('Test CPU &lt;x&amp;y&gt;');
    expect(svg).toContain('load average 0.5 -&gt; 1.3');
    for (const d of metricDefs(settings)) expect(svg).toContain(`>${escapeXml(d.label)}</text>`);
    // 3 rows x 12 metrics with values (peak device memory is n/a for every row).
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(3 * 12);
    expect(svg).toContain('n/a');
    expect(svg).toMatch(/41\.2x/);
    for (const label of ['cpu/f32 (baseline)', 'cuda/bf16', 'cpu/bf16']) expect(svg).toContain(`>${label}</text>`);
  });

  it('CUDA rows get decode bandwidth and prefill FLOP/s against the device peaks', () => {
    const config = { vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12 } as GPT2Config;
    const tables = 4 * (50257 + 1024) * 768; // fp32 wte/wpe: not streamed per token
    const flopsPerToken = 2 * (12 * 12 * 768 * 768 + (50257 * 768) / 128) + 2 * 12 * 128 * 768;
    const metrics = { [metricId.weights]: tables + 250e6, [metricId.decode(1)]: 100, [metricId.prefill]: 1e12 / flopsPerToken };
    const r = roofline(metrics, config, settings, gpuPeaks('NVIDIA H200'));
    expect(r.peaks).toEqual({ gbs: 4800, tflops: 989 });
    expect(r.decodeGBs).toBeCloseTo(25, 9);
    expect(r.decodeBandwidthFraction).toBeCloseTo(25 / 4800, 9);
    expect(r.prefillTflops).toBeCloseTo(1, 9);
    expect(gpuPeaks('Some Future GPU')).toBeNull();
    const withRoofline = fakeReport([cpu, { ...cuda, roofline: r }]);
    expect(formatTable(withRoofline)).toContain('cuda/bf16: decode batch 1 moves ~25.0 GB/s of weights = 0.5% of the 4800 GB/s ceiling; prefill reaches 1.00 TFLOP/s = 0.1% of the 989 bf16 TFLOP/s tensor-core peak');
    const cusim = { ...withRoofline, machine: { ...withRoofline.machine, cuda: { available: true, reason: null, devices: [{ name: 'cusim (emulator)', computeCapability: '9.0', totalMemory: 1 }] } } };
    expect(formatTable(cusim)).toContain('the CUDA device is the cusim emulator');
  });

  it('escapeXml covers the five XML specials; wrap splits notes at spaces', () => {
    expect(escapeXml(`<a href="x">&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;');
    expect(wrap('no CUDA row: driver too old', 12)).toEqual(['no CUDA row:', 'driver too', 'old']);
    expect(wrap('averyveryverylongword x', 5)).toEqual(['averyveryverylongword', 'x']);
  });

  it('the seeded inputs repeat and medians are medians', () => {
    const a = seededRandom(7), b = seededRandom(7);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });
});

describe('row planning', () => {
  const none = { available: false, reason: 'no driver', devices: [] };
  const one = { available: true, reason: null, devices: [{ index: 0, name: 'GPU', computeCapability: '9.0', totalMemory: 1, multiprocessors: 1 }] };

  it('default devices: cpu, plus cuda when usable, else a skipped entry with the reason', () => {
    expect(planRows(undefined, ['float32'], none)).toEqual({
      rows: [{ device: 'cpu', dtype: 'float32', label: 'cpu/f32' }],
      skipped: [{ device: 'cuda', reason: 'no driver' }],
    });
    expect(planRows(undefined, ['float32', 'bfloat16'], one).rows.map((r) => r.label)).toEqual(['cpu/f32', 'cpu/bf16', 'cuda/f32', 'cuda/bf16']);
  });

  it('parameter counts match the published sizes', () => {
    expect(parameterCount({ n_layer: 12, n_embd: 768, vocab_size: 50257, n_positions: 1024 })).toBe(124_439_808);
    expect(parameterCount({ n_layer: 48, n_embd: 1600, vocab_size: 50257, n_positions: 1024 })).toBe(1_557_611_200);
  });

  it('float16 is skipped on the CPU; a missing cuda:N is skipped', () => {
    const p = planRows(['cpu', 'cuda:1'], ['float16', 'float32'], one);
    expect(p.rows.map((r) => r.label)).toEqual(['cpu/f32']);
    expect(p.skipped).toEqual([
      { device: 'cpu', dtype: 'float16', reason: 'float16 runs on CUDA only' },
      { device: 'cuda:1', reason: 'no CUDA device 1 (1 found)' },
    ]);
  });
});

describe('gpt2-node bench (the CLI, --quick)', () => {
  const cudaInfo = info().cuda;
  const dir = mkdtempSync(join(tmpdir(), 'gpt2-bench-'));

  it('--json: a versioned report with the CPU rows, finite positive numbers, and the CUDA status', () => {
    const out = join(dir, 'r.json');
    const svg = join(dir, 'r.svg');
    const r = run(['bench', '--random', tinyRandom, '--quick', '--json', '--out', out, '--svg', svg]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as BenchReport;
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(j);
    expect(j.version).toBe(1);
    expect(Number.isNaN(Date.parse(j.date))).toBe(false);
    expect(j.machine.cpu.length).toBeGreaterThan(0);
    expect(['avx512', 'avx2', 'baseline']).toContain(j.machine.isa);
    expect(j.machine.node).toBe(process.version);
    expect(j.machine.loadAverage.end).toBeGreaterThanOrEqual(0);
    expect(j.model.config?.n_layer).toBe(2);
    expect(j.model.parameters).toBeGreaterThan(0);
    const labels = j.rows.map((x) => x.label);
    expect(labels.slice(0, 2)).toEqual(['cpu/f32', 'cpu/bf16']);
    for (const x of j.rows) {
      expect(x.status, x.error).toBe('ok');
      for (const d of metricDefs(j.settings)) {
        if (d.id === metricId.peakDevice) {
          expect(x.metrics[d.id]).toBeNull();
          continue;
        }
        const v = x.metrics[d.id];
        expect(Number.isFinite(v) && (v as number) > 0, `${x.label} ${d.id} = ${v}`).toBe(true);
      }
      expect(x.maxStepSequences).toBeGreaterThanOrEqual(1);
      // Sequences per engine step in the decode runs: between 1 and the batch size.
      expect(x.decodeStepSequences!['1']).toBe(1);
      expect(x.decodeStepSequences!['4']).toBeGreaterThan(1);
      expect(x.decodeStepSequences!['4']).toBeLessThanOrEqual(4);
    }
    expect(j.ratios[0]).toMatchObject({ row: 'cpu/bf16', baseline: 'cpu/f32' });
    expect(j.machine.cuda.available).toBe(cudaInfo.available);
    if (!cudaInfo.available) {
      expect(j.machine.cuda.reason).toBe(cudaInfo.reason);
      expect(j.skipped).toContainEqual({ device: 'cuda', reason: cudaInfo.reason });
      expect(labels.some((l) => l.startsWith('cuda'))).toBe(false);
    } else {
      expect(labels).toContain('cuda/f32');
    }
    const chart = readFileSync(svg, 'utf8');
    checkXml(chart);
    for (const d of metricDefs(j.settings)) expect(chart).toContain(escapeXml(d.label));
  });

  it('prints the table with the ratio column and the no-CUDA line (fixture model, --model)', () => {
    const md = join(dir, 'r.md');
    const r = run(['bench', '--model', tinyFixture, '--quick', '--md', md]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^metric\s+cpu\/f32\s+cpu\/bf16\s+.*cpu\/bf16 vs cpu\/f32/m);
    expect(r.stdout).toMatch(/^decode batch 4 \(tok\/s\)\s+\d/m);
    if (!cudaInfo.available) expect(r.stdout).toContain(`no CUDA row: ${cudaInfo.reason}`);
    expect(readFileSync(md, 'utf8')).toMatch(/^\| metric \| cpu\/f32 \| cpu\/bf16 \|/m);
  });

  it.skipIf(cudaInfo.available)('--devices cuda without CUDA: the reason and exit code 1', () => {
    const r = run(['bench', '--random', tinyRandom, '--quick', '--devices', 'cuda']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`nothing to run (no CUDA row: ${cudaInfo.reason})`);
  });

  it('a row that fails is reported and the others still run; exit code 1', async () => {
    // A cuda row planned by hand fails in its own process here (no CUDA); the CPU row still runs.
    const { runBench } = (await import(join(root, 'dist/bench/run.js'))) as typeof import('../lib/bench/run.js');
    const rows = [{ device: 'cuda', dtype: 'float32' as const, label: 'cuda/f32' }, { device: 'cpu', dtype: 'float32' as const, label: 'cpu/f32' }];
    const report = await runBench({
      modelValues: { random: tinyRandom, seed: '0' }, modelName: 'tiny', source: 'random', rows, skipped: [], dtypes: ['float32'],
      settings: { promptTokens: 8, newTokens: 2, batchSizes: [1], prefillBatch: 1, embedTexts: 2, repeat: 1, warmup: 0, seed: 0 },
      kvCacheTokens: 512,
    });
    expect(report.rows[1].status).toBe('ok');
    if (!cudaInfo.available) {
      expect(report.rows[0]).toMatchObject({ status: 'failed', label: 'cuda/f32' });
      expect(report.rows[0].error!.length).toBeGreaterThan(0);
      expect(formatTable(report)).toContain(`cuda/f32 failed: ${report.rows[0].error}`);
    }
    // The CLI's exit code when a row fails: a KV cache too small for any request.
    const r = run(['bench', '--random', tinyRandom, '--quick', '--dtype', 'float32', '--devices', 'cpu', '--kv-cache-tokens', '16']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/cpu\/f32 failed: .*KV cache/);
    expect(r.stderr).toContain('bench: 1 of 1 rows failed (cpu/f32)');
    // A row that takes too long is killed (gpt2's random weights alone take seconds to make).
    const slow = run(['bench', '--random', 'gpt2', '--quick', '--dtype', 'float32', '--devices', 'cpu', '--row-timeout', '1']);
    expect(slow.code).toBe(1);
    expect(slow.stdout).toContain('cpu/f32 failed: timed out after 1 s (--row-timeout)');
  });

  it('--model <hub id>: downloaded once in the parent (with progress), then every row loads the snapshot', async () => {
    const hub = await MockHub.start();
    try {
      const read = (p: string) => readFileSync(join(tinyFixture, '..', '..', p));
      hub.addRepo('test-org/tiny-gpt2', {
        commit: 'a'.repeat(40),
        files: { 'config.json': read('models/tiny/config.json'), 'model.safetensors': read('models/tiny/model.safetensors'),
          'vocab.json': read('tokenizer/vocab.json'), 'merges.txt': read('tokenizer/merges.txt') },
        lfs: ['model.safetensors'],
      });
      const env = { HF_HOME: mkdtempSync(join(tmpdir(), 'gpt2-bench-hf-')), HF_ENDPOINT: hub.url };
      const r = await runCliAsync(['bench', '--model', 'test-org/tiny-gpt2', '--quick', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout) as BenchReport;
      expect(j.model).toMatchObject({ name: 'test-org/tiny-gpt2', source: 'model' });
      expect(j.rows.map((x) => x.status)).toEqual(['ok', 'ok']);
      expect(hub.count('GET', 'cdn', 'model.safetensors')).toBe(1);
      expect(r.stderr).toMatch(/model\.safetensors/);
    } finally {
      await hub.close();
    }
  });

  // The CUDA rows' code path, through the cusim plugin (built by `npm run build:cusim`).
  const cusimPlugin = join(root, 'build-cusim/libgpt2_cuda.so');
  it.skipIf(!existsSync(cusimPlugin))('CUDA rows run the same workloads (cusim plugin); float16 is skipped on the CPU only', () => {
    const r = run(['bench', '--random', tinyRandom, '--quick', '--prompt-tokens', '8', '--new-tokens', '4', '--batch-sizes', '1,2', '--embed-texts', '2', '--devices', 'cpu,cuda', '--dtype', 'float32,float16', '--json'],
      { GPT2_CUDA_PLUGIN: cusimPlugin });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as BenchReport;
    expect(j.rows.map((x) => [x.label, x.status, x.backend])).toEqual([
      ['cpu/f32', 'ok', 'cpu'], ['cuda/f32', 'ok', 'cuda:0'], ['cuda/f16', 'ok', 'cuda:0'],
    ]);
    expect(j.skipped).toEqual([{ device: 'cpu', dtype: 'float16', reason: 'float16 runs on CUDA only' }]);
    for (const x of j.rows.slice(1)) {
      expect(x.metrics[metricId.decode(2)]).toBeGreaterThan(0);
      expect(x.metrics[metricId.peakDevice]).toBeNull(); // not exposed by the backend: n/a, never made up
      expect(x.roofline?.decodeGBs).toBeGreaterThan(0);
      expect(x.roofline?.peaks).toBeNull(); // cusim's name says H100-like: no peaks for an emulator
    }
    expect(j.ratios.map((q) => q.row)).toEqual(['cuda/f32', 'cuda/f16']);
    const table = formatTable(j);
    expect(table).toContain('cuda/f16 vs cpu/f32');
    expect(table).toContain('the CUDA device is the cusim emulator');
  });

  it('bad options are usage errors (exit 2)', () => {
    const cases: [string[], RegExp][] = [
      [['--batch-sizes', '1,x'], /--batch-sizes: 'x' is not a batch size/],
      [['--batch-sizes', '0'], /--batch-sizes: '0'/],
      [['--batch-sizes', '1,1'], /repeats an item/],
      [['--devices', 'tpu'], /--devices: 'tpu' is not a device/],
      [['--dtype', 'float64'], /--dtype: 'float64' is not a dtype/],
      [['--new-tokens', '1'], /--new-tokens must be an integer >= 2/],
      [['--prompt-tokens', '200'], /n_positions \(128\)/],
      [['--repeat', '0'], /--repeat must be an integer >= 1/],
      [['--device', 'cpu'], /Unknown option '--device'/],
      [['--svg', '/no/such/dir/chart.svg'], /--svg: no folder \/no\/such\/dir/],
    ];
    for (const [args, message] of cases) {
      const r = run(['bench', '--random', tinyRandom, '--quick', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(run(['bench', '--random', 'gpt5', '--quick']).stderr).toMatch(/unknown preset 'gpt5'/);
    expect(run(['bench', '--quick']).code).toBe(2);
    const help = run(['bench', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--devices <list>/);
    expect(help.stdout).not.toMatch(/--device </);
  });
});
