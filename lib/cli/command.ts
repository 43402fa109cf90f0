// What every CLI command module (lib/cli/<name>.ts) exports, and the helpers they share:
// option parsing with node:util parseArgs, usage errors (exit 2) and output.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface CommandContext {
  /** Parsed options (the command's own plus --json and --help). */
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
  /** --json: print one JSON document on stdout instead of text. */
  json: boolean;
  out: (text: string) => void;
}

export interface CliCommand {
  name: string;
  /** One line for `gpt2-node --help`. */
  summary: string;
  /** Usage line and option descriptions for `gpt2-node <name> --help`. */
  help: string;
  options: OptionSpec;
  /** Positional arguments accepted (default none). */
  positionals?: { min: number; max: number };
  /** Resolves with the exit code (default 0; e.g. 130 after SIGINT). */
  run(ctx: CommandContext): Promise<void | number> | void | number;
}

/** Bad command line: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Runs `probe` (a tiny call with the command's options on the loaded model): the TypeError or
 * RangeError it throws for a bad option becomes a usage error, without the `prefix` naming the API.
 */
export async function optionErrorsAsUsage(probe: () => Promise<unknown>, prefix: RegExp): Promise<void> {
  try {
    await probe();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(err.message.replace(prefix, ''));
    throw err;
  }
}

/** Options every command has. */
export const commonOptions: OptionSpec = {
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
};

export const commonHelp = `  --json        print the result as JSON on stdout
  -h, --help    show this help`;

/** Parses argv for `command`; parseArgs' own errors become UsageErrors. */
export function parseCommandArgs(command: CliCommand, argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...commonOptions, ...command.options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    // Keep parseArgs' first sentence ("Unknown option '--x'"), not its advice about '--'.
    const msg = (err as Error).message.split('\n')[0].split('. To specify')[0];
    throw new UsageError(`${command.name}: ${msg} (see gpt2-node ${command.name} --help)`);
  }
  const { min, max } = command.positionals ?? { min: 0, max: 0 };
  const n = parsed.positionals.length;
  if (!parsed.values.help && (n < min || n > max)) {
    throw new UsageError(
      n > max
        ? `${command.name}: unexpected argument '${parsed.positionals[max]}'`
        : `${command.name}: missing argument (see gpt2-node ${command.name} --help)`,
    );
  }
  return parsed;
}
