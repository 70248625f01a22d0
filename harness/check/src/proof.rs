//! The proof an invalid verdict carries: the ops it cites, sorted and each once, and its
//! rows, at most `MAX_PROOF_ROWS` of them with the rest counted.

use chaos_model::{CheckResult, Verdict};

/// Rows a proof lists before it counts the rest.
pub(crate) const MAX_PROOF_ROWS: usize = 20;

/// An invalid result of `name` citing `ops` and `rows`; `detail` is told how many rows there
/// were in all.
pub(crate) fn invalid(
    name: &str,
    mut ops: Vec<u64>,
    mut rows: Vec<String>,
    detail: impl FnOnce(usize) -> String,
) -> CheckResult {
    ops.sort_unstable();
    ops.dedup();
    let n = rows.len();
    rows.truncate(MAX_PROOF_ROWS);
    if n > MAX_PROOF_ROWS {
        rows.push(format!("… {} more", n - MAX_PROOF_ROWS));
    }
    CheckResult::new(name, (Verdict::Invalid { ops, rows }, detail(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_sorted_once_and_rows_past_the_limit_counted() {
        let rows: Vec<String> = (0..25).map(|i| format!("row {i}")).collect();
        let r = invalid("x", vec![3, 1, 3], rows, |n| format!("{n} rows"));
        assert_eq!(r.detail, "25 rows");
        match r.verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1, 3]);
                assert_eq!(rows.len(), MAX_PROOF_ROWS + 1);
                assert_eq!(rows.last().map(String::as_str), Some("… 5 more"));
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }
}
