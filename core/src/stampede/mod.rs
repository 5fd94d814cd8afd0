//! Stampede control: who loads a cold key, who waits, and when to refresh.
//!
//! A cache stampede (dog-piling) happens when many readers miss the same key
//! at once and all recompute it. This module holds the pure bookkeeping and
//! decisions that prevent it; the host owns all waiting and I/O.
//!
//! | piece | what it decides |
//! |---|---|
//! | [`SingleFlight`] | inside one process: the first reader of a cold key loads it, the others wait for its result |
//! | [`lease_key`], [`LeasePolicy`], [`LeaseWait`] | across processes: one process holds a short lock key in a remote tier and loads; the others wait a bounded time or serve stale |
//! | [`should_refresh_early`] | XFetch (Vattani et al., VLDB 2015): refresh a value shortly *before* it expires, with a probability that grows as expiry nears, so one reader refreshes it while the others still hit |
//! | [`Freshness`] | stale-while-revalidate: between the soft and the hard expiry a value is served while it is refreshed |
//! | [`jitter_ttl`] | spreads the expiries of entries written together, so they do not all expire in the same second |
//! | [`replica_keys`], [`pick_replica`] | a hot key written under R keys (landing on different memcached nodes) and read from one chosen at random |
//!
//! Nothing here reads a clock or draws a random number: every function takes
//! `now` in milliseconds and, where it needs chance, a random number from the
//! host. Random numbers are either an `f64` uniform in `[0, 1]` (Python's
//! `random.random()`, JS `Math.random()` and `rand`'s `gen::<f64>()` can be
//! passed as they are; see each function for the edges) or a `u64` uniform
//! over all values.
//!
//! Throughout, an expiry of `0` (or `None`) means "no such expiry", matching
//! the envelope's encoding.

mod flight;
mod lease;
mod replicas;
mod xfetch;

