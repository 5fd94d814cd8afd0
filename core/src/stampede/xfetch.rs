//! When to refresh: XFetch early refresh, freshness between the soft and
//! hard expiry (stale-while-revalidate), and TTL jitter.

/// The β of XFetch that the paper finds optimal; larger values refresh
/// earlier.
pub const DEFAULT_BETA: f64 = 1.0;

/// The smallest random number used: 0 (which JS `Math.random()` and Python's
/// `random.random()` can return) is replaced by it, so `ln` stays finite.
const MIN_RANDOM: f64 = f64::MIN_POSITIVE;

/// XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache
/// Stampede Prevention", VLDB 2015): true if this reader should recompute the
/// value now, before it expires.
///
/// Refreshes when `now - recompute_cost * beta * ln(random) >= expiry`. The
/// chance of that is `exp(-(expiry - now) / (recompute_cost * beta))`
/// ([`early_refresh_probability`]): negligible long before expiry, growing
/// as expiry nears, so usually one reader refreshes the value shortly before
/// it expires while every other reader still hits.
///
/// - `expiry_ms`: when the value expires (use the soft expiry if there is
///   one). `0` means it never expires: false.
/// - At or after expiry: true.
/// - `recompute_cost_ms` (Δ, the time the last load took; stored in the
///   envelope): 0 means never early.
/// - `beta`: 1.0 ([`DEFAULT_BETA`]) is the paper's choice; above 1 favours
///   earlier refreshes. `beta <= 0`, NaN or infinite: never early.
/// - `random`: uniform in (0, 1]. `0` is read as the smallest positive
///   `f64` (so `[0, 1)` generators can be passed as they are); values above
///   1, negative values and NaN are read as 1, which never refreshes early.
///
/// ```
/// use stratacache::stampede::should_refresh_early;
///
/// // Expires at 10_000; recomputing takes 100 ms.
/// assert!(!should_refresh_early(5_000, 10_000, 100, 1.0, 0.5)); // far from expiry
/// assert!(should_refresh_early(9_990, 10_000, 100, 1.0, 0.5)); // 10 ms left, ln(0.5) * 100 = -69 ms
/// assert!(should_refresh_early(10_000, 10_000, 100, 1.0, 1.0)); // expired
/// assert!(!should_refresh_early(9_999, 10_000, 0, 1.0, 0.01)); // no cost known
/// ```
pub fn should_refresh_early(
    now_ms: u64,
    expiry_ms: u64,
    recompute_cost_ms: u64,
    beta: f64,
    random: f64,
) -> bool {
    if expiry_ms == 0 {
        return false;
    }
    if now_ms >= expiry_ms {
        return true;
    }
    if recompute_cost_ms == 0 || !beta.is_finite() || beta <= 0.0 {
        return false;
    }
    let remaining = (expiry_ms - now_ms) as f64;
    // `-ln(random)` is at most `-ln(MIN_RANDOM)` (708.4): farther from
    // expiry than that head start the answer is no without the logarithm
    // (a software routine on wasm32: a tenth of a local hit there).
    if remaining > recompute_cost_ms as f64 * beta * 709.0 {
        return false;
    }
    // NaN is not in the range either.
    let random = if !(0.0..=1.0).contains(&random) {
        1.0
    } else {
        random.max(MIN_RANDOM)
    };
    let head_start = recompute_cost_ms as f64 * beta * -random.ln();
    head_start >= remaining
}

/// The probability that [`should_refresh_early`] returns true for a uniform
/// random number: `exp(-(expiry - now) / (recompute_cost * beta))`, 1 at or
/// after expiry, 0 where `should_refresh_early` is never early. Useful for
/// dashboards and for choosing `beta`.
///
/// ```
/// use stratacache::stampede::early_refresh_probability;
///
/// let p = early_refresh_probability(9_900, 10_000, 100, 1.0);
/// assert!((p - (-1.0f64).exp()).abs() < 1e-12);
/// assert_eq!(early_refresh_probability(10_000, 10_000, 100, 1.0), 1.0);
/// assert_eq!(early_refresh_probability(9_900, 10_000, 0, 1.0), 0.0);
/// ```
pub fn early_refresh_probability(
    now_ms: u64,
    expiry_ms: u64,
    recompute_cost_ms: u64,
    beta: f64,
) -> f64 {
    if expiry_ms == 0 {
        return 0.0;
    }
    if now_ms >= expiry_ms {
        return 1.0;
    }
    if recompute_cost_ms == 0 || !beta.is_finite() || beta <= 0.0 {
        return 0.0;
    }
    let remaining = (expiry_ms - now_ms) as f64;
    (-remaining / (recompute_cost_ms as f64 * beta)).exp()
}

/// How usable a stored value is at a given time, from its soft and hard
/// expiry.
///
/// - before the soft expiry: [`Fresh`](Freshness::Fresh), serve it;
/// - from the soft expiry until the hard expiry:
///   [`Stale`](Freshness::Stale), serve it *and* refresh it in the
///   background (stale-while-revalidate);
/// - from the hard expiry on: [`Expired`](Freshness::Expired), a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// Before the soft expiry.
    Fresh,
    /// Past the soft expiry, before the hard expiry.
    Stale,
    /// At or past the hard expiry.
    Expired,
}

