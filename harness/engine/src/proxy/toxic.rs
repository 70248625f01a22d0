//! Toxics as Toxiproxy names them: `{name, type, stream, toxicity, attributes}`, parsed and
//! validated into what a link applies.

use chaos_model::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What a toxic does to the bytes of one direction. Times and sizes are in Toxiproxy's
/// units: milliseconds, KB/s, bytes; the slicer's delay is in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// Delay every chunk by `latency` ± `jitter`, measured from its arrival.
    Latency { latency_ms: u64, jitter_ms: u64 },
    /// Limit throughput to `rate` KB/s (0: unlimited).
    Bandwidth { rate_kbps: u64 },
    /// Delay the close (FIN) of this direction by `delay` after the source closed.
    SlowClose { delay_ms: u64 },
    /// Hold all data; close the connection after `timeout` (0: never, hold until removed).
    Timeout { timeout_ms: u64 },
    /// Once data arrives, reset the connection (TCP RST) after `timeout`.
    ResetPeer { timeout_ms: u64 },
    /// Close the connection once `bytes` have gone through in this direction.
    LimitData { bytes: u64 },
    /// Cut data into pieces of `average_size` ± `size_variation` bytes, `delay_us` apart.
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay_us: u64,
    },
}

/// The attribute names of each toxic type, in Toxiproxy's spelling.
const TYPES: [(&str, &[&str]); 7] = [
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slow_close", &["delay"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("limit_data", &["bytes"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
];

impl ToxicKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Slicer { .. } => "slicer",
        }
    }

    /// The attribute values, in the order of `TYPES`.
    fn values(&self) -> Vec<u64> {
        match *self {
            ToxicKind::Latency {
                latency_ms,
                jitter_ms,
            } => vec![latency_ms, jitter_ms],
            ToxicKind::Bandwidth { rate_kbps } => vec![rate_kbps],
            ToxicKind::SlowClose { delay_ms } => vec![delay_ms],
            ToxicKind::Timeout { timeout_ms } | ToxicKind::ResetPeer { timeout_ms } => {
                vec![timeout_ms]
            }
            ToxicKind::LimitData { bytes } => vec![bytes],
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay_us,
            } => vec![average_size, size_variation, delay_us],
        }
    }

    fn from_values(type_name: &str, v: &[u64]) -> Result<ToxicKind, String> {
        Ok(match type_name {
            "latency" => ToxicKind::Latency {
                latency_ms: v[0],
                jitter_ms: v[1],
            },
            "bandwidth" => ToxicKind::Bandwidth { rate_kbps: v[0] },
            "slow_close" => ToxicKind::SlowClose { delay_ms: v[0] },
            "timeout" => ToxicKind::Timeout { timeout_ms: v[0] },
            "reset_peer" => ToxicKind::ResetPeer { timeout_ms: v[0] },
            "limit_data" => ToxicKind::LimitData { bytes: v[0] },
            "slicer" => {
                if v[0] == 0 {
                    return Err("attribute average_size of a slicer must be at least 1".into());
                }
                if v[1] >= v[0] {
                    return Err(
                        "attribute size_variation of a slicer must be smaller than average_size"
                            .into(),
                    );
                }
                ToxicKind::Slicer {
                    average_size: v[0],
                    size_variation: v[1],
                    delay_us: v[2],
                }
            }
            other => return Err(format!("invalid toxic type: {other:?}")),
        })
    }

    fn attributes(&self) -> Value {
        let names = attribute_names(self.type_name()).expect("every kind has a type entry");
        Value::Object(
            names
                .iter()
                .zip(self.values())
                .map(|(n, v)| ((*n).to_string(), json!(v)))
                .collect(),
        )
    }
}

fn attribute_names(type_name: &str) -> Option<&'static [&'static str]> {
    TYPES.iter().find(|(t, _)| *t == type_name).map(|(_, a)| *a)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    /// Probability, per connection, that the toxic applies to it.
    pub toxicity: f32,
    pub kind: ToxicKind,
}

/// The wire shape, shared by requests and responses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToxicJson {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub toxicity: Option<f32>,
    #[serde(default)]
    pub attributes: Option<Value>,
}

impl Toxic {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }

    /// Build a toxic from a create request, filling Toxiproxy's defaults: stream
    /// downstream, toxicity 1, name `<type>_<stream>`.
    pub fn from_request(req: ToxicJson) -> Result<Toxic, String> {
        let type_name = req.kind.ok_or("missing required field: type")?;
        let stream = parse_stream(req.stream.as_deref().unwrap_or("downstream"))?;
        let toxicity = parse_toxicity(req.toxicity.unwrap_or(1.0))?;
        let attrs = req.attributes.unwrap_or_else(|| json!({}));
        let kind = parse_kind(&type_name, &attrs, None)?;
        let name = req
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{type_name}_{}", stream.as_str()));
        Ok(Toxic {
            name,
            stream,
            toxicity,
            kind,
        })
    }

    /// Apply an update request: fields present replace, attributes merge over the old ones.
    /// The name and type cannot change.
    pub fn updated(&self, req: ToxicJson) -> Result<Toxic, String> {
        if let Some(t) = req.kind.as_ref().filter(|t| *t != self.kind.type_name()) {
            return Err(format!(
                "cannot change the type of toxic {} from {} to {t}",
                self.name,
                self.kind.type_name()
            ));
        }
        let stream = match req.stream.as_deref() {
            Some(s) => parse_stream(s)?,
            None => self.stream,
        };
        let toxicity = parse_toxicity(req.toxicity.unwrap_or(self.toxicity))?;
        let kind = parse_kind(
            self.kind.type_name(),
            &req.attributes.unwrap_or_else(|| json!({})),
            Some(&self.kind),
        )?;
        Ok(Toxic {
            name: self.name.clone(),
            stream,
            toxicity,
            kind,
        })
    }
}

