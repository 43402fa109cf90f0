import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

// The cusim project loads the plugin built by `node scripts/build-cuda.mjs --cusim`.
const cusimPlugin = resolve(import.meta.dirname, 'build-cusim/libgpt2_cuda.so');

// The default project runs everywhere (CPU, plus the CUDA plugin's no-device path).
// `cusim` runs the CUDA kernels under ../shared/cusim (npm run test:cusim).
export default defineConfig({
  test: {
    reporters: ['default', './tests/summary-reporter.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: { name: 'default', include: ['tests/**/*.test.ts'], exclude: ['tests/cusim/**', 'tests/gpu/**'] },
      },
      {
        extends: true,
        test: {
          name: 'cusim',
          include: ['tests/cusim/**/*.test.ts'],
          env: { GPT2_CUDA_PLUGIN: process.env.GPT2_CUDA_PLUGIN ?? cusimPlugin },
        },
      },
      {
        extends: true,
        test: { name: 'gpu', include: ['tests/gpu/**/*.test.ts'] },
      },
    ],
  },
});
