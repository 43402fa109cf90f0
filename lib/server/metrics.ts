// Prometheus metrics for one server, in its own prom-client Registry (never the global one, so
// two servers in a process, or a host app's metrics, do not collide). Engine counters are read
// from the Model at scrape time.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineStats, Model } from '../model.js';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'gpt2_server_requests_total', help: 'HTTP requests answered, by route and status',
    labelNames: ['route', 'status'] as const, registers: [this.registry] });
  readonly inFlight = new Gauge({ name: 'gpt2_server_requests_in_flight', help: 'Model requests (embeddings, completions) being served',
    registers: [this.registry] });
  readonly activeSequences = new Gauge({ name: 'gpt2_server_active_sequences',
    help: 'Sequences this server has submitted to the engine and not yet finished (generations and embedding inputs)',
    registers: [this.registry] });
  readonly rejected = new Counter({ name: 'gpt2_server_rejected_total', help: 'Requests refused before any model work, by reason',
    labelNames: ['reason'] as const, registers: [this.registry] });
  readonly latency = new Histogram({ name: 'gpt2_server_request_duration_seconds', help: 'Time from request to the end of the response',
    labelNames: ['route'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly timeToFirstToken = new Histogram({ name: 'gpt2_server_time_to_first_token_seconds',
    help: 'Completions: time from request to the first generated token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly requestSequences = new Histogram({ name: 'gpt2_server_request_batch_size',
    help: 'Sequences per request (embedding inputs, or prompts x n for completions)', labelNames: ['route'] as const,
    buckets: SIZE_BUCKETS, registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'gpt2_server_prompt_tokens_total', help: 'Prompt / input tokens processed',
    labelNames: ['route'] as const, registers: [this.registry] });
  readonly completionTokens = new Counter({ name: 'gpt2_server_completion_tokens_total', help: 'Tokens generated (counted as they are generated)',
    registers: [this.registry] });
  readonly tokenizedTexts = new Counter({ name: 'gpt2_server_tokenized_texts_total',
    help: 'Texts sent to the tokenizer (requests refused by the cheap checks never get here)', registers: [this.registry] });

  constructor(model: Model) {
    const engineValue = (pick: (s: Model['engineStats']) => number) =>
      function (this: Gauge) {
        if (!model.disposed) this.set(pick(model.engineStats));
      };
    new Gauge({ name: 'gpt2_engine_steps', help: 'Forward steps the model engine has run (a counter; rate() gives steps/s)',
      registers: [this.registry], collect: engineValue((s) => s.steps) });
    new Gauge({ name: 'gpt2_engine_max_step_sequences', help: 'The most sequences one engine step has held (the largest batch)',
      registers: [this.registry], collect: engineValue((s) => s.maxStepSequences) });
    new Gauge({ name: 'gpt2_engine_tokens', help: 'Input tokens the engine has run (a counter; rate() gives tokens/s)',
      registers: [this.registry], collect: engineValue((s) => s.tokens) });
    this.registry.registerMetric(engineHistogram(model, 'gpt2_engine_step_sequences',
      'Sequences per engine step (the batch size: decode rows and prompt chunks of every request)',
      1, (s) => s.stepSequenceBuckets, (s) => s.sequences));
    this.registry.registerMetric(engineHistogram(model, 'gpt2_engine_step_tokens', 'Input tokens per engine step',
      16, (s) => s.stepTokenBuckets, (s) => s.tokens));
    new Gauge({ name: 'gpt2_engine_kv_free_blocks', help: 'Free blocks in the paged KV cache',
      registers: [this.registry], collect: function (this: Gauge) {
        if (!model.disposed) this.set(model.stats.kvFreeBlocks);
      } });
  }
}

/**
 * A Prometheus histogram read from the engine's own step counters at scrape time (the engine
 * thread counts steps into power-of-two buckets; observing each step from JS would cost a
 * thread hop per step). Bucket i's upper bound is firstBound * 2^i; the last is +Inf.
 */
function engineHistogram(model: Model, name: string, help: string, firstBound: number,
  buckets: (s: EngineStats) => number[], sum: (s: EngineStats) => number): Parameters<Registry['registerMetric']>[0] {
  const get = () => {
    const s = model.disposed ? null : model.engineStats;
    const counts = s ? buckets(s) : [];
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    let cumulative = 0;
    counts.forEach((c, i) => {
      cumulative += c;
      const le = i === counts.length - 1 ? '+Inf' : firstBound * 2 ** i;
      values.push({ metricName: `${name}_bucket`, labels: { le }, value: cumulative });
    });
    values.push({ metricName: `${name}_sum`, labels: {}, value: s ? sum(s) : 0 });
    values.push({ metricName: `${name}_count`, labels: {}, value: s ? s.steps : 0 });
    return { name, help, type: 'histogram', values, aggregator: 'sum' };
  };
  return { name, help, get, reset() {} } as unknown as Parameters<Registry['registerMetric']>[0];
}
