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

export interface NativeCudaDevice {
  index: number;
  name: string;
  /** "major.minor", e.g. "9.0" */
  computeCapability: string;
  /** bytes */
  totalMemory: number;
  multiprocessors: number;
}

export interface NativeCudaInfo {
  available: boolean;
  /** Why CUDA is not usable (null when available). */
  reason: string | null;
  /** The plugin that was loaded or tried (null when none was found). */
  pluginPath: string | null;
  /** CUDA encoding (12040 = 12.4); 0 = no driver installed; null = unknown. */
  driverVersion: number | null;
  /** The plugin's CUDA runtime version; null = unknown. */
  runtimeVersion: number | null;
  devices: NativeCudaDevice[];
}

export interface NativeInfo {
  cpu: NativeCpuInfo;
  cuda: NativeCudaInfo;
  [key: string]: unknown;
}

export interface NativeBinding {
  info(): NativeInfo;
  /** Runs the CUDA plugin's round-trip kernel on a device; throws (code ERR_GPT2_CUDA) on failure. */
  cudaSelfTest(device?: number): true;
  [key: string]: unknown;
}

export const native = load(packageRoot) as NativeBinding;
