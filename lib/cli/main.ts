#!/usr/bin/env node
// gpt2-node command line. One module per command under lib/cli/ (see command.ts); commands
// are imported only when run, so `--help` does not load the native addon.
// Exit codes: 0 ok, 1 runtime error, 2 usage error, 130 interrupted. Errors are printed as one line on stderr.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandArgs, UsageError, type CliCommand } from './command.js';

interface CommandEntry {
  summary: string;
  load: () => Promise<CliCommand>;
}

// Add new commands here (DESIGN.md: pull, tokenize, generate, embed, serve, bench).
const commands: Record<string, CommandEntry> = {
  info: { summary: 'show CPU features, threads and CUDA status', load: async () => (await import('./info.js')).command },
  pull: { summary: 'download a model from the Hugging Face hub into the Hugging Face cache', load: async () => (await import('./pull.js')).command },
  serve: { summary: 'OpenAI-compatible HTTP server (embeddings, completions, metrics)', load: async () => (await import('./serve.js')).command },
  tokenize: { summary: 'show the tokens of a text (or --decode ids)', load: async () => (await import('./tokenize.js')).command },
  generate: { summary: 'continue a prompt, or a JSONL file of prompts (resumable)', load: async () => (await import('./generate.js')).command },
  embed: { summary: 'embed a text, or a JSONL file of texts (JSONL or .npy, resumable)', load: async () => (await import('./embed.js')).command },
  bench: { summary: 'benchmark every device and dtype side by side (tokens/s, TTFT, memory)', load: async () => (await import('./bench.js')).command },
};

function version(): string {
  const pkg = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

function mainHelp(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const list = Object.entries(commands)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `usage: gpt2-node <command> [options]

Commands:
${list}

Every command takes --json (machine-readable output) and --help.
Options: -h, --help  show this help;  -v, --version  print the version`;
}

const out = (text: string) => process.stdout.write(`${text}\n`);

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(`${mainHelp()}\n`);
    return 2;
  }
  if (name === '-h' || name === '--help' || name === 'help') {
    out(mainHelp());
    return 0;
  }
  if (name === '-v' || name === '--version') {
    out(version());
    return 0;
  }
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!entry) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(commands).join(', ')})`);
  const command = await entry.load();
  const { values, positionals } = parseCommandArgs(command, rest);
  if (values.help) {
    out(command.help);
    return 0;
  }
  return (await command.run({ values, positionals, json: values.json === true, out })) ?? 0;
}

function oneLine(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown };
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  const code = typeof e?.code === 'string' && e.code.startsWith('ERR_GPT2') ? ` [${e.code}]` : '';
  return `${msg.replace(/\s*\n\s*/g, ' ')}${code}`;
}

// A reader that closed the pipe early (`| head`) ends the command quietly, as SIGPIPE does
// other Unix tools (exit 128 + 13).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(141);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`gpt2-node: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`gpt2-node: error: ${oneLine(err)}\n`);
      if (process.env.GPT2_DEBUG) console.error(err);
      process.exitCode = 1;
    }
  },
);
