//! The Twilio Messages stub: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//! (form-encoded `To`, `From`, `Body`) answering Twilio's message resource, and `GET` of the
//! same path listing the messages it accepted, newest first, with Twilio's filters (`To`,
//! `From`, `DateSent`, `DateSent<`, `DateSent>`) and paging (`PageSize`, `Page`) in Twilio's
//! list shape. Errors are Twilio's error JSON.
//!
//! An accepted message is sent at once: its create answer says `queued` with no
//! `date_sent`, the list shows it `sent` with `date_sent` the moment it was accepted.

use std::collections::BTreeMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use crate::clock;
use crate::log::Call;
use crate::stub::{Outcome, Provider, SharedStub, arrival, target};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The messages Twilio accepted, in the order it accepted them.
#[derive(Debug, Default)]
pub struct Twilio {
    messages: Vec<Message>,
}

#[derive(Debug)]
struct Message {
    seq: u64,
    account: String,
    to: String,
    from: String,
    sent_ms: u64,
    /// The resource as the list shows it.
    resource: Value,
}

pub fn router(stub: SharedStub<Twilio>) -> Router {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            post(create).get(list),
        )
        .with_state(stub)
}

async fn create(
    State(stub): State<SharedStub<Twilio>>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let fields = form.map(|Form(f)| f).unwrap_or_default();
    let body = serde_json::to_value(&fields).expect("form fields serialise");
    let a = arrival("POST", target(&uri), &headers, body);
    stub.serve(a, |_| validate(&fields)).await
}

async fn list(
    State(stub): State<SharedStub<Twilio>>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let a = arrival("GET", target(&uri), &headers, Value::Null);
    let query = query.unwrap_or_default();
    stub.serve(a, |t| Outcome::Answer(t.list(&account, &query)))
        .await
}

fn validate(f: &BTreeMap<String, String>) -> Outcome {
    let missing = |code: u32, message: &str| {
        Outcome::Refuse(error_body(StatusCode::BAD_REQUEST, code, message))
    };
    if f.get("To").is_none_or(|s| s.is_empty()) {
        return missing(21604, "A 'To' phone number is required.");
    }
    if f.get("From").is_none_or(|s| s.is_empty()) {
        return missing(21603, "A 'From' phone number is required.");
    }
    if f.get("Body").is_none_or(|s| s.is_empty()) {
        return missing(21602, "Message body is required.");
    }
    Outcome::Accept
}

impl Provider for Twilio {
    fn apply(&mut self, call: &Call, accepted_ms: u64) -> Response {
        let field = |k: &str| call.body[k].as_str().unwrap_or_default().to_string();
        let account = call
            .path
            .strip_prefix("/2010-04-01/Accounts/")
            .and_then(|p| p.split('/').next())
            .unwrap_or_default()
            .to_string();
        let sid = format!("SM{:032x}", sid_seed(call.seq, call.at_ms));
        let date = clock::rfc2822(accepted_ms);
        let uri = format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json");
        let mut resource = json!({
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": field("Body"),
            "date_created": date,
            "date_sent": null,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": field("From"),
            "messaging_service_sid": null,
            "num_media": "0",
            "num_segments": "1",
            "price": null,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": format!("/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"),
            },
            "to": field("To"),
            "uri": uri,
        });
        let answer = (StatusCode::CREATED, Json(resource.clone())).into_response();
        resource["status"] = json!("sent");
        resource["date_sent"] = json!(date);
        self.messages.push(Message {
            seq: call.seq,
            account,
            to: field("To"),
            from: field("From"),
            sent_ms: accepted_ms,
            resource,
        });
        answer
    }

    fn injected_error(status: u16) -> Response {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let (twilio_code, message) = match status {
            429 => (20429, "Too Many Requests"),
            500 => (20500, "Internal Server Error"),
            503 => (20503, "Service Unavailable"),
            _ => (20001, "Injected error"),
        };
        error_body(code, twilio_code, message)
    }
}

/// The filters and page of a list request.
struct ListQuery {
    to: Option<String>,
    from: Option<String>,
    /// `DateSent` (that UTC day), `DateSent<` and `DateSent>`, as days since the epoch.
    on: Option<(String, i64)>,
    before: Option<(String, i64)>,
    after: Option<(String, i64)>,
    page_size: usize,
    page: usize,
}

