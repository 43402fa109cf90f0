// Golden parity through the public API on the default device (the CPU here): every `forward`,
// `incremental`, `greedy` and `embed_pool` case of ../shared/fixtures (Hugging Face
// transformers 4.41.2, float32) for the three tiny models (tests/helpers/parity-suite.ts).
import { goldenParity } from './helpers/parity-suite.js';

goldenParity('golden parity (transformers 4.41.2, float32)');
