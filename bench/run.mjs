// Bench dispatcher: `npm run bench -- <name> [args]` runs bench/<name>.mjs with the args; `--list` lists them.
import { readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
const benches = readdirSync(dir).filter((f) => f.endsWith('.mjs') && f !== 'run.mjs').map((f) => f.slice(0, -4)).sort();
const [name, ...rest] = process.argv.slice(2);

if (!name || name === '--list' || name === '-l' || name === '--help' || name === '-h') {
  console.log(`usage: npm run bench -- <name> [args]   (runs bench/<name>.mjs)\nbenches: ${benches.join(', ')}`);
  process.exit(name && name !== '--list' && name !== '-l' && name !== '--help' && name !== '-h' ? 1 : 0);
}
if (!benches.includes(name)) {
  console.error(`unknown bench "${name}"; available: ${benches.join(', ')}`);
  process.exit(2);
}
const child = spawn(process.execPath, [join(dir, `${name}.mjs`), ...rest], { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 1));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
