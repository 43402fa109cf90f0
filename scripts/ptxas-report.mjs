// Turns the ptxas -v output of a CUDA plugin build into a markdown table (registers, spills,
// stack, static shared memory per kernel and architecture):
//   GPT2_CUDA_PTXAS_VERBOSE=1 node scripts/build-cuda.mjs && node scripts/ptxas-report.mjs > bench/results/cuda-ptxas.md
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const log = readFileSync(process.argv[2] ?? 'build-cuda/ptxas.log', 'utf8');
const rows = [];
let cur = null;
for (const line of log.split('\n')) {
  let m = line.match(/Compiling entry function '([^']+)' for '(sm_\d+)'/);
  if (m) { cur = { mangled: m[1], arch: m[2] }; continue; }
  if (!cur) continue;
  m = line.match(/(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/);
  if (m) { Object.assign(cur, { stack: +m[1], spillStores: +m[2], spillLoads: +m[3] }); continue; }
  m = line.match(/Used (\d+) registers(?:.*?(\d+) bytes smem)?/);
  if (m) { rows.push({ ...cur, regs: +m[1], smem: +(m[2] ?? 0) }); cur = null; }
}
const demangled = spawnSync('c++filt', { input: rows.map((r) => r.mangled).join('\n'), encoding: 'utf8' }).stdout.split('\n');
const short = (s) => s.replace(/^void /, '').replace(/gpt2_cuda::(\(anonymous namespace\)::)?/g, '').replace(/\(.*$/, '');
rows.forEach((r, i) => { r.name = short(demangled[i] || r.mangled); });
const archs = [...new Set(rows.map((r) => r.arch))].sort();
const names = [...new Set(rows.map((r) => r.name))].sort();
const spills = rows.filter((r) => r.spillStores || r.spillLoads);
const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' }).stdout?.match(/release [^\n]*/)?.[0] ?? 'unknown';
let md = '# CUDA plugin: ptxas report\n\n';
md += `nvcc ${nvcc}. Hot kernels: \`gemm_*\` (every matmul), \`flash_prefill\` / \`flash_decode_split\` (attention). `;
md += `From \`GPT2_CUDA_PTXAS_VERBOSE=1 node scripts/build-cuda.mjs\` (nvcc, -O3), turned into this table by \`scripts/ptxas-report.mjs\`. `;
md += `Registers per thread / spill stores+loads (bytes) / stack frame (bytes) / static shared memory (bytes) per kernel and architecture. `;
md += 'Dynamic shared memory (the attention kernels size it from head_dim) is not included.\n\n';
md += `Spills: ${spills.length === 0 ? 'none in any kernel on any architecture' : spills.map((r) => `${r.name} ${r.arch}`).join(', ')}.\n\n`;
md += `| kernel | ${archs.join(' | ')} |\n|---|${archs.map(() => '---').join('|')}|\n`;
for (const n of names) {
  const cells = archs.map((a) => {
    const r = rows.find((x) => x.name === n && x.arch === a);
    return r ? `${r.regs} regs, ${r.spillStores}+${r.spillLoads} spill, ${r.stack} stack, ${r.smem} smem` : '';
  });
  md += `| \`${n}\` | ${cells.join(' | ')} |\n`;
}
process.stdout.write(md);
