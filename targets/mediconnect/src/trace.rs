//! W3C Trace Context (000:C13, 001:C-5): the hardened profile takes the trace id of a
//! request's `traceparent` header (or starts a trace when there is none) and hands it to
//! every downstream call the request causes, each as a new span of the same trace. The naive
//! profile propagates nothing.

use axum::http::HeaderMap;

/// The trace id of a `traceparent` header, `00-<32 hex trace>-<16 hex span>-<2 hex flags>`,
/// if it is well formed (lower-case hex, neither id all zeros).
pub fn parse(header: &str) -> Option<String> {
    let mut parts = header.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    if parts.next().is_some()
        || !hex(version, 2)
        || version == "ff"
        || !hex(trace, 32)
        || !hex(span, 16)
        || !hex(flags, 2)
        || zero(trace)
        || zero(span)
    {
        return None;
    }
    Some(trace.to_string())
}

/// The trace a request belongs to: its own, or a new one.
pub fn of_request(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse)
        .unwrap_or_else(new_trace_id)
}

pub fn new_trace_id() -> String {
    format!("{:032x}", uuid::Uuid::new_v4().as_u128())
}

/// A `traceparent` for a new span of `trace`, sampled.
pub fn child(trace: &str) -> String {
    let span = (uuid::Uuid::new_v4().as_u128() as u64).max(1);
    format!("00-{trace}-{span:016x}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_w3c_traceparent_and_rejects_malformed_ones() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            parse(&format!("00-{t}-00f067aa0ba902b7-01")).as_deref(),
            Some(t)
        );
        assert_eq!(parse(&format!("00-{t}-00f067aa0ba902b7")), None);
        assert_eq!(
            parse(&format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32))),
            None
        );
        assert_eq!(
            parse(&format!("00-{}-00f067aa0ba902b7-01", t.to_uppercase())),
            None
        );
        assert_eq!(parse(&format!("00-{t}-0000000000000000-01")), None);
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn a_child_span_keeps_the_trace_and_is_well_formed() {
        let t = new_trace_id();
        let c = child(&t);
        assert_eq!(parse(&c).as_deref(), Some(t.as_str()));
        assert_ne!(child(&t), c, "a new span id each time");
    }
}