impl ListQuery {
    fn parse(query: &str) -> Result<ListQuery, String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| format!("Invalid query string: {e}"))?;
        let mut q = ListQuery {
            to: None,
            from: None,
            on: None,
            before: None,
            after: None,
            page_size: DEFAULT_PAGE_SIZE,
            page: 0,
        };
        let date = |k: &str, v: String| match clock::parse_date(&v) {
            Some(d) => Ok(Some((v, d))),
            None => Err(format!(
                "Invalid {k}: expected a date as YYYY-MM-DD, found '{v}'"
            )),
        };
        for (k, v) in pairs {
            match k.as_str() {
                "To" => q.to = Some(v),
                "From" => q.from = Some(v),
                "DateSent" => q.on = date(&k, v)?,
                "DateSent<" => q.before = date(&k, v)?,
                "DateSent>" => q.after = date(&k, v)?,
                "PageSize" => {
                    q.page_size = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or_else(|| {
                            format!("Invalid PageSize: expected 1 to {MAX_PAGE_SIZE}, found '{v}'")
                        })?;
                }
                "Page" => {
                    q.page = v
                        .parse()
                        .map_err(|_| format!("Invalid Page: expected a page index, found '{v}'"))?;
                }
                // Twilio hands these out in next_page_uri; the page index says the same here.
                "PageToken" => {}
                other => {
                    return Err(format!(
                        "Unknown parameter '{other}': this stub filters by To, From, DateSent, \
                         DateSent<, DateSent> and pages by PageSize, Page"
                    ));
                }
            }
        }
        Ok(q)
    }

    fn matches(&self, m: &Message) -> bool {
        // As Twilio documents them: `DateSent<` is "on or before midnight on a date",
        // `DateSent>` "on or after midnight on a date", midnight being the day's start (UTC).
        let (day, sent) = (clock::day_of(m.sent_ms), m.sent_ms as i128);
        let midnight = |d: i64| i128::from(d) * 86_400_000;
        self.to.as_ref().is_none_or(|t| *t == m.to)
            && self.from.as_ref().is_none_or(|f| *f == m.from)
            && self.on.as_ref().is_none_or(|(_, d)| day == *d)
            && self
                .before
                .as_ref()
                .is_none_or(|(_, d)| sent <= midnight(*d))
            && self
                .after
                .as_ref()
                .is_none_or(|(_, d)| sent >= midnight(*d))
    }

    /// The list URI of page `page` with these filters.
    fn uri(&self, account: &str, page: usize, token: Option<&str>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let filters = [
            ("To", self.to.clone()),
            ("From", self.from.clone()),
            ("DateSent", self.on.as_ref().map(|(s, _)| s.clone())),
            ("DateSent<", self.before.as_ref().map(|(s, _)| s.clone())),
            ("DateSent>", self.after.as_ref().map(|(s, _)| s.clone())),
        ];
        for (k, v) in filters {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        pairs.push(("PageSize", self.page_size.to_string()));
        pairs.push(("Page", page.to_string()));
        if let Some(t) = token {
            pairs.push(("PageToken", t.to_string()));
        }
        let query = serde_urlencoded::to_string(&pairs).expect("query pairs encode");
        format!("/2010-04-01/Accounts/{account}/Messages.json?{query}")
    }
}

impl Twilio {
    fn list(&self, account: &str, query: &str) -> Response {
        let q = match ListQuery::parse(query) {
            Ok(q) => q,
            Err(message) => return error_body(StatusCode::BAD_REQUEST, 20001, &message),
        };
        let mut found: Vec<&Message> = self
            .messages
            .iter()
            .filter(|m| m.account == account && q.matches(m))
            .collect();
        // Newest first, as Twilio lists.
        found.sort_by_key(|m| std::cmp::Reverse((m.sent_ms, m.seq)));
        let start = q.page.saturating_mul(q.page_size);
        let page: Vec<&Value> = found
            .iter()
            .skip(start)
            .take(q.page_size)
            .map(|m| &m.resource)
            .collect();
        let more = found.len() > start + page.len();
        let next = more.then(|| {
            let last = page
                .last()
                .map_or("", |r| r["sid"].as_str().unwrap_or_default());
            q.uri(account, q.page + 1, Some(&format!("PA{last}")))
        });
        let previous = (q.page > 0).then(|| q.uri(account, q.page - 1, None));
        let body = json!({
            "messages": page,
            "page": q.page,
            "page_size": q.page_size,
            "uri": q.uri(account, q.page, None),
            "first_page_uri": q.uri(account, 0, None),
            "next_page_uri": next,
            "previous_page_uri": previous,
            "start": start,
            "end": start + page.len().saturating_sub(1),
        });
        (StatusCode::OK, Json(body)).into_response()
    }
}

/// A message sid component from the call (real sids are random; ours only need to be
/// well-formed, distinct per call and the same when the journal is replayed).
fn sid_seed(seq: u64, at_ms: u64) -> u128 {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in seq.to_le_bytes().into_iter().chain(at_ms.to_le_bytes()) {
        h = (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    h
}

fn error_body(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}
