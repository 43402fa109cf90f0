// Hugging Face hub downloads: resolves a hub id ('openai-community/gpt2', 'gpt2') to a local
// folder in the Hugging Face cache layout (HF_HOME/hub/models--owner--name/snapshots/<sha>),
// so files Python's huggingface_hub downloaded are reused and vice versa.
// INTERFACE ONLY (session 4 integrator): the hub helper implements the download side.
import { existsSync, statSync } from 'node:fs';
import { ErrorCode, withCode } from '../errors.js';

export interface DownloadProgress {
  /** Repository file being fetched ('model.safetensors'). */
  file: string;
  /** Bytes on disk so far (including a resumed part), and the total when known. */
  bytes: number;
  total: number | null;
  /** Set once, when the file is complete and verified. */
  done: boolean;
}

export interface ResolveOptions {
  /** Branch, tag or commit (default 'main'). */
  revision?: string;
  /** Called as bytes arrive (throttled by the caller if needed). */
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

/** True when `s` names an existing local folder (then it is used as is, never downloaded). */
export function isLocalModelDir(s: string): boolean {
  return existsSync(s) && statSync(s).isDirectory();
}

/**
 * A local folder as is; otherwise a hub id, downloaded (or found) in the cache.
 * Resolves with the folder holding config.json, the weights and tokenizer files.
 */
export async function resolveModel(idOrDir: string, _opts: ResolveOptions = {}): Promise<string> {
  if (isLocalModelDir(idOrDir)) return idOrDir;
  throw withCode(new Error(`model '${idOrDir}': no such folder`), ErrorCode.FileIO);
}
