// Loads the compiled addon (prebuilds/ first, then build/Release via node-gyp-build)
// and types the raw binding. Only lib/ code imports this; users import lib/index.ts.
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Package root: lib/ (sources under vitest) and dist/ (compiled) both sit one level down. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const require = createRequire(import.meta.url);
const load = require('node-gyp-build') as (dir: string) => unknown;

export interface NativeCpuInfo {
  brand: string;
  isa: 'avx512' | 'avx2' | 'baseline';
  features: Record<string, boolean>;
  defaultThreads: number;
}

export interface NativeInfo {
  cpu: NativeCpuInfo;
  [key: string]: unknown;
}

export interface NativeBinding {
  info(): NativeInfo;
  [key: string]: unknown;
}

export const native = load(packageRoot) as NativeBinding;
