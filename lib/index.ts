// gpt2-node public API. See docs/ARCHITECTURE.md and README.md.
export { ErrorCode } from './errors.js';
export { info } from './info.js';
export type { CpuInfo, CudaDevice, CudaInfo, SystemInfo } from './info.js';
export { Model } from './model.js';
export type { GPT2Config, LoadOptions, RandomOptions, ForwardOptions, ForwardResult, LogitsMode, Device, DType } from './model.js';
export { Sequence } from './sequence.js';
export { Sampler } from './sampler.js';
export type { SamplerOptions } from './sampler.js';
export { Generation } from './generation.js';
export type { GenerationToken, GenerationResult, GenerationUsage, FinishReason } from './generation.js';
export type { GenerateOptions } from './model.js';
export { Tokenizer } from './tokenizer.js';
export type { EncodeOptions, TokenDecoder } from './tokenizer.js';
export type { EmbedOptions, EmbedInput, EmbedWindow, Pooling, Truncate } from './embed.js';
export { SemanticIndex } from './semantic-index.js';
export type { SemanticIndexOptions, SearchOptions, SearchHit } from './semantic-index.js';
export { pullModel, resolveModel } from './hub/index.js';
export type { DownloadProgress, PullResult, PulledFile, ResolveOptions } from './hub/index.js';
