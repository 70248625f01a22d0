//! Finding where a field lives in scenario text, so that every error can name its line.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::scenario::ScenarioError;

/// Deserialize TOML text, turning every syntax or shape error into a [`ScenarioError`]
/// that names the file, the line and the field.
pub(crate) fn from_toml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, ScenarioError> {
    let err = |line, field: String, message: &str| ScenarioError {
        file: file.to_string(),
        line,
        field,
        message: message.lines().next().unwrap_or(message).trim().to_string(),
    };
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        err(line, String::new(), e.message())
    })?;
    serde_path_to_error::deserialize(toml::de::Deserializer::from(table)).map_err(|e| {
        let field = path_to_string(e.path());
        let inner = e.inner();
        let line = inner
            .span()
            .map(|s| line_of(text, s.start))
            .or_else(|| line_of_field(text, &field));
        err(line, field, inner.message())
    })
}

/// An error about a field found after parsing (a rule the types cannot state).
pub(crate) fn field_error(file: &str, text: &str, field: String, message: String) -> ScenarioError {
    ScenarioError {
        file: file.to_string(),
        line: line_of_field(text, &field),
        field,
        message,
    }
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `faults[1].at` from serde_path_to_error's path; empty for the document itself.
pub(crate) fn path_to_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." { String::new() } else { s }
}

/// The line of a dotted field path such as `faults[1].toxic.jitter`. When the field itself
/// is absent, the line of its nearest present ancestor (e.g. the `[[faults]]` header).
pub(crate) fn line_of_field(text: &str, field: &str) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut best: Option<std::ops::Range<usize>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for segment in segments(field) {
        let next = match (segment, table, value) {
            (Segment::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k)
                .map(|(_, v)| v),
            (Segment::Index(i), _, Some(v)) => match v.get_ref() {
                DeValue::Array(a) => a.get(i),
                _ => None,
            },
            _ => None,
        };
        let Some(v) = next else { break };
        best = Some(v.span());
        value = Some(v);
        table = match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    best.map(|s| line_of(text, s.start))
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(field: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_fields_and_falls_back_to_parents() {
        let text = "a = 1\n[b]\nc = 2\n[[d]]\ne = 3\n[[d]]\ne = 4\nf = { g = 5 }\n";
        assert_eq!(line_of_field(text, "a"), Some(1));
        assert_eq!(line_of_field(text, "b.c"), Some(3));
        assert_eq!(line_of_field(text, "d[1].e"), Some(7));
        assert_eq!(line_of_field(text, "d[1].f.g"), Some(8));
        assert!(line_of_field(text, "d[1].missing").is_some());
        assert_eq!(line_of_field(text, "nothing"), None);
    }
}
