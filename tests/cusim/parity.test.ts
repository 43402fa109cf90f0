// The golden fixtures through the public API on the CUDA backend, the plugin built with cusim
// (CUDA on the CPU): fp32 within each case's tolerance (1e-4), as on the CPU.
import { goldenParity } from '../helpers/parity-suite.js';

goldenParity('golden parity on CUDA under cusim (float32)', { device: 'cuda' });
