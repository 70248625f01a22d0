//! Nearest-rank quantiles: the one definition of a percentile every checker, plot, comparison
//! and benchmark uses, so that they all take the same p99 of the same samples.

/// The index of quantile `q` in a sorted, non-empty sample of `n` (nearest rank; `q = 1.0`
/// is the maximum).
pub fn nearest_rank(n: usize, q: f64) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n) - 1
}