pub use flight::*;
pub use lease::*;
pub use replicas::*;
pub use xfetch::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    // --- single-flight -----------------------------------------------------

    fn lead<K: Hash + Eq + Clone>(flights: &mut SingleFlight<K>, key: K) -> LeadToken {
        match flights.claim(key) {
            Claim::Lead(token) => token,
            other => panic!("expected a lead, got {other:?}"),
        }
    }

    fn wait<K: Hash + Eq + Clone>(flights: &mut SingleFlight<K>, key: K) -> WaitId {
        match flights.claim(key) {
            Claim::Wait(id) => id,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn first_claim_leads_later_claims_wait() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, "a");
        let w1 = wait(&mut f, "a");
        let w2 = wait(&mut f, "a");
        let u = lead(&mut f, "b");
        assert_ne!(t, u);
        assert!(w1 < w2);
        assert_eq!(f.len(), 2);
        assert_eq!(f.waiters(&"a"), 2);
        assert_eq!(f.waiters(&"b"), 0);
        assert_eq!(f.waiters(&"zzz"), 0);
        assert_eq!(f.key_of(t), Some(&"a"));
        assert_eq!(f.key_of_waiter(w2), Some(&"a"));
        assert_eq!(f.finish(t), Ok(vec![w1, w2]));
        assert_eq!(f.key_of_waiter(w2), None);
        assert_eq!(f.finish(u), Ok(vec![]));
        assert!(f.is_empty());
        let s = f.stats();
        assert_eq!((s.flights_started, s.waiters_joined, s.finished), (2, 2, 2));
    }

    #[test]
    fn stale_tokens_are_refused_and_change_nothing() {
        let mut f = SingleFlight::new();
        let old = lead(&mut f, "k");
        assert_eq!(f.finish(old), Ok(vec![]));
        let new = lead(&mut f, "k");
        let w = wait(&mut f, "k");
        assert_eq!(f.finish(old), Err(FlightError::StaleToken(old)));
        assert_eq!(
            f.abandon(old, AbandonPolicy::ReleaseAll),
            Err(FlightError::StaleToken(old))
        );
        assert!(!f.is_current(old));
        assert!(f.is_current(new));
        assert_eq!(f.key_of(old), None);
        assert_eq!(f.waiters(&"k"), 1);
        // Made-up tokens, including 0 and a wait id, are refused too.
        for raw in [0, u64::MAX, w.into_raw()] {
            assert!(f.finish(LeadToken::from_raw(raw)).is_err());
        }
        assert_eq!(f.stats().stale_tokens, 5);
        assert_eq!(f.finish(new), Ok(vec![w]));
        assert!(FlightError::StaleToken(old).to_string().contains("stale"));
    }

    #[test]
    fn raw_ids_round_trip_and_are_never_zero() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, 1u8);
        let w = wait(&mut f, 1u8);
        assert_ne!(t.into_raw(), 0);
        assert_ne!(w.into_raw(), 0);
        assert_ne!(t.into_raw(), w.into_raw());
        assert_eq!(WaitId::from_raw(w.into_raw()), w);
        assert_eq!(f.finish(LeadToken::from_raw(t.into_raw())), Ok(vec![w]));
    }

    #[test]
    fn abandon_release_all_releases_every_waiter() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, "k");
        let ws: Vec<_> = (0..3).map(|_| wait(&mut f, "k")).collect();
        let out = f.abandon(t, AbandonPolicy::ReleaseAll).unwrap();
        assert_eq!(out.release, ws);
        assert_eq!(out.new_leader, None);
        assert!(!f.is_in_flight(&"k"));
        assert!(!f.withdraw(ws[0]));
        assert_eq!(f.stats().abandoned, 1);
        assert_eq!(AbandonPolicy::default(), AbandonPolicy::ReleaseAll);
    }

    #[test]
    fn abandon_promote_next_hands_the_flight_to_the_earliest_waiter() {
        let mut f = SingleFlight::new();
        let t1 = lead(&mut f, "k");
        let w1 = wait(&mut f, "k");
        let w2 = wait(&mut f, "k");
        let out = f.abandon(t1, AbandonPolicy::PromoteNext).unwrap();
        assert!(out.release.is_empty());
        let (promoted, t2) = out.new_leader.unwrap();
        assert_eq!(promoted, w1);
        assert!(f.is_current(t2) && !f.is_current(t1));
        assert!(!f.withdraw(w1), "a promoted waiter is no longer waiting");
        assert_eq!(f.waiters(&"k"), 1);
        // A new reader still waits (no second leader).
        let w3 = wait(&mut f, "k");
        assert_eq!(f.finish(t1), Err(FlightError::StaleToken(t1)));
        assert_eq!(f.finish(t2), Ok(vec![w2, w3]));
        assert_eq!(f.stats().promoted, 1);
    }

    #[test]
    fn abandon_promote_next_without_waiters_ends_the_flight() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, "k");
        let w = wait(&mut f, "k");
        assert!(f.withdraw(w));
        assert_eq!(
            f.abandon(t, AbandonPolicy::PromoteNext),
            Ok(Abandoned::default())
        );
        assert!(f.is_empty());
        assert!(f.claim("k").is_lead());
    }

    #[test]
    fn withdraw_only_removes_that_waiter() {
        let mut f = SingleFlight::new();
        let t = lead(&mut f, "k");
        let w1 = wait(&mut f, "k");
        let w2 = wait(&mut f, "k");
        assert!(f.withdraw(w1));
        assert!(!f.withdraw(w1));
        assert!(!f.withdraw(WaitId::from_raw(999)));
        assert!(f.is_in_flight(&"k"), "the leader still loads");
        assert_eq!(f.finish(t), Ok(vec![w2]));
        assert_eq!(f.stats().withdrawn, 1);
    }

    #[test]
    fn claim_many_splits_and_deduplicates() {
        let mut f = SingleFlight::new();
        let tb = lead(&mut f, "b".to_string());
        let keys = ["a", "b", "a", "c", "b", "c"].map(String::from);
        let batch = f.claim_many(keys);
        let leads: Vec<&str> = batch.lead.iter().map(|(k, _)| k.as_str()).collect();
        let waits: Vec<&str> = batch.wait.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(leads, ["a", "c"]);
        assert_eq!(waits, ["b"]);
        assert_eq!(f.waiters(&"b".to_string()), 1);
        assert_eq!(f.waiters(&"a".to_string()), 0);
        // A second batch waits for everything the first one leads.
        let again = f.claim_many(["a", "c", "d"].map(String::from));
        assert_eq!(again.lead.len(), 1);
        assert_eq!(again.wait.len(), 2);
        assert_eq!(f.finish(tb).unwrap(), vec![batch.wait[0].1]);
        let empty = f.claim_many(Vec::<String>::new());
        assert!(empty.lead.is_empty() && empty.wait.is_empty());
    }

    // --- lease ---------------------------------------------------------------

    #[test]
    fn lease_key_is_internal_and_valid() {
        let key = lease_key("course_blocks|v3|abc");
        assert!(key.starts_with("tiercache.lease|v1|"));
        assert_ne!(lease_key("a"), lease_key("b"));
        assert!(crate::key::is_valid_memcached_key(&key));
        let long = lease_key(&"x".repeat(1_000));
        assert!(crate::key::is_valid_memcached_key(&long));
        assert!(long.len() <= crate::key::DEFAULT_MAX_KEY_LEN);
    }

    #[test]
    fn lease_decisions() {
        let p = LeasePolicy {
            ttl_ms: 1_000,
            max_wait_ms: 250,
            poll_interval_ms: 100,
        };
        use LeaseDecision::*;
        use LeaseOutcome::*;
        for stale in [false, true] {
            for waited in [0, 100, 250, 10_000] {
                assert_eq!(p.decide(Acquired, stale, waited), Load);
                assert_eq!(p.decide(TierError, stale, waited), LoadWithoutLease);
                if stale {
                    assert_eq!(p.decide(Held, true, waited), ServeStale);
                }
            }
        }
        assert_eq!(p.decide(Held, false, 0), WaitAndRetry { after_ms: 100 });
        assert_eq!(p.decide(Held, false, 200), WaitAndRetry { after_ms: 50 });
        assert_eq!(p.decide(Held, false, 249), WaitAndRetry { after_ms: 1 });
        assert_eq!(p.decide(Held, false, 250), LoadWithoutLease);
        assert_eq!(p.decide(Held, false, u64::MAX), LoadWithoutLease);
    }

    #[test]
    fn lease_edge_policies() {
        use LeaseDecision::*;
        use LeaseOutcome::*;
        let no_wait = LeasePolicy {
            ttl_ms: 0,
            max_wait_ms: 0,
            poll_interval_ms: 0,
        };
        assert_eq!(no_wait.decide(Held, false, 0), LoadWithoutLease);
        assert_eq!(no_wait.ttl_secs(), 1);
        let zero_poll = LeasePolicy {
            poll_interval_ms: 0,
            ..LeasePolicy::default()
        };
        assert_eq!(
            zero_poll.decide(Held, false, 0),
            WaitAndRetry { after_ms: 1 }
        );
        let d = LeasePolicy::default();
        assert_eq!(d.ttl_secs(), 10);
        assert!(d.max_wait_ms < d.ttl_ms && d.poll_interval_ms < d.max_wait_ms);
        assert_eq!(
            LeasePolicy {
                ttl_ms: u64::MAX,
                ..d
            }
            .ttl_secs(),
            u64::MAX / 1000 + 1
        );
    }

    #[test]
    fn lease_wait_tracks_time_and_attempts() {
        let p = LeasePolicy {
            ttl_ms: 1_000,
            max_wait_ms: 300,
            poll_interval_ms: 200,
        };
        let mut w = LeaseWait::new(p, 10_000);
        assert_eq!(w.policy(), &p);
        // A clock that goes backwards counts as no time waited.
        assert_eq!(w.waited_ms(9_000), 0);
        assert_eq!(
            w.decide(LeaseOutcome::Held, false, 9_000),
            LeaseDecision::WaitAndRetry { after_ms: 200 }
        );
        assert_eq!(
            w.decide(LeaseOutcome::Held, false, 10_200),
            LeaseDecision::WaitAndRetry { after_ms: 100 }
        );
        assert_eq!(
            w.decide(LeaseOutcome::Acquired, false, 10_300),
            LeaseDecision::Load
        );
        assert_eq!(w.attempts(), 3);
    }

    // --- XFetch ---------------------------------------------------------------

    #[test]
    fn xfetch_edges() {
        // At and after expiry: always.
        for r in [1.0, 0.5, 0.0, f64::NAN] {
            assert!(should_refresh_early(100, 100, 10, 1.0, r));
            assert!(should_refresh_early(u64::MAX, 100, 0, 0.0, r));
        }
        // No expiry: never.
        assert!(!should_refresh_early(u64::MAX, 0, 1_000, 1.0, 0.0));
        // No cost or no beta: never early.
        for beta in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!should_refresh_early(99, 100, 10, beta, 1e-300));
        }
        assert!(!should_refresh_early(99, 100, 0, 1.0, 1e-300));
        // random == 1 never refreshes early; 0 is the smallest positive.
        assert!(!should_refresh_early(99, 100, 1_000_000, 1e9, 1.0));
        assert!(should_refresh_early(99, 100, 1, 1.0, 0.0)); // -ln(MIN_POSITIVE) ~ 708 >= 1
        assert!(!should_refresh_early(0, 1_000, 1, 1.0, 0.0)); // but not 1000 ms early
                                                               // Out-of-range random numbers are read as 1.
        for r in [f64::NAN, -0.5, 1.5, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!should_refresh_early(99, 100, 1_000_000, 1e9, r));
        }
        // ln(0.5) * 100 = -69.3: 69 ms before expiry yes, 70 ms no.
        assert!(should_refresh_early(931, 1_000, 100, 1.0, 0.5));
        assert!(!should_refresh_early(930, 1_000, 100, 1.0, 0.5));
        // Huge values do not overflow.
        assert!(!should_refresh_early(0, u64::MAX, u64::MAX, 1.0, 0.999));
        // An enormous beta overflows to an infinite head start: refresh.
        assert!(should_refresh_early(0, u64::MAX, u64::MAX, f64::MAX, 0.999));
        assert!(should_refresh_early(0, u64::MAX, u64::MAX, 2.0, 0.1));
    }

    #[test]
    fn xfetch_probability_edges() {
        assert_eq!(early_refresh_probability(0, 0, 10, 1.0), 0.0);
        assert_eq!(early_refresh_probability(5, 5, 0, 0.0), 1.0);
        assert_eq!(early_refresh_probability(4, 5, 0, 1.0), 0.0);
        assert_eq!(early_refresh_probability(4, 5, 10, -1.0), 0.0);
        assert_eq!(early_refresh_probability(4, 5, 10, f64::NAN), 0.0);
        let p = early_refresh_probability(800, 1_000, 100, 2.0);
        assert!((p - (-1.0f64).exp()).abs() < 1e-12);
    }

    /// splitmix64: a small seeded generator, good enough for statistics.
    struct SplitMix(u64);

    impl SplitMix {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1].
        fn next_unit(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn xfetch_frequency_matches_exp_law() {
        let mut rng = SplitMix(0x5EED_0001);
        let (expiry, delta) = (1_000_000u64, 200u64);
        let n = 200_000;
        for (beta, remaining) in [
            (1.0, 20),
            (1.0, 100),
            (1.0, 200),
            (1.0, 400),
            (2.0, 400),
            (0.5, 50),
        ] {
            let now = expiry - remaining;
            let hits = (0..n)
                .filter(|_| should_refresh_early(now, expiry, delta, beta, rng.next_unit()))
                .count();
            let observed = hits as f64 / n as f64;
            let expected = (-(remaining as f64) / (delta as f64 * beta)).exp();
            assert!((expected - early_refresh_probability(now, expiry, delta, beta)).abs() < 1e-12);
            let sigma = (expected * (1.0 - expected) / n as f64).sqrt();
            assert!(
                (observed - expected).abs() <= 5.0 * sigma + 1e-4,
                "beta {beta}, {remaining} ms left: observed {observed}, expected {expected}"
            );
        }
    }

    #[test]
    fn xfetch_with_zero_random_from_a_half_open_generator() {
        // A generator in [0, 1) (JS Math.random) is fine: 0 counts as tiny.
        let mut rng = SplitMix(7);
        let n = 100_000;
        let hits = (0..n)
            .filter(|_| {
                let r = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                should_refresh_early(900, 1_000, 100, 1.0, r)
            })
            .count();
        let observed = hits as f64 / n as f64;
        assert!((observed - (-1.0f64).exp()).abs() < 0.01);
    }

    mod xfetch_props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn probability_grows_towards_expiry(
                expiry in 1u64..1_000_000_000,
                cost in 1u64..100_000,
                beta in 0.01f64..10.0,
                a in 0u64..1_000_000_000,
                b in 0u64..1_000_000_000,
            ) {
                let (early, late) = (a.min(b), a.max(b));
                let p_early = early_refresh_probability(early, expiry, cost, beta);
                let p_late = early_refresh_probability(late, expiry, cost, beta);
                prop_assert!(p_early <= p_late);
                prop_assert!((0.0..=1.0).contains(&p_early));
            }

            #[test]
            fn decision_is_monotonic_in_time(
                expiry in 1u64..1_000_000_000,
                cost in 0u64..100_000,
                beta in -1.0f64..10.0,
                random in 0.0f64..=1.0,
                a in 0u64..2_000_000_000,
                b in 0u64..2_000_000_000,
            ) {
                // For a fixed random draw, once it says refresh, it says so
                // for every later time.
                let (early, late) = (a.min(b), a.max(b));
                if should_refresh_early(early, expiry, cost, beta, random) {
                    prop_assert!(should_refresh_early(late, expiry, cost, beta, random));
                }
            }

            #[test]
            fn decision_is_monotonic_in_random(
                expiry in 1u64..1_000_000_000,
                now in 0u64..1_000_000_000,
                cost in 0u64..100_000,
                beta in 0.01f64..10.0,
                a in 0.0f64..=1.0,
                b in 0.0f64..=1.0,
            ) {
                // Smaller random numbers refresh earlier.
                let (small, large) = (a.min(b), a.max(b));
                if should_refresh_early(now, expiry, cost, beta, large) {
                    prop_assert!(should_refresh_early(now, expiry, cost, beta, small));
                }
            }

            #[test]
            fn always_at_or_after_expiry(
                expiry in 1u64..u64::MAX,
                past in 0u64..1_000_000,
                cost in any::<u64>(),
                beta in any::<f64>(),
                random in any::<f64>(),
            ) {
                let now = expiry.saturating_add(past);
                prop_assert!(should_refresh_early(now, expiry, cost, beta, random));
            }

            #[test]
            fn never_early_without_recompute_cost(
                expiry in 1u64..u64::MAX,
                before in 1u64..u64::MAX,
                beta in any::<f64>(),
                random in any::<f64>(),
            ) {
                let now = expiry.saturating_sub(before);
                prop_assume!(now < expiry);
                prop_assert!(!should_refresh_early(now, expiry, 0, beta, random));
            }

            #[test]
            fn jitter_stays_in_bounds(
                ttl in any::<u64>(),
                fraction in any::<f64>(),
                random in any::<f64>(),
            ) {
                let out = jitter_ttl(ttl, fraction, random);
                if ttl == 0 {
                    prop_assert_eq!(out, 0);
                } else {
                    prop_assert!(out >= 1);
                    let f = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
                    let spread = ttl as f64 * f;
                    let diff = (out as f64 - ttl as f64).abs();
                    // f64 rounding: allow a relative error of 2^-50.
                    prop_assert!(diff <= spread + 1.0 + ttl as f64 * 1e-15);
                }
            }
        }
    }

    // --- freshness -------------------------------------------------------------

    #[test]
    fn freshness_between_soft_and_hard() {
        use Freshness::*;
        let at = |now| Freshness::at(now, Some(100), Some(200));
        assert_eq!(
            [at(0), at(99), at(100), at(199), at(200), at(u64::MAX)],
            [Fresh, Fresh, Stale, Stale, Expired, Expired]
        );
        assert!(Fresh.is_servable() && Stale.is_servable() && !Expired.is_servable());
        assert!(!Fresh.needs_refresh() && Stale.needs_refresh() && Expired.needs_refresh());
    }

    #[test]
    fn freshness_missing_expiries() {
        use Freshness::*;
        for none in [None, Some(0)] {
            assert_eq!(Freshness::at(u64::MAX, none, none), Fresh);
            assert_eq!(Freshness::at(99, none, Some(100)), Fresh);
            assert_eq!(Freshness::at(100, none, Some(100)), Expired);
            assert_eq!(Freshness::at(99, Some(100), none), Fresh);
            assert_eq!(Freshness::at(u64::MAX, Some(100), none), Stale);
        }
        // Soft after hard: the hard expiry wins.
        assert_eq!(Freshness::at(150, Some(300), Some(200)), Fresh);
        assert_eq!(Freshness::at(250, Some(300), Some(200)), Expired);
        assert_eq!(Freshness::at(0, Some(0), Some(0)), Fresh);
    }

    // --- jitter ---------------------------------------------------------------

    #[test]
    fn jitter_maps_random_linearly() {
        assert_eq!(jitter_ttl(1_000, 0.1, 0.0), 900);
        assert_eq!(jitter_ttl(1_000, 0.1, 0.25), 950);
        assert_eq!(jitter_ttl(1_000, 0.1, 0.5), 1_000);
        assert_eq!(jitter_ttl(1_000, 0.1, 0.75), 1_050);
        assert_eq!(jitter_ttl(1_000, 0.1, 1.0), 1_100);
    }

    #[test]
    fn jitter_bad_inputs() {
        assert_eq!(jitter_ttl(0, 0.5, 0.0), 0);
        // Never 0 for a positive TTL.
        assert_eq!(jitter_ttl(1, 1.0, 0.0), 1);
        assert_eq!(jitter_ttl(10, 5.0, 0.0), 1, "fraction is clamped to 1");
        assert_eq!(jitter_ttl(10, 5.0, 1.0), 20);
        // No overflow.
        assert_eq!(jitter_ttl(u64::MAX, 1.0, 1.0), u64::MAX);
        assert_eq!(jitter_ttl(u64::MAX - 1, 0.0, 1.0), u64::MAX - 1);
        assert_eq!(jitter_ttl(u64::MAX, 0.5, 0.5), u64::MAX);
        // NaN / negative / out-of-range inputs.
        assert_eq!(jitter_ttl(1_000, f64::NAN, 0.0), 1_000);
        assert_eq!(jitter_ttl(1_000, -0.3, 0.0), 1_000);
        assert_eq!(jitter_ttl(1_000, 0.1, f64::NAN), 1_000);
        assert_eq!(jitter_ttl(1_000, 0.1, -3.0), 900);
        assert_eq!(jitter_ttl(1_000, 0.1, 3.0), 1_100);
        assert_eq!(jitter_ttl(1_000, f64::INFINITY, 1.0), 2_000);
        // Exact for large TTLs without jitter.
        let big = (1u64 << 60) + 1;
        assert_eq!(jitter_ttl(big, 0.0, 0.9), big);
        assert_eq!(jitter_ttl(big, 0.1, 0.5), big);
    }

    // --- replicas ---------------------------------------------------------------

    #[test]
    fn replica_keys_are_distinct_and_valid() {
        let keys = replica_keys("course|v1|hot", 255);
        assert_eq!(keys.len(), 255);
        assert_eq!(keys[0], "course|v1|hot");
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), 255);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(*key, replica_key("course|v1|hot", i as u8));
            assert!(crate::key::is_valid_memcached_key(key), "{key}");
        }
        assert_eq!(replica_keys("x", 1), ["x"]);
        assert_eq!(replica_keys("x", 0), ["x"]);
        // Different main keys never share replica keys.
        assert_ne!(replica_key("a", 1), replica_key("b", 1));
        // Over-long main keys still give valid replica keys.
        let long = "k".repeat(240);
        assert!(crate::key::is_valid_memcached_key(&replica_key(&long, 9)));
        assert_ne!(replica_key(&long, 1), replica_key(&long, 2));
    }

    #[test]
    fn pick_replica_spreads_evenly() {
        assert_eq!(pick_replica("hot", 0, u64::MAX), "hot");
        assert_eq!(pick_replica("hot", 1, u64::MAX), "hot");
        let n = 5u8;
        let keys = replica_keys("hot", n);
        let mut counts = vec![0usize; n as usize];
        let mut rng = SplitMix(42);
        for _ in 0..50_000 {
            let key = pick_replica("hot", n, rng.next_u64());
            counts[keys.iter().position(|k| *k == key).unwrap()] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{c}");
        }
        // Evenly spaced u64s land in each replica in order.
        let step = u64::MAX / n as u64;
        for i in 0..n {
            assert_eq!(
                pick_replica("hot", n, step * i as u64 + 1),
                keys[i as usize]
            );
        }
    }
}
