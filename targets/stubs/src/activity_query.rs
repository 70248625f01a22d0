//! The query language of SendGrid's Email Activity API (`GET /v3/messages?query=…`), the part
//! of it the stub understands: `field="value"` comparisons on `msg_id`, `from_email`,
//! `subject`, `to_email`, `status` and `unique_args['name']` (the v3 `custom_args`), joined
//! by `AND` and `OR` (`AND` binds tighter) and grouped with parentheses, e.g.
//! `unique_args['appointment_id']="a1" AND unique_args['kind']="24h"` or
//! `(to_email="pat@example.com")`. Anything else is refused with a message, never guessed.

use std::collections::BTreeMap;

/// What a query compares a message's fields with.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Or(Vec<Query>),
    And(Vec<Query>),
    Eq(Field, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    MsgId,
    FromEmail,
    Subject,
    ToEmail,
    Status,
    UniqueArg(String),
}

/// The fields of one message a query can look at.
pub struct Fields<'a> {
    pub msg_id: &'a str,
    pub from_email: &'a str,
    pub subject: &'a str,
    pub to_email: &'a str,
    pub status: &'a str,
    pub unique_args: &'a BTreeMap<String, String>,
}

impl Query {
    pub fn matches(&self, m: &Fields<'_>) -> bool {
        match self {
            Query::Or(qs) => qs.iter().any(|q| q.matches(m)),
            Query::And(qs) => qs.iter().all(|q| q.matches(m)),
            Query::Eq(field, value) => {
                let actual = match field {
                    Field::MsgId => Some(m.msg_id),
                    Field::FromEmail => Some(m.from_email),
                    Field::Subject => Some(m.subject),
                    Field::ToEmail => Some(m.to_email),
                    Field::Status => Some(m.status),
                    Field::UniqueArg(k) => m.unique_args.get(k).map(String::as_str),
                };
                actual == Some(value.as_str())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Eq,
    Bracket(String),
    Word(String),
    Quoted(String),
}

fn tokens(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '=' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Eq,
                });
            }
            '"' => {
                chars.next();
                let rest = &s[i + 1..];
                let end = rest
                    .find('"')
                    .ok_or_else(|| format!("unterminated string at character {}", i + 1))?;
                out.push(Token::Quoted(rest[..end].to_string()));
                for _ in rest[..=end].chars() {
                    chars.next();
                }
            }
            '[' => {
                let rest = &s[i..];
                let end = rest
                    .find(']')
                    .ok_or_else(|| format!("unterminated [ at character {}", i + 1))?;
                let inner = rest[1..end].trim();
                let name = inner
                    .strip_prefix('\'')
                    .and_then(|n| n.strip_suffix('\''))
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        format!("expected ['name'] at character {}, found [{inner}]", i + 1)
                    })?;
                out.push(Token::Bracket(name.to_string()));
                for _ in rest[..=end].chars() {
                    chars.next();
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let rest = &s[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                out.push(Token::Word(rest[..end].to_string()));
                for _ in rest[..end].chars() {
                    chars.next();
                }
            }
            other => {
                return Err(format!(
                    "unexpected '{other}' at character {} (values go in double quotes)",
                    i + 1
                ));
            }
        }
    }
    Ok(out)
}

/// Parses a query; the error says what was expected, for SendGrid's `errors[].message`.
pub fn parse(s: &str) -> Result<Query, String> {
    let tokens = tokens(s)?;
    if tokens.is_empty() {
        return Err("empty query".into());
    }
    let mut p = Parser { tokens, at: 0 };
    let q = p.or()?;
    match p.tokens.get(p.at) {
        None => Ok(q),
        Some(t) => Err(format!("unexpected {} after a complete query", describe(t))),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

fn keyword(t: Option<&Token>, k: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
}

fn describe(t: &Token) -> String {
    match t {
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::Eq => "'='".into(),
        Token::Bracket(n) => format!("['{n}']"),
        Token::Word(w) => format!("'{w}'"),
        Token::Quoted(v) => format!("\"{v}\""),
    }
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Query, String> {
        let mut qs = vec![self.and()?];
        while keyword(self.tokens.get(self.at), "OR") {
            self.at += 1;
            qs.push(self.and()?);
        }
        Ok(if qs.len() == 1 {
            qs.remove(0)
        } else {
            Query::Or(qs)
        })
    }

    fn and(&mut self) -> Result<Query, String> {
        let mut qs = vec![self.atom()?];
        while keyword(self.tokens.get(self.at), "AND") {
            self.at += 1;
            qs.push(self.atom()?);
        }
        Ok(if qs.len() == 1 {
            qs.remove(0)
        } else {
            Query::And(qs)
        })
    }

    fn atom(&mut self) -> Result<Query, String> {
        match self.next() {
            Some(Token::Open) => {
                let q = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(q),
                    Some(t) => Err(format!("expected ')', found {}", describe(&t))),
                    None => Err("expected ')' before the end of the query".into()),
                }
            }
            Some(Token::Word(w)) => {
                let field = match w.as_str() {
                    "msg_id" => Field::MsgId,
                    "from_email" => Field::FromEmail,
                    "subject" => Field::Subject,
                    "to_email" => Field::ToEmail,
                    "status" => Field::Status,
                    "unique_args" => match self.next() {
                        Some(Token::Bracket(name)) => Field::UniqueArg(name),
                        _ => return Err("expected unique_args['name']".into()),
                    },
                    other => {
                        return Err(format!(
                            "'{other}': this stub queries msg_id, from_email, subject, \
                             to_email, status and unique_args['name']"
                        ));
                    }
                };
                if self.next() != Some(Token::Eq) {
                    return Err(format!(
                        "expected = after {w} (this stub compares with = only)"
                    ));
                }
                match self.next() {
                    Some(Token::Quoted(v)) => Ok(Query::Eq(field, v)),
                    _ => Err(format!("expected a value in double quotes after {w}=")),
                }
            }
            Some(t) => Err(format!("expected a comparison, found {}", describe(&t))),
            None => Err("expected a comparison before the end of the query".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(k: &str, v: &str) -> Query {
        Query::Eq(Field::UniqueArg(k.into()), v.into())
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            parse(r#"unique_args['appointment_id']="a1""#),
            Ok(arg("appointment_id", "a1"))
        );
        assert_eq!(
            parse(r#"(unique_args['appointment_id']="a1") and unique_args['kind']="24h""#),
            Ok(Query::And(vec![
                arg("appointment_id", "a1"),
                arg("kind", "24h")
            ]))
        );
        assert_eq!(
            parse(r#"to_email="p@x.org" OR to_email="q@x.org" AND status="delivered""#),
            Ok(Query::Or(vec![
                Query::Eq(Field::ToEmail, "p@x.org".into()),
                Query::And(vec![
                    Query::Eq(Field::ToEmail, "q@x.org".into()),
                    Query::Eq(Field::Status, "delivered".into()),
                ]),
            ]))
        );
    }

    #[test]
    fn malformed_queries_say_what_was_expected() {
        for bad in [
            "",
            "to_email",
            "to_email=",
            r#"to_email="unterminated"#,
            r#"to_email='single'"#,
            r#"unique_args="x""#,
            r#"unique_args[kind]="x""#,
            r#"clicks="0""#,
            r#"to_email="a" AND"#,
            r#"(to_email="a""#,
            r#"to_email="a" to_email="b""#,
            r#"to_email LIKE "a""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
