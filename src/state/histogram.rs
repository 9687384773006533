//! Cumulative latency histograms kept in a mirror's state file (for Prometheus histograms in
//! `git-pushmirror metrics`): a count per bucket and the sum, added to as syncs are recorded.

use serde::{Deserialize, Serialize};

/// Upper bounds (ms) of the push→mirror delay buckets: a sync's typical second or two, the
/// 1-minute and 5-minute max_delay defaults, up to a day-long outage. Prometheus adds `+Inf`.
pub const DELAY_BOUNDS_MS: [u64; 10] = [
    1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000, 86_400_000,
];

/// Upper bounds (ms) of the sync duration buckets: a no-op sync's fraction of a second up to a
/// first push of a big history.
pub const SYNC_BOUNDS_MS: [u64; 9] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 120_000, 600_000,
];

/// Observations per bucket (not cumulative; the last one is above every bound) and their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub sum_ms: u64,
}

impl Histogram {
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|c| *c == 0)
    }

    /// The number of observations (saturating, as `cumulative`'s `+Inf` is, so `_count` and the
    /// `+Inf` bucket agree even for a hand-edited file with absurd counts).
    /// The number of observations (saturating, as `cumulative`'s `+Inf` is, so `_count` and the
    /// `+Inf` bucket agree even for a hand-edited file with absurd counts).
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |t, c| t.saturating_add(*c))
    }

    /// Adds one observation of `ms`. Counts kept for other bounds (a file from a version with
    /// other buckets) start again from zero: they cannot be re-bucketed.
    pub fn observe(&mut self, bounds: &[u64], ms: u64) {
        if self.counts.len() != bounds.len() + 1 {
            *self = Histogram {
                counts: vec![0; bounds.len() + 1],
                sum_ms: 0,
            };
        }
        let at = bounds.iter().position(|b| ms <= *b).unwrap_or(bounds.len());
        self.counts[at] = self.counts[at].saturating_add(1);
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// `(upper bound in ms, cumulative count)` per bound, then `(None, total)` for `+Inf`;
    /// empty when the counts do not match `bounds`.
    pub fn cumulative(&self, bounds: &[u64]) -> Vec<(Option<u64>, u64)> {
        if self.counts.len() != bounds.len() + 1 {
            return Vec::new();
        }
        let mut total = 0u64;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total = total.saturating_add(*c);
                (bounds.get(i).copied(), total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_add_up() {
        let bounds = [100, 1000];
        let mut h = Histogram::default();
        assert!(h.is_empty() && h.cumulative(&bounds).is_empty());
        for (ms, counts) in [
            (0, [1, 0, 0]),
            (100, [2, 0, 0]),
            (101, [2, 1, 0]),
            (1000, [2, 2, 0]),
            (5000, [2, 2, 1]),
        ] {
            h.observe(&bounds, ms);
            assert_eq!(h.counts, counts, "{ms}");
        }
        assert_eq!(h.sum_ms, 6201);
        assert_eq!(h.count(), 5);
        assert_eq!(
            h.cumulative(&bounds),
            [(Some(100), 2), (Some(1000), 4), (None, 5)]
        );
        // Other bounds than the ones counted for: the counts start again.
        h.observe(&[10], 5);
        assert_eq!((h.counts.as_slice(), h.sum_ms), (&[1, 0][..], 5));
        assert!(h.cumulative(&bounds).is_empty());
    }

    #[test]
    fn absurd_counts_saturate_and_count_matches_the_inf_bucket() {
        // A hand-edited or corrupt state file: no overflow panic, `_count` == `+Inf` bucket.
        let h = Histogram {
            counts: vec![u64::MAX, 1, 5],
            sum_ms: u64::MAX,
        };
        let cumulative = h.cumulative(&[1, 2]);
        assert_eq!(cumulative.last(), Some(&(None, u64::MAX)));
        assert_eq!(h.count(), u64::MAX);
        assert!(cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn bounds_grow() {
        assert!(DELAY_BOUNDS_MS.windows(2).all(|w| w[0] < w[1]));
        assert!(SYNC_BOUNDS_MS.windows(2).all(|w| w[0] < w[1]));
    }
}
