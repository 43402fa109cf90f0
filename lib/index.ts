// gpt2-node public API. See docs/ARCHITECTURE.md and README.md.
export { ErrorCode } from './errors.js';
export { info } from './info.js';
export type { CpuInfo, CudaDevice, CudaInfo, SystemInfo } from './info.js';
export { Tokenizer } from './tokenizer.js';
export type { EncodeOptions, TokenDecoder } from './tokenizer.js';
