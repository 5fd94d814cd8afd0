// Types of `stratacache/metrics` (js/metrics.js).
import type { TieredCache } from './index.js';

/** `cache.stats()` with `local.hitRatio` and `at` (ms since the epoch). */
export function statsSnapshot(cache: TieredCache, now?: number): ReturnType<TieredCache['stats']> & { at: number };

/** The part of an OpenTelemetry `Meter` used (from `@opentelemetry/api`). */
export interface MeterLike {
  createObservableCounter(name: string, options?: object): { addCallback(cb: (result: { observe(value: number, attributes?: object): void }) => void): void };
  createObservableGauge(name: string, options?: object): { addCallback(cb: (result: { observe(value: number, attributes?: object): void }) => void): void };
  createHistogram(name: string, options?: object): { record(value: number, attributes?: object): void };
}

/** Exports the counters of `caches` and a read-latency histogram through `meter`. */
export function registerOpenTelemetry(
  caches: Record<string, TieredCache>,
  meter: MeterLike,
  options?: { latency?: boolean },
): { instruments: Map<string, unknown>; close(): void };
