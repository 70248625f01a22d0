//! Periodic samples of every replica's gauges from `/metrics` (read directly, not through a
//! proxy), on the history's clock: the evidence `metrics_reflect` judges saturation by.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_model::MetricSample;

use crate::history::Clock;

/// How often each replica is read.
pub const PERIOD: Duration = Duration::from_millis(500);

/// Read every replica every [`PERIOD`] until the task is aborted, appending to `out`. A
/// replica that does not answer (killed, paused) gives a sample without gauges.
pub async fn sample(bases: Vec<String>, clock: Clock, out: Arc<Mutex<Vec<MetricSample>>>) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(PERIOD)
        .retry(reqwest::retry::never())
        .build()
        .expect("reqwest client builds");
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let reads = bases.iter().enumerate().map(|(i, base)| {
            let http = http.clone();
            let url = format!("{base}/metrics");
            async move {
                let time_us = clock.now_us();
                let text = match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => r.text().await.ok(),
                    _ => None,
                };
                MetricSample {
                    time_us,
                    replica: i as u32 + 1,
                    answered: text.is_some(),
                    gauges: text.as_deref().map(gauges).unwrap_or_default(),
                }
            }
        });
        let samples = futures_util::future::join_all(reads).await;
        out.lock().expect("samples lock").extend(samples);
    }
}

/// The gauges of a Prometheus text exposition, each summed over its label sets.
pub fn gauges(text: &str) -> BTreeMap<String, f64> {
    let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                kinds.insert(name, kind);
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let name = series.split('{').next().unwrap_or(series);
        if kinds.get(name) != Some(&"gauge") {
            continue;
        }
        if let Ok(v) = value.trim().parse::<f64>() {
            *out.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_summed_over_labels_and_counters_ignored() {
        let text = "# TYPE a_total counter\na_total 5\n# TYPE open gauge\nopen{p=\"x\"} 1\nopen{p=\"y\"} 2\n# TYPE busy gauge\nbusy 0.5\n";
        let g = gauges(text);
        assert_eq!(g.len(), 2, "{g:?}");
        assert_eq!(g["open"], 3.0);
        assert_eq!(g["busy"], 0.5);
        assert!(gauges("not prometheus at all\n{}").is_empty());
    }
}
