// `gpt2-node info`: CPU features and threads, and the CUDA status with its reason.
import { formatCudaVersion, info, type SystemInfo } from '../info.js';
import { commonHelp, type CliCommand } from './command.js';

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

export function formatInfo(i: SystemInfo): string {
  const features = Object.entries(i.cpu.features)
    .filter(([, on]) => on)
    .map(([name]) => name);
  const lines = [
    `CPU:      ${i.cpu.brand || 'unknown'}`,
    `  ISA:      ${i.cpu.isa}`,
    `  features: ${features.length ? features.join(' ') : 'none beyond baseline x86-64'}`,
    `  threads:  ${i.cpu.defaultThreads}`,
  ];
  const c = i.cuda;
  lines.push(`CUDA:     ${c.available ? 'available' : `not available: ${c.reason}`}`);
  if (c.pluginPath) lines.push(`  plugin:   ${c.pluginPath}`);
  if (c.driverVersion !== null || c.runtimeVersion !== null) {
    lines.push(`  driver:   ${formatCudaVersion(c.driverVersion)}, runtime ${formatCudaVersion(c.runtimeVersion)}`);
  }
  for (const d of c.devices) {
    lines.push(`  device ${d.index}: ${d.name}, compute ${d.computeCapability}, ${gib(d.totalMemory)}, ${d.multiprocessors} SMs`);
  }
  return lines.join('\n');
}

export const command: CliCommand = {
  name: 'info',
  summary: 'show CPU features, threads and CUDA status',
  help: `usage: gpt2-node info [--json]

Shows the CPU (brand, instruction set used, features, default threads) and whether the
CUDA backend is usable, with the reason when it is not.

${commonHelp}`,
  options: {},
  run({ json, out }) {
    const i = info();
    if (json) out(JSON.stringify({ node: process.version, platform: `${process.platform}-${process.arch}`, ...i }, null, 2));
    else out(formatInfo(i));
  },
};
