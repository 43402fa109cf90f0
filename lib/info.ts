import { native, type NativeInfo } from './native.js';

export type SystemInfo = NativeInfo;

/** CPU features, default thread count and CUDA status of this machine. */
export function info(): SystemInfo {
  return native.info();
}