impl Freshness {
    /// The freshness at `now_ms` of a value with these expiries
    /// (milliseconds, same clock as `now_ms`).
    ///
    /// `None` or `Some(0)` means "no such expiry": without a soft expiry a
    /// value is never stale, only fresh or expired; without a hard expiry a
    /// value past its soft expiry stays stale (servable) until it is
    /// refreshed. Expiry instants are exclusive: at `now == expiry` the value
    /// is already past it. A soft expiry after the hard one is irrelevant:
    /// the hard expiry wins.
    ///
    /// ```
    /// use stratacache::stampede::Freshness;
    ///
    /// let (soft, hard) = (Some(1_000), Some(2_000));
    /// assert_eq!(Freshness::at(999, soft, hard), Freshness::Fresh);
    /// assert_eq!(Freshness::at(1_000, soft, hard), Freshness::Stale);
    /// assert_eq!(Freshness::at(2_000, soft, hard), Freshness::Expired);
    /// assert_eq!(Freshness::at(u64::MAX, None, Some(0)), Freshness::Fresh);
    /// assert_eq!(Freshness::at(5_000, soft, None), Freshness::Stale);
    /// ```
    pub fn at(now_ms: u64, soft_expiry_ms: Option<u64>, hard_expiry_ms: Option<u64>) -> Freshness {
        let passed = |expiry: Option<u64>| matches!(expiry, Some(t) if t != 0 && now_ms >= t);
        if passed(hard_expiry_ms) {
            Freshness::Expired
        } else if passed(soft_expiry_ms) {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }

    /// True if the value may be served: [`Fresh`](Freshness::Fresh) or
    /// [`Stale`](Freshness::Stale).
    pub fn is_servable(self) -> bool {
        self != Freshness::Expired
    }

    /// True if the value should be reloaded: [`Stale`](Freshness::Stale)
    /// (in the background) or [`Expired`](Freshness::Expired).
    pub fn needs_refresh(self) -> bool {
        self != Freshness::Fresh
    }
}

/// Spreads a TTL by up to ±`fraction` of itself, so entries written together
/// do not all expire together (and stampede together).
///
/// `random` uniform in `[0, 1]` maps linearly onto
/// `[ttl * (1 - fraction), ttl * (1 + fraction)]`; 0.5 leaves the TTL
/// unchanged.
///
/// - `ttl_ms == 0` (no expiry) stays 0; a positive TTL never becomes 0 (at
///   least 1) and never overflows (at most `u64::MAX`).
/// - `fraction` is clamped to `[0, 1]`; NaN means no jitter.
/// - `random` is clamped to `[0, 1]`; NaN means 0.5 (no jitter).
///
/// ```
/// use stratacache::stampede::jitter_ttl;
///
/// assert_eq!(jitter_ttl(60_000, 0.1, 0.0), 54_000);
/// assert_eq!(jitter_ttl(60_000, 0.1, 0.5), 60_000);
/// assert_eq!(jitter_ttl(60_000, 0.1, 1.0), 66_000);
/// assert_eq!(jitter_ttl(0, 0.1, 0.0), 0);
/// assert_eq!(jitter_ttl(1, 1.0, 0.0), 1);
/// ```
pub fn jitter_ttl(ttl_ms: u64, fraction: f64, random: f64) -> u64 {
    if ttl_ms == 0 {
        return 0;
    }
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let random = if random.is_nan() {
        0.5
    } else {
        random.clamp(0.0, 1.0)
    };
    // |offset| <= ttl_ms <= u64::MAX, which fits an i128 (a float-to-int
    // `as` cast saturates); adding it to ttl_ms keeps the result exact when
    // there is no jitter.
    let offset = (ttl_ms as f64 * fraction * (2.0 * random - 1.0)).round() as i128;
    let jittered = ttl_ms as i128 + offset;
    jittered.clamp(1, u64::MAX as i128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The early "no" far from expiry answers what the formula answers.
    #[test]
    fn the_early_no_agrees_with_the_formula() {
        let formula = |remaining: u64, cost: u64, beta: f64, random: f64| {
            cost as f64 * beta * -random.clamp(MIN_RANDOM, 1.0).ln() >= remaining as f64
        };
        for &remaining in &[1, 10, 100, 708, 709, 710, 1_000, 70_840, 70_900, 3_600_000] {
            for &cost in &[1, 7, 100, 5_000] {
                for &beta in &[0.5, 1.0, 2.0] {
                    for &random in &[MIN_RANDOM, 1e-300, 1e-12, 0.01, 0.5, 1.0] {
                        let expiry = 1_000_000_000;
                        assert_eq!(
                            should_refresh_early(expiry - remaining, expiry, cost, beta, random),
                            formula(remaining, cost, beta, random),
                            "{remaining} {cost} {beta} {random}"
                        );
                    }
                }
            }
        }
    }
}
