//! Prometheus metrics in the text exposition format: request counts and latency per route
//! and status, the domain's own counters, and (hardened) gauges read when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), f64>>,
}

impl Metrics {
    /// Add `by` to the counter `name` with the given label set, e.g. `method="GET"`.
    pub fn add(&self, name: &str, labels: &str, by: f64) {
        let mut c = self.counters.lock().expect("metrics lock poisoned");
        *c.entry((name.to_string(), labels.to_string()))
            .or_insert(0.0) += by;
    }

    pub fn inc(&self, name: &str, labels: &str) {
        self.add(name, labels, 1.0);
    }

    pub fn render(&self) -> String {
        let c = self.counters.lock().expect("metrics lock poisoned");
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), v) in c.iter() {
            if name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
        out
    }
}

/// Gauges as (name, labels, value), grouped by name in the order given.
pub fn render_gauges(gauges: &[(&str, String, f64)]) -> String {
    let mut out = String::new();
    let mut last = "";
    for (name, labels, v) in gauges {
        if *name != last {
            let _ = writeln!(out, "# TYPE {name} gauge");
            last = name;
        }
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gauges_with_one_type_line_per_name() {
        let text = render_gauges(&[
            ("mediconnect_http_in_flight", String::new(), 3.0),
            ("mediconnect_breaker_open", "provider=\"ehr\"".into(), 1.0),
            (
                "mediconnect_breaker_open",
                "provider=\"twilio\"".into(),
                0.0,
            ),
        ]);
        assert_eq!(
            text,
            "# TYPE mediconnect_http_in_flight gauge\nmediconnect_http_in_flight 3\n\
             # TYPE mediconnect_breaker_open gauge\nmediconnect_breaker_open{provider=\"ehr\"} 1\n\
             mediconnect_breaker_open{provider=\"twilio\"} 0\n"
        );
    }

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.inc("mediconnect_bookings_total", "outcome=\"created\"");
        m.inc("mediconnect_bookings_total", "outcome=\"created\"");
        m.add("mediconnect_http_request_seconds_sum", "", 0.5);
        let text = m.render();
        assert!(text.contains("# TYPE mediconnect_bookings_total counter\n"));
        assert!(
            text.contains("mediconnect_bookings_total{outcome=\"created\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mediconnect_http_request_seconds_sum 0.5\n"),
            "{text}"
        );
    }
}
