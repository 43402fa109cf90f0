import { native, type NativeCpuInfo, type NativeCudaDevice, type NativeCudaInfo, type NativeInfo } from './native.js';

export type CpuInfo = NativeCpuInfo;
/** One CUDA device as the plugin reports it. */
export type CudaDevice = NativeCudaDevice;
/** CUDA status: whether the optional plugin is usable, and why not when it is not. */
export type CudaInfo = NativeCudaInfo;
export type SystemInfo = NativeInfo;

/**
 * CPU features, default thread count and CUDA status of this machine. The CUDA plugin is
 * looked for and loaded once per process (see docs/building.md): `$GPT2_CUDA_PLUGIN`, next
 * to the addon, then build-cuda/.
 */
export function info(): SystemInfo {
  return native.info();
}

/** "13.0" from CUDA's version encoding (13000); null for unknown, "none" for 0 (no driver). */
export function formatCudaVersion(v: number | null): string {
  if (v === null) return 'unknown';
  if (v === 0) return 'none';
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}
