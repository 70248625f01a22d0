//! The W3C Trace Context `traceparent` header: the trace id a call carried, for the call log.

use axum::http::HeaderMap;

/// The trace id of a well-formed `traceparent` header
/// (`<version>-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`), or `None` when the call
/// carried none or a malformed one. As the W3C recommendation says: lowercase hex only,
/// version `ff` and all-zero ids are invalid, version `00` has exactly these four fields and
/// a later version may append more after a `-`.
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all("traceparent").iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse(value.to_str().ok()?).map(str::to_string)
}

fn parse(header: &str) -> Option<&str> {
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let mut fields = header.trim().splitn(5, '-');
    let (version, trace, parent, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let rest = fields.next();
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2)
        && (rest.is_none() || version != "00");
    valid.then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn well_formed_headers_give_their_trace_id() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(parse(&format!("00-{t}-00f067aa0ba902b7-01")), Some(t));
        assert_eq!(parse(&format!("01-{t}-00f067aa0ba902b7-00-extra")), Some(t));
    }

    #[test]
    fn malformed_headers_give_none() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        for bad in [
            String::new(),
            "garbage".into(),
            format!("00-{}-00f067aa0ba902b7-01", t.to_uppercase()),
            format!("00-{}-00f067aa0ba902b7-01", &t[..31]),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{t}-0000000000000000-01"),
            format!("ff-{t}-00f067aa0ba902b7-01"),
            format!("00-{t}-00f067aa0ba902b7-01-extra"),
            format!("00-{t}-00f067aa0ba902b7"),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }
}