fn parse_stream(s: &str) -> Result<Stream, String> {
    match s {
        "upstream" => Ok(Stream::Upstream),
        "downstream" => Ok(Stream::Downstream),
        _ => Err("stream was invalid, can be either upstream or downstream".into()),
    }
}

fn parse_toxicity(t: f32) -> Result<f32, String> {
    if (0.0..=1.0).contains(&t) {
        Ok(t)
    } else {
        Err(format!("toxicity must be between 0 and 1, found {t}"))
    }
}

/// Attributes over defaults (zeros, or the toxic's current values on update). Unknown
/// attribute names and values that are not non-negative integers are refused.
fn parse_kind(
    type_name: &str,
    attrs: &Value,
    old: Option<&ToxicKind>,
) -> Result<ToxicKind, String> {
    let names =
        attribute_names(type_name).ok_or_else(|| format!("invalid toxic type: {type_name:?}"))?;
    let Some(obj) = attrs.as_object() else {
        return Err("attributes must be an object".into());
    };
    for key in obj.keys() {
        if !names.contains(&key.as_str()) {
            return Err(format!(
                "unknown attribute {key:?} for a {type_name} toxic ({})",
                names.join(", ")
            ));
        }
    }
    let mut values = old.map_or_else(|| vec![0; names.len()], ToxicKind::values);
    for (i, name) in names.iter().enumerate() {
        if let Some(v) = obj.get(*name) {
            values[i] = v.as_u64().ok_or_else(|| {
                format!("attribute {name} must be a non-negative integer, found {v}")
            })?;
        }
    }
    ToxicKind::from_values(type_name, &values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ToxicJson {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_follow_toxiproxy() {
        let t = Toxic::from_request(req(
            json!({ "type": "latency", "attributes": { "latency": 100 } }),
        ))
        .unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(
            t.kind,
            ToxicKind::Latency {
                latency_ms: 100,
                jitter_ms: 0
            }
        );
        assert_eq!(
            t.to_json(),
            json!({ "name": "latency_downstream", "type": "latency", "stream": "downstream",
                    "toxicity": 1.0, "attributes": { "latency": 100, "jitter": 0 } })
        );
    }

    #[test]
    fn bad_attributes_are_refused_with_a_message() {
        for (body, needle) in [
            (json!({ "type": "nope" }), "invalid toxic type"),
            (json!({ "attributes": {} }), "type"),
            (json!({ "type": "latency", "stream": "sideways" }), "stream"),
            (json!({ "type": "latency", "toxicity": 2.0 }), "toxicity"),
            (
                json!({ "type": "latency", "attributes": { "latency": -1 } }),
                "latency",
            ),
            (
                json!({ "type": "latency", "attributes": { "latncy": 5 } }),
                "unknown attribute",
            ),
        ] {
            let e = Toxic::from_request(req(body.clone())).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn every_type_parses_its_attributes_and_prints_them_back() {
        for (t, attrs) in [
            ("latency", json!({ "latency": 10, "jitter": 2 })),
            ("bandwidth", json!({ "rate": 100 })),
            ("slow_close", json!({ "delay": 50 })),
            ("timeout", json!({ "timeout": 0 })),
            ("reset_peer", json!({ "timeout": 20 })),
            ("limit_data", json!({ "bytes": 1000 })),
            (
                "slicer",
                json!({ "average_size": 16, "size_variation": 4, "delay": 10 }),
            ),
        ] {
            let toxic = Toxic::from_request(req(json!({ "type": t, "attributes": attrs.clone() })))
                .unwrap();
            assert_eq!(toxic.kind.type_name(), t);
            assert_eq!(toxic.to_json()["attributes"], attrs, "{t}");
        }
        let e = Toxic::from_request(req(
            json!({ "type": "slicer", "attributes": { "average_size": 4, "size_variation": 4 } }),
        ));
        assert!(e.unwrap_err().contains("size_variation"));
    }

    #[test]
    fn updates_merge_attributes() {
        let t = Toxic::from_request(req(
            json!({ "type": "latency", "attributes": { "latency": 100, "jitter": 5 } }),
        ))
        .unwrap();
        let u = t
            .updated(req(json!({ "attributes": { "latency": 200 } })))
            .unwrap();
        assert_eq!(
            u.kind,
            ToxicKind::Latency {
                latency_ms: 200,
                jitter_ms: 5
            }
        );
        assert!(t.updated(req(json!({ "type": "bandwidth" }))).is_err());
    }
}
