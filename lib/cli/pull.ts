// `gpt2-node pull <hub-id>`: downloads a model into the Hugging Face cache (or finds it
// there), with a progress line per file on stderr, and prints the snapshot folder.
import { pullModel, type DownloadProgress } from '../hub/index.js';
import { checkHubId, checkRevision } from '../hub/settings.js';
import { commonHelp, UsageError, type CliCommand } from './command.js';
import { Progress } from './progress.js';

/**
 * An onProgress for resolveModel/pullModel in the CLI: one Progress line per downloaded file,
 * one short line per cached file (also for --model <hub-id> in other commands).
 */
export function downloadProgressPrinter(stream: NodeJS.WritableStream): (p: DownloadProgress) => void {
  let current: { file: string; bar: Progress } | null = null;
  return (p) => {
    if (p.cached) {
      stream.write(`${p.file}: in the cache\n`);
      return;
    }
    if (current?.file !== p.file) {
      if (p.bytes === 0 && !p.done) return; // the bar starts with the first bytes
      current = { file: p.file, bar: new Progress({ unit: 'B', label: p.file, total: p.total, stream }) };
    }
    current.bar.setTotal(p.total);
    current.bar.tick(p.bytes, true);
    if (p.done) {
      current.bar.finish();
      current = null;
    }
  };
}

export const command: CliCommand = {
  name: 'pull',
  summary: 'download a model from the Hugging Face hub into the Hugging Face cache',
  help: `usage: gpt2-node pull <hub-id> [--revision <r>] [--json]

Downloads config.json, model.safetensors (or its shards) and the tokenizer files of a hub
model ('openai-community/gpt2', 'gpt2') into the Hugging Face cache, the layout Python's
huggingface_hub uses, so either reuses what the other downloaded. Interrupted downloads resume;
every file is checked against the hub's checksum. Prints the snapshot folder (a --model value).

Environment: HF_HOME or HF_HUB_CACHE (cache folder), HF_TOKEN (gated or private repos),
HF_HUB_OFFLINE=1 (no network: use the cache only), HF_ENDPOINT (a hub mirror).

  --revision <r>  branch, tag or commit hash (default main)
${commonHelp}`,
  options: { revision: { type: 'string' } },
  positionals: { min: 1, max: 1 },
  async run({ values, positionals, json, out }) {
    const id = positionals[0]!;
    const revision = values.revision as string | undefined;
    try {
      checkHubId(id, 'pull');
      if (revision !== undefined) checkRevision(revision, 'pull --revision');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const result = await pullModel(id, { revision, onProgress: downloadProgressPrinter(process.stderr) });
    out(json ? JSON.stringify(result, null, 2) : result.path);
  },
};
