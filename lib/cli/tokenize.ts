// `gpt2-node tokenize`: a text's token ids (or --decode ids back to text). Only the tokenizer
// is loaded: the bundled GPT-2 one by default, or a model folder's, never the weights.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isLocalModelDir } from '../hub/index.js';
import { Tokenizer } from '../tokenizer.js';
import { commonHelp, UsageError, type CliCommand, type CommandContext } from './command.js';
import { textArgument } from './jobs/job-options.js';
import { randomConfigFrom, resolveModelDir } from './model-options.js';

const GPT2_VOCAB_SIZE = 50257;

/** The tokenizer of --model (its files, else GPT-2's when vocab_size is 50257), or GPT-2's. */
async function tokenizerFrom(values: CommandContext['values']): Promise<Tokenizer> {
  const model = values.model as string | undefined;
  const random = values.random as string | undefined;
  if (model !== undefined && random !== undefined) throw new UsageError('give --model or --random, not both');
  const randomConfig = random === undefined ? undefined : randomConfigFrom(random);
  let vocabSize = typeof randomConfig === 'object' ? (randomConfig.vocab_size ?? GPT2_VOCAB_SIZE) : GPT2_VOCAB_SIZE;
  if (model === undefined) {
    if (vocabSize !== GPT2_VOCAB_SIZE) throw new Error(`--random with vocab_size ${vocabSize} has no tokenizer (only GPT-2's 50257 is bundled)`);
    return Tokenizer.gpt2();
  }
  const dir = await resolveModelDir(model);
  if (!isLocalModelDir(dir)) throw new Error(`model '${model}': no such folder`);
  const config = join(dir, 'config.json');
  if (existsSync(config)) vocabSize = (JSON.parse(readFileSync(config, 'utf8')) as { vocab_size?: number }).vocab_size ?? vocabSize;
  const tokenizer = await Tokenizer.fromModelDir(dir, vocabSize === GPT2_VOCAB_SIZE);
  if (!tokenizer) throw new Error(`${model}: no tokenizer files (vocab.json + merges.txt or tokenizer.json), and vocab_size ${vocabSize} is not GPT-2's`);
  return tokenizer;
}

/** "1,2,3", "1 2 3" or "[1, 2, 3]" as token ids. */
function parseIds(s: string): number[] {
  const parts = s.replace(/[[\]]/g, ' ').split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) throw new UsageError('--decode: no token ids given');
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new UsageError(`--decode: '${p}' is not a token id (give ids like 15496,11,995)`);
    return Number(p);
  });
}

export const command: CliCommand = {
  name: 'tokenize',
  summary: 'show the tokens of a text (or --decode ids)',
  help: `usage: gpt2-node tokenize [text] [--ids | --count] [--model <dir|hub-id>]
       gpt2-node tokenize --decode <ids> [--model ...]

The text is the argument, or stdin (one trailing newline dropped). Prints one token a
line (id, then the token's text as JSON); --json prints {"ids", "tokens", "count"}.
The bundled GPT-2 tokenizer is used unless --model names a folder or hub id (only its
tokenizer files are read).

  --ids                     print only the ids, on one line separated by spaces
  --count                   print only the number of tokens
  --decode <ids>            the text of token ids ("15496,11,995", spaces also work);
                            --json prints {"text"}
  -m, --model <dir|hub-id>  use this model's tokenizer
  --random <preset|json>    accepted for symmetry with the other commands (GPT-2's tokenizer)

${commonHelp}`,
  options: {
    ids: { type: 'boolean', default: false },
    count: { type: 'boolean', default: false },
    decode: { type: 'string' },
    model: { type: 'string', short: 'm' },
    random: { type: 'string' },
  },
  positionals: { min: 0, max: 1 },
  async run(ctx) {
    const { values } = ctx;
    if (values.ids === true && values.count === true) throw new UsageError('give --ids or --count, not both');
    const decode = values.decode as string | undefined;
    if (decode !== undefined) {
      if (ctx.positionals.length > 0 || values.ids === true || values.count === true) {
        throw new UsageError('--decode takes the ids as its value, without a text, --ids or --count');
      }
      const ids = parseIds(decode);
      const tokenizer = await tokenizerFrom(values);
      const bad = ids.find((id) => id >= tokenizer.vocabSize);
      if (bad !== undefined) throw new UsageError(`--decode: token id ${bad} is not in the vocabulary (size ${tokenizer.vocabSize})`);
      const text = tokenizer.decode(ids);
      ctx.out(ctx.json ? JSON.stringify({ text }) : text);
      return;
    }
    const text = await textArgument(ctx, 'text', false);
    const tokenizer = await tokenizerFrom(values);
    const ids = Array.from(tokenizer.encode(text));
    const tokens = () => ids.map((id) => tokenizer.decode([id]));
    if (ctx.json) {
      if (values.count === true) ctx.out(JSON.stringify({ count: ids.length }));
      else if (values.ids === true) ctx.out(JSON.stringify({ ids, count: ids.length }));
      else ctx.out(JSON.stringify({ ids, tokens: tokens(), count: ids.length }));
    } else if (values.count === true) {
      ctx.out(String(ids.length));
    } else if (values.ids === true) {
      ctx.out(ids.join(' '));
    } else {
      const t = tokens();
      const width = Math.max(0, ...ids.map((id) => String(id).length));
      if (ids.length) ctx.out(ids.map((id, i) => `${String(id).padStart(width)}  ${JSON.stringify(t[i])}`).join('\n'));
    }
  },
};
