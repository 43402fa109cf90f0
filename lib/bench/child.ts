// One bench row in its own process (forked by run.ts): loads the model on the row's device and
// dtype, measures it, and sends the result over the IPC channel. A row per process keeps peak
// RSS and thread pools per row, and a CUDA failure (or crash) cannot take down the other rows.
import { loadModelFrom } from '../cli/model-options.js';
import { Progress } from '../cli/progress.js';
import type { GPT2Config } from '../model.js';
import { measureModel, metricId, stepsPerRow, type BenchSettings, type RowMeasurement } from './measure.js';

/** What the parent sends: the model options as the CLI spells them, and the settings. */
export interface RowSpec {
  label: string;
  /** --model / --random / --seed / --device / --dtype / --threads / --kv-cache-tokens values. */
  modelValues: Record<string, string>;
  settings: BenchSettings;
  /** Draw progress on stderr. */
  progress: boolean;
}

export type RowReply =
  | ({ ok: true; device: string; dtype: string; config: GPT2Config } & RowMeasurement)
  | { ok: false; error: string };

async function runRow(spec: RowSpec): Promise<RowReply> {
  const t = performance.now();
  const model = await loadModelFrom(spec.modelValues);
  const loadS = (performance.now() - t) / 1000;
  try {
    const progress = spec.progress
      ? new Progress({ unit: 'runs', label: `bench ${spec.label}`, total: stepsPerRow(spec.settings) })
      : undefined;
    const m = await measureModel(model, spec.settings, () => progress?.tick());
    progress?.finish();
    m.metrics[metricId.load] = loadS;
    // maxRSS is in KiB (libuv's ru_maxrss, normalised across platforms).
    m.metrics[metricId.peakRss] = process.resourceUsage().maxRSS * 1024;
    // The CUDA backend does not report device memory in use; weights and KV cache are listed apart.
    m.metrics[metricId.peakDevice] = null;
    return { ok: true, device: model.device, dtype: model.dtype, config: model.config, ...m };
  } finally {
    model.dispose();
  }
}

process.once('message', (spec: RowSpec) => {
  runRow(spec).then(
    (reply) => process.send!(reply, () => process.exit(0)),
    (err: unknown) => {
      const e = err as { message?: string; code?: string };
      const error = `${e?.message ?? String(err)}${e?.code ? ` [${e.code}]` : ''}`;
      process.send!({ ok: false, error } satisfies RowReply, () => process.exit(0));
    },
  );
});
