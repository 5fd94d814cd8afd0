// The writes the core hands out (stores, deletes): an explicit write is
// awaited; a read's go to a bounded background queue (handed to the
// worker's waitUntil as well when the caller gives one), counted, drained
// by flush(). The order within a tier is the core's (a value's chunks
// before its manifest, a read's lease releases after its stores).

import { decodeSteps } from './wire.js';
import { withTimeout } from './config.js';

const NONE = [];
const size = (step) => step.entries?.length ?? step.keys.length;
const keysOf = (steps) => steps.flatMap((s) => s.keys ?? s.entries.map((e) => e.key));

export class Writes {
  #tiers;
  #names;
  #timeoutMs;
  #wrote;
  #report;
  #limits;
  #pending = new Set();
  #pendingBytes = 0;
  /** The newest queued write of each remote key: an explicit write waits for it. */
  #inflight = new Map();
  counts = { queued: 0, written: 0, dropped: 0, failed: 0 };

  /**
   * `wrote(tier, ok)` tells the core how a write went (a failure counts
   * toward the tier's cool-down, a success ends one);
   * `report(error, name)` is the cache's onError; `limits` the
   * backgroundWrites option (false: a read awaits its writes).
   */
  constructor(tiers, names, timeoutMs, wrote, report, limits = true) {
    this.#tiers = tiers;
    this.#names = names;
    this.#timeoutMs = timeoutMs;
    this.#wrote = wrote;
    this.#report = report;
    this.#limits = limits === false ? null : { maxSteps: limits.maxSteps ?? 1000, maxBytes: limits.maxBytes ?? 64 * 1024 * 1024 };
  }

  get pending() {
    return this.#pending.size;
  }

  /** An explicit write (the core's steps as bytes): after the queued writes of its keys, awaited. */
  async now(bytes) {
    const steps = decodeSteps(bytes);
    const earlier = keysOf(steps).map((k) => this.#inflight.get(k)).filter(Boolean);
    if (earlier.length) await Promise.allSettled(earlier);
    await this.#all(steps);
  }

  /** A read's writes: queued (bounded, counted); awaited with backgroundWrites: false or `wait`. */
  behind(steps, options, wait) {
    if (steps.length === 0) return undefined;
    if (this.#limits === null || wait) return this.#all(steps);
    const n = steps.reduce((sum, s) => sum + size(s), 0);
    const bytes = steps.reduce((sum, s) => sum + (s.entries?.reduce((b, e) => b + e.value.length, 0) ?? 0), 0);
    const counts = this.counts;
    if (this.#pending.size >= this.#limits.maxSteps || this.#pendingBytes + bytes > this.#limits.maxBytes) {
      counts.dropped += n;
      return undefined;
    }
    counts.queued += n;
    this.#pendingBytes += bytes;
    const keys = keysOf(steps);
    const job = this.#all(steps).then((done) => {
      for (const [step, ok] of done) ok ? (counts.written += size(step)) : (counts.failed += size(step));
      this.#pendingBytes -= bytes;
      for (const k of keys) if (this.#inflight.get(k) === job) this.#inflight.delete(k);
    });
    for (const k of keys) this.#inflight.set(k, job);
    this.track(job, options);
    return undefined;
  }

  /** Keeps `promise` for flush(), and hands it to the worker's waitUntil when the caller gave one. */
  track(promise, options) {
    this.#pending.add(promise);
    promise.finally(() => this.#pending.delete(promise));
    const waitUntil = options?.waitUntil ?? (options?.ctx ? (p) => options.ctx.waitUntil(p) : undefined);
    waitUntil?.(promise);
    return promise;
  }

  async flush() {
    while (this.#pending.size) await Promise.allSettled([...this.#pending]);
  }

  /** Each tier's steps one after another, tiers at once; `[step, landed]` per step. */
  async #all(steps) {
    const byTier = new Map();
    for (const step of steps) byTier.set(step.tier, [...(byTier.get(step.tier) ?? NONE), step]);
    const done = await Promise.all(
      [...byTier.values()].map(async (list) => {
        const ok = [];
        for (const step of list) ok.push([step, await this.#one(step)]);
        return ok;
      }),
    );
    return done.flat();
  }

  /** One step; true if it landed. Best effort: a failure is counted (cooling the tier down), reported, never thrown; a success ends a cool-down. */
  async #one(step) {
    const tier = this.#tiers[step.tier];
    const name = this.#names[step.tier];
    const timeout = tier.timeoutMs ?? this.#timeoutMs;
    try {
      if (step.kind === 'store') await withTimeout(tier.setMany(step.entries), timeout, `setMany on tier ${name}`);
      else await withTimeout(tier.deleteMany(step.keys), timeout, `deleteMany on tier ${name}`);
      this.#wrote(step.tier, true);
      return true;
    } catch (error) {
      this.#wrote(step.tier, false);
      this.#report(error, name);
      return false;
    }
  }
}
