//! Exports a [`TieredCache`]'s counters through the [`metrics`] crate
//! facade, so whatever recorder the service installs (Prometheus through
//! `metrics-exporter-prometheus`, OpenTelemetry, StatsD...) sees them. The
//! core keeps the counters and does no I/O; this is the host's side.
//!
//! Call [`export`] periodically (or before each scrape): counters are set
//! to their absolute values, gauges to the current ones. Names and labels
//! are those of the Python and JS hosts (`docs/observability.md`).

use stratacache::{NamedCounters, TieredCache};

/// Publishes the counters of `cache` (named `cache_name` in the labels)
/// through the installed `metrics` recorder:
///
/// * `stratacache_tier_<counter>_total{cache, tier}` for every tier counter
///   (hits, misses, errors, fetches, bytes_read, chunked_reads,
///   skipped_cooling_down, ...) and the gauge
///   `stratacache_tier_cooling_down{cache, tier}` at `now_ms`;
/// * `stratacache_reads_<counter>_total{cache}`;
/// * `stratacache_local_<counter>_total{cache}` (hits, misses, inserts =
///   admissions, rejected, evictions, expirations) and the gauges
///   `stratacache_local_entries`, `stratacache_local_weight_bytes`,
///   `stratacache_local_hit_ratio`.
///
/// ```ignore
/// metrics_exporter_prometheus::PrometheusBuilder::new().install()?;
/// loop {
///     metrics_export::export("default", &cache, now_ms());
///     std::thread::sleep(std::time::Duration::from_secs(10));
/// }
/// ```
pub fn export<V: Clone>(cache_name: &str, cache: &TieredCache<V>, now_ms: u64) {
    let cache_label = cache_name.to_owned();
    for (i, (config, stats)) in cache
        .config()
        .tiers
        .iter()
        .zip(cache.tier_stats())
        .enumerate()
    {
        let labels = [
            ("cache", cache_label.clone()),
            ("tier", config.name.clone()),
        ];
        for (name, value) in stats.named() {
            metrics::counter!(format!("stratacache_tier_{name}_total"), &labels).absolute(value);
        }
        let cooling = if cache.is_cooling_down(i, now_ms) {
            1.0
        } else {
            0.0
        };
        metrics::gauge!("stratacache_tier_cooling_down", &labels).set(cooling);
    }
    let labels = [("cache", cache_label.clone())];
    for (name, value) in cache.read_stats().named() {
        metrics::counter!(format!("stratacache_reads_{name}_total"), &labels).absolute(value);
    }
    if let Some(local) = cache.local_stats() {
        for (name, value) in local.named() {
            match name {
                "entries" => {
                    metrics::gauge!("stratacache_local_entries", &labels).set(value as f64)
                }
                "weight" => {
                    metrics::gauge!("stratacache_local_weight_bytes", &labels).set(value as f64)
                }
                _ => metrics::counter!(format!("stratacache_local_{name}_total"), &labels)
                    .absolute(value),
            }
        }
        let asked = local.hits + local.misses;
        let ratio = if asked == 0 {
            0.0
        } else {
            local.hits as f64 / asked as f64
        };
        metrics::gauge!("stratacache_local_hit_ratio", &labels).set(ratio);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use stratacache::{TierConfig, TieredConfig};

    #[test]
    fn every_tier_counter_and_the_local_gauges_reach_the_recorder() {
        let config = TieredConfig::new(vec![TierConfig::memcached("memcached")]);
        let cache: TieredCache<u32> = TieredCache::new(config).unwrap();
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || export("default", &cache, 0));
        let snapshot = snapshotter.snapshot().into_vec();
        let find = |name: &str, tier: Option<&str>| {
            snapshot.iter().find(|(key, _, _, _)| {
                key.key().name() == name
                    && match tier {
                        None => true,
                        Some(t) => key
                            .key()
                            .labels()
                            .any(|l| l.key() == "tier" && l.value() == t),
                    }
            })
        };
        for counter in [
            "hits",
            "misses",
            "errors",
            "chunked_reads",
            "skipped_cooling_down",
        ] {
            let name = format!("stratacache_tier_{counter}_total");
            let (_, _, _, value) =
                find(&name, Some("memcached")).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(*value, DebugValue::Counter(0));
        }
        assert!(find("stratacache_tier_cooling_down", Some("memcached")).is_some());
        assert!(find("stratacache_reads_loads_total", None).is_some());
        assert!(find("stratacache_local_evictions_total", None).is_some());
        assert!(find("stratacache_local_hit_ratio", None).is_some());
    }
}
