// Argument checks shared by the public classes: unknown option names, typed option values,
// integer token ids.
import { ErrorCode, withCode } from './errors.js';

/** Throws a TypeError naming every key of `opts` that is not in `allowed`. */
export function checkOptions(opts: unknown, allowed: readonly string[], where: string): Record<string, unknown> {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object' || Array.isArray(opts)) {
    throw withCode(new TypeError(`${where}: options must be an object`), ErrorCode.InvalidArg);
  }
  const unknown = Object.keys(opts).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw withCode(
      new TypeError(`${where}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${allowed.join(', ')})`),
      ErrorCode.InvalidArg,
    );
  }
  return opts as Record<string, unknown>;
}

export function oneOf<T extends string>(value: unknown, allowed: readonly T[], name: string, where: string): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw withCode(
      new TypeError(`${where}: ${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')} (got ${describe(value)})`),
      ErrorCode.InvalidArg,
    );
  }
  return value as T;
}

/** A finite number, else a TypeError naming the option. */
export function finiteNumber(v: unknown, name: string, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw withCode(new TypeError(`${where}: ${name} must be a finite number (got ${describe(v)})`), ErrorCode.InvalidArg);
  }
  return v;
}

/** An integer, else a TypeError naming the option. */
export function integer(v: unknown, name: string, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw withCode(new TypeError(`${where}: ${name} must be an integer (got ${describe(v)})`), ErrorCode.InvalidArg);
  }
  return v;
}

/** undefined or a boolean, else a TypeError naming the option. */
export function optionalBoolean(v: unknown, name: string, where: string): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') {
    throw withCode(new TypeError(`${where}: ${name} must be a boolean (got ${describe(v)})`), ErrorCode.InvalidArg);
  }
  return v;
}

/** undefined or an AbortSignal (the `signal` option), else a TypeError. */
export function optionalSignal(v: unknown, where: string): AbortSignal | undefined {
  if (v !== undefined && !(v instanceof AbortSignal)) {
    throw withCode(new TypeError(`${where}: signal must be an AbortSignal`), ErrorCode.InvalidArg);
  }
  return v;
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '…' : v}'`;
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : String(v);
}

/**
 * Token ids as a Uint32Array: a Uint32Array passes as is; Int32Array, number[] and other
 * array-likes are checked (non-integer or negative -> TypeError) and copied. Ids >=
 * vocabSize -> RangeError naming `label` and the position. Empty -> RangeError.
 */
export function toTokenIds(input: unknown, vocabSize: number, label: string): Uint32Array {
  let ids: Uint32Array;
  if (input instanceof Uint32Array) {
    ids = input;
  } else if (ArrayBuffer.isView(input) || Array.isArray(input)) {
    if (input instanceof Float32Array || input instanceof Float64Array || input instanceof DataView) {
      throw withCode(new TypeError(`${label}: token ids must be integers (got a ${input.constructor.name})`), ErrorCode.InvalidArg);
    }
    const src = input as ArrayLike<number | bigint>;
    ids = new Uint32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const v = src[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
        throw withCode(
          new TypeError(`${label}, position ${i}: token id must be a non-negative integer (got ${describe(v)})`),
          ErrorCode.InvalidArg,
        );
      }
      if (v >= vocabSize) {
        throw withCode(
          new RangeError(`${label}, position ${i}: token id ${v} is out of range (vocab_size ${vocabSize})`),
          ErrorCode.OutOfRange,
        );
      }
      ids[i] = v;
    }
  } else {
    throw withCode(new TypeError(`${label}: token ids must be a Uint32Array or an array of integers (got ${describe(input)})`), ErrorCode.InvalidArg);
  }
  if (ids.length === 0) throw withCode(new RangeError(`${label}: no token ids (an empty sequence)`), ErrorCode.OutOfRange);
  if (input instanceof Uint32Array) {
    for (let i = 0; i < ids.length; i++) {
      if (ids[i]! >= vocabSize) {
        throw withCode(
          new RangeError(`${label}, position ${i}: token id ${ids[i]} is out of range (vocab_size ${vocabSize})`),
          ErrorCode.OutOfRange,
        );
      }
    }
  }
  return ids;
}
