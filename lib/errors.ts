// Error codes set on every error the native core raises (see native/core/error.h).
// Errors keep their JavaScript kind: TypeError for a wrong type or unknown option,
// RangeError for a value out of range, Error for files and devices.
export const ErrorCode = {
  InvalidArg: 'ERR_GPT2_INVALID_ARG',
  OutOfRange: 'ERR_GPT2_OUT_OF_RANGE',
  FileFormat: 'ERR_GPT2_FILE_FORMAT',
  FileIO: 'ERR_GPT2_FILE_IO',
  Disposed: 'ERR_GPT2_DISPOSED',
  Cuda: 'ERR_GPT2_CUDA',
  OutOfMemory: 'ERR_GPT2_OUT_OF_MEMORY',
  KvCacheFull: 'ERR_GPT2_KV_CACHE_FULL',
  Aborted: 'ERR_GPT2_ABORTED',
  Internal: 'ERR_GPT2_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Attaches a code to a JS-side error, matching what native errors carry. */
export function withCode<E extends Error>(err: E, code: ErrorCode): E & { code: ErrorCode } {
  return Object.assign(err, { code });
}
