//! The REST API (`/api/v1`), health and metrics. Client mistakes are 4xx with a JSON error;
//! an unavailable dependency is 503; nothing a client sends yields a 500.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::Pool;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::booking::{self, Booked, Cancelled, Keyed, Rescheduled, Waitlisted};
use crate::breaker::Breakers;
use crate::broker::{Broker, Reminder};
use crate::config::Profile;
use crate::db::{self, DbError};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::ratelimit::{self, Decision};
use crate::schedule::{self, DAY, Template};
use crate::sessions::{SessionError, Sessions};
use crate::templates::Templates;

/// Hardened: the longest a request is worked on before it is answered 503 with
/// `Retry-After`, shorter than a client's 2 s timeout.
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_millis(1500);

pub struct AppState {
    pub profile: Profile,
    pub pool: Pool,
    pub sessions: Sessions,
    pub broker: Arc<Broker>,
    pub metrics: Metrics,
    pub rate_limit: u32,
    /// Hardened load shedding: the limit, and the requests in flight now.
    pub max_in_flight: usize,
    pub in_flight: std::sync::atomic::AtomicUsize,
    /// Hardened: whether the replica can serve bookings (readiness), and whether it stops.
    pub health: Arc<Health>,
    /// The circuit breakers of the worker and the EHR sync (hardened gauges).
    pub breakers: Arc<Breakers>,
    /// Unpublished outbox rows, as last counted (hardened gauge).
    pub outbox_pending: Arc<std::sync::atomic::AtomicU64>,
    pub templates: Templates,
}

impl AppState {
    /// The trace a request belongs to, carried to what it causes: hardened only (000:C13).
    fn trace(&self, headers: &HeaderMap) -> Option<String> {
        (self.profile == Profile::Hardened).then(|| crate::trace::of_request(headers))
    }
}

pub type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/sessions", post(login))
        .route("/api/v1/providers", get(providers))
        .route(
            "/api/v1/providers/{id}/schedule",
            get(get_schedule).put(put_schedule),
        )
        .route(
            "/api/v1/providers/{id}/available-slots",
            get(available_slots),
        )
        .route("/api/v1/appointments", post(book))
        .route("/api/v1/appointments/{id}", get(show))
        .route("/api/v1/appointments/{id}/cancel", post(cancel))
        .route("/api/v1/appointments/{id}/reschedule", post(reschedule))
        .route("/api/v1/waitlist", post(join_waitlist))
        .route(
            "/health/liveness",
            get(|| async { Json(json!({ "status": "alive" })) }),
        )
        .route("/health/readiness", get(readiness))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Count every request by method, route and status, and its time.
async fn count_requests(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let labels = format!(
        "method=\"{method}\",route=\"{route}\",status=\"{}\"",
        resp.status().as_u16()
    );
    s.metrics.inc("mediconnect_http_requests_total", &labels);
    s.metrics.add(
        "mediconnect_http_request_seconds_sum",
        &format!("route=\"{route}\""),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// Counts a request in flight for as long as it lives, however it ends.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn unavailable(code: &'static str, message: &str) -> Response {
    let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
    e.retry_after = Some(1);
    e.into_response()
}

/// Hardened admission and deadline; health and metrics are never refused. In turn:
/// - while stopping (SIGTERM), 503 `shutting_down`;
/// - past `max_in_flight` requests at once, 503 `overloaded` at once instead of queueing
///   without bound (000:C12, 001:M-2);
/// - while the readiness probe finds PostgreSQL unreachable, 503 `database_unavailable` at
///   once, and while a table lock blocks bookings, booking-path writes 503 `database_busy`
///   at once (000:C12: fail fast rather than wait for a dependency that cannot answer);
/// - a request still unanswered after `REQUEST_DEADLINE` is answered 503
///   `deadline_exceeded` (its client would have given up at 2 s).
///
/// Every refusal carries `Retry-After`. Naive has none of it: every request queues.
async fn guard(State(s): State<Shared>, req: Request, next: Next) -> Response {
    use std::sync::atomic::Ordering;
    let path = req.uri().path();
    let exempt = path.starts_with("/health") || path == "/metrics";
    if s.profile == Profile::Naive || exempt {
        return next.run(req).await;
    }
    let booking_write = req.method() == axum::http::Method::POST
        && (path.starts_with("/api/v1/appointments") || path == "/api/v1/waitlist");
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _counted = InFlight(&s.in_flight);
    if s.health.draining() {
        return unavailable("shutting_down", "this replica is stopping; retry shortly");
    }
    if now > s.max_in_flight {
        s.metrics.inc("mediconnect_shed_total", "");
        return unavailable("overloaded", "too many requests in flight; retry shortly");
    }
    if !s.health.reachable() {
        return unavailable(
            "database_unavailable",
            "the database cannot be reached; retry shortly",
        );
    }
    if booking_write && !s.health.bookable() {
        return unavailable(
            "database_busy",
            "a lock on the schedule blocks bookings; retry shortly",
        );
    }
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            s.metrics.inc("mediconnect_deadline_exceeded_total", "");
            unavailable(
                "deadline_exceeded",
                "the request could not be served in time; retry shortly",
            )
        }
    }
}

/// An error answered to the client as `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn body(&self) -> Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body())).into_response();
        // Every 429 and 503 says when to come back.
        let retry_after = self.retry_after.or(matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then_some(1));
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        r
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::warn!("{e}");
        match e {
            DbError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                e.to_string(),
            ),
            DbError::Query(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "database_error",
                e.to_string(),
            ),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        // Fail closed: without the session store no request is authenticated.
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "session_store_unavailable",
            e.to_string(),
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

/// The authenticated patient, from `Authorization: Bearer <token>`, within the rate limit.
pub struct Patient(pub i32);

impl FromRequestParts<Shared> for Patient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("missing bearer token"))?;
        let Some(id) = state.sessions.lookup(token.trim()).await? else {
            return Err(unauthorized("unknown or expired session"));
        };
        if let Decision::Limited { retry_after } =
            ratelimit::check(&state.sessions, id, state.rate_limit).await
        {
            state.metrics.inc("mediconnect_rate_limited_total", "");
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("more than {} requests a minute", state.rate_limit),
            );
            e.retry_after = Some(retry_after);
            return Err(e);
        }
        Ok(Patient(id))
    }
}

/// A JSON body, with a malformed one answered 400.
type Body<T> = Result<Json<T>, JsonRejection>;
type Answer = Result<(StatusCode, Json<Value>), ApiError>;

fn ok(status: StatusCode, v: Value) -> Answer {
    Ok((status, Json(v)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(State(s): State<Shared>, body: Body<LoginBody>) -> Answer {
    let Json(b) = body?;
    let Some(patient) = db::login(&s.pool, &b.username, &b.password).await? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong username or password",
        ));
    };
    let token = s.sessions.create(patient).await?;
    ok(
        StatusCode::CREATED,
        json!({ "token": token, "patient_id": patient }),
    )
}

async fn providers(State(s): State<Shared>, _p: Patient) -> Answer {
    let client = s.pool.get().await.map_err(DbError::from)?;
    let rows = client
        .query("SELECT id, name FROM providers ORDER BY id", &[])
        .await
        .map_err(DbError::from)?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "id": r.get::<_, i32>(0), "name": r.get::<_, String>(1) }))
        .collect();
    ok(StatusCode::OK, json!({ "providers": list }))
}

fn template_json(t: &Template) -> Value {
    json!({ "weekday": t.weekday, "start_minute": t.start_minute, "end_minute": t.end_minute, "slot_minutes": t.slot_minutes })
}

async fn get_schedule(State(s): State<Shared>, _p: Patient, Path(provider): Path<i32>) -> Answer {
    if !db::provider_exists(&s.pool, provider).await? {
        return Err(ApiError::not_found(format!("no provider {provider}")));
    }
    let templates = db::templates(&s.pool, provider).await?;
    ok(
        StatusCode::OK,
        json!({ "provider_id": provider, "weekly": templates.iter().map(template_json).collect::<Vec<_>>() }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    weekly: Vec<TemplateBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    weekday: i32,
    start_minute: i32,
    end_minute: i32,
    slot_minutes: i32,
}

/// Replace a provider's weekly template (seed 002's schedule-template model).
async fn put_schedule(
    State(s): State<Shared>,
    _p: Patient,
    Path(provider): Path<i32>,
    body: Body<ScheduleBody>,
) -> Answer {
    let Json(b) = body?;
    let mut templates = Vec::new();
    for (i, t) in b.weekly.iter().enumerate() {
        let bad = |m: &str| ApiError::bad_request(format!("weekly[{i}]: {m}"));
        if !(0..=6).contains(&t.weekday) {
            return Err(bad("weekday must be 0 (Monday) to 6 (Sunday)"));
        }
        if !(0..1440).contains(&t.start_minute)
            || !(1..=1440).contains(&t.end_minute)
            || t.start_minute >= t.end_minute
        {
            return Err(bad("expected 0 <= start_minute < end_minute <= 1440"));
        }
        if !(5..=480).contains(&t.slot_minutes) || (t.end_minute - t.start_minute) < t.slot_minutes
        {
            return Err(bad("slot_minutes must be 5 to 480 and fit the day's hours"));
        }
        if templates.iter().any(|x: &Template| x.weekday == t.weekday) {
            return Err(bad("one template per weekday"));
        }
        templates.push(Template {
            weekday: t.weekday,
            start_minute: t.start_minute,
            end_minute: t.end_minute,
            slot_minutes: t.slot_minutes,
        });
    }
    if !db::provider_exists(&s.pool, provider).await? {
        return Err(ApiError::not_found(format!("no provider {provider}")));
    }
    db::replace_templates(&s.pool, provider, &templates).await?;
    ok(
        StatusCode::OK,
        json!({ "provider_id": provider, "weekly": templates.iter().map(template_json).collect::<Vec<_>>() }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotsQuery {
    date: String,
}

async fn available_slots(
    State(s): State<Shared>,
    _patient: Patient,
    Path(provider): Path<i32>,
    query: Result<Query<SlotsQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = query?;
    let day = schedule::parse_date(&q.date).ok_or_else(|| {
        ApiError::bad_request(format!("date: expected YYYY-MM-DD, found {:?}", q.date))
    })?;
    if !db::provider_exists(&s.pool, provider).await? {
        return Err(ApiError::not_found(format!("no provider {provider}")));
    }
    let slots = if s.templates.caches() {
        // Naive: the day's slots from the replica's cached template (002:C-5).
        match s
            .templates
            .for_weekday(&s.pool, provider, schedule::weekday(day))
            .await?
        {
            Some(t) => db::free_slots_under(&s.pool, provider, day, &t).await?,
            None => Vec::new(),
        }
    } else {
        db::free_slots(&s.pool, provider, day).await?
    };
    ok(
        StatusCode::OK,
        json!({ "provider_id": provider, "date": q.date, "slots": slots }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotBody {
    provider_id: i32,
    /// Slot start, Unix seconds (UTC).
    start: i64,
}

/// 404 for an unknown provider, 422 for a start that is not one of its slots.
async fn check_slot(s: &AppState, provider: i32, start: i64) -> Result<(), ApiError> {
    if !db::provider_exists(&s.pool, provider).await? {
        return Err(ApiError::not_found(format!("no provider {provider}")));
    }
    let day = start - start.rem_euclid(DAY);
    let template = s
        .templates
        .for_weekday(&s.pool, provider, schedule::weekday(day))
        .await?;
    if !template.is_some_and(|t| t.has_slot(start)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_slot",
            "start is not a slot of the provider's schedule",
        ));
    }
    Ok(())
}

fn slot_taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "slot_taken",
        "the slot is already booked",
    )
}

fn booked_answer(b: &Booked) -> (u16, Value) {
    match b {
        Booked::Created(a) => (201, json!(a)),
        Booked::SlotTaken => (409, slot_taken().body()),
    }
}

async fn book(
    State(s): State<Shared>,
    Patient(patient): Patient,
    headers: HeaderMap,
    body: Body<SlotBody>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    check_slot(&s, b.provider_id, b.start).await?;
    let trace = s.trace(&headers);
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let (status, body, created, replayed) = match (s.profile, key) {
        // The design has no idempotency keys: a retried request is a new request.
        (Profile::Naive, _) | (Profile::Hardened, None) => {
            let booked = booking::book(
                &s.pool,
                s.profile,
                patient,
                b.provider_id,
                b.start,
                trace.as_deref(),
            )
            .await?;
            let (status, body) = booked_answer(&booked);
            let created = match booked {
                Booked::Created(a) => Some(a),
                Booked::SlotTaken => None,
            };
            (status, body, created, false)
        }
        (Profile::Hardened, Some(key)) => {
            if key.is_empty() || key.len() > 200 {
                return Err(ApiError::bad_request(
                    "Idempotency-Key must be 1 to 200 visible characters",
                ));
            }
            let hash = format!("{}:{}", b.provider_id, b.start);
            match booking::book_idempotent(
                &s.pool,
                patient,
                (&key, &hash),
                b.provider_id,
                b.start,
                trace.as_deref(),
                booked_answer,
            )
            .await?
            {
                (Keyed::KeyReused, _) => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for a different request",
                    ));
                }
                (Keyed::Answer(st), created) => (st.status, st.body, created, st.replayed),
            }
        }
    };
    let outcome = match (status, replayed) {
        (_, true) => "replayed",
        (201, _) => "created",
        _ => "slot_taken",
    };
    s.metrics.inc(
        "mediconnect_bookings_total",
        &format!("outcome=\"{outcome}\""),
    );
    if let Some(a) = &created {
        notify_booked(&s, a).await?;
    }
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Json(body),
    )
        .into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// The booking's confirmation. Naive publishes it inline in the request (the design as
/// reviewed, 000:C2): a broker failure turns a committed booking into a 500 and the reminder
/// is lost. Hardened wrote it to the outbox in the booking's transaction; the relay sends it.
async fn notify_booked(s: &AppState, a: &booking::Appointment) -> Result<(), ApiError> {
    if s.profile == Profile::Hardened {
        return Ok(());
    }
    let (phone, email) = db::patient_contact(&s.pool, a.patient_id)
        .await?
        .unwrap_or_default();
    let reminder = Reminder {
        appointment_id: a.id.clone(),
        kind: "confirmation".into(),
        phone,
        email,
        body: format!(
            "MediConnect: your appointment on {} UTC. Ref {}/confirmation",
            schedule::format_minute(a.start),
            a.id
        ),
        attempt: 0,
        trace: None,
    };
    match s.broker.publish(&reminder).await {
        Ok(()) => s.metrics.inc("mediconnect_reminders_published_total", ""),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "notification_failed",
                e.to_string(),
            ));
        }
    }
    Ok(())
}

async fn show(
    State(s): State<Shared>,
    Patient(patient): Patient,
    Path(id): Path<String>,
) -> Answer {
    match booking::get(&s.pool, patient, &id).await? {
        Some(a) => ok(StatusCode::OK, json!(a)),
        None => Err(ApiError::not_found(format!("no appointment {id}"))),
    }
}

async fn cancel(
    State(s): State<Shared>,
    Patient(patient): Patient,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let trace = s.trace(&headers);
    match booking::cancel(&s.pool, s.profile, patient, &id, trace.as_deref()).await? {
        Cancelled::Done {
            appointment,
            rebooked,
        } => {
            s.metrics.inc("mediconnect_cancellations_total", "");
            if let Some(r) = &rebooked {
                s.metrics.inc("mediconnect_waitlist_rebooked_total", "");
                notify_booked(&s, r).await?;
            }
            ok(
                StatusCode::OK,
                json!({ "appointment": appointment, "rebooked_from_waitlist": rebooked }),
            )
        }
        Cancelled::NotFound => Err(ApiError::not_found(format!("no appointment {id}"))),
        Cancelled::NotBooked => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_booked",
            "the appointment is not booked",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RescheduleBody {
    start: i64,
}

/// The answer is the moved appointment, with `rebooked_from_waitlist`: the appointment the
/// freed slot's waitlist promotion booked, or null.
async fn reschedule(
    State(s): State<Shared>,
    Patient(patient): Patient,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<RescheduleBody>,
) -> Answer {
    let Json(b) = body?;
    let Some(current) = booking::get(&s.pool, patient, &id).await? else {
        return Err(ApiError::not_found(format!("no appointment {id}")));
    };
    check_slot(&s, current.provider_id, b.start).await?;
    let trace = s.trace(&headers);
    match booking::reschedule(&s.pool, s.profile, &current, b.start, trace.as_deref()).await? {
        Rescheduled::Done {
            appointment,
            rebooked,
        } => {
            s.metrics.inc("mediconnect_reschedules_total", "");
            if let Some(r) = &rebooked {
                s.metrics.inc("mediconnect_waitlist_rebooked_total", "");
                notify_booked(&s, r).await?;
            }
            let mut answer = json!(appointment);
            answer["rebooked_from_waitlist"] = json!(rebooked);
            ok(StatusCode::OK, answer)
        }
        Rescheduled::NotBooked => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_booked",
            "the appointment is not booked",
        )),
        Rescheduled::SlotTaken => Err(slot_taken()),
        Rescheduled::VersionConflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "version_conflict",
            "the appointment was changed meanwhile; read it again and retry",
        )),
    }
}

async fn join_waitlist(
    State(s): State<Shared>,
    Patient(patient): Patient,
    body: Body<SlotBody>,
) -> Answer {
    let Json(b) = body?;
    check_slot(&s, b.provider_id, b.start).await?;
    match booking::join_waitlist(&s.pool, patient, b.provider_id, b.start).await? {
        Waitlisted::Joined(id) => ok(
            StatusCode::CREATED,
            json!({ "waitlist_id": id, "provider_id": b.provider_id, "start": b.start }),
        ),
        Waitlisted::SlotFree => Err(ApiError::new(
            StatusCode::CONFLICT,
            "slot_free",
            "the slot is free: book it",
        )),
    }
}

/// Naive (000:S6, 001:M-1: no health check design): 200 while the process lives. Hardened:
/// 200 exactly when the replica can serve bookings (PostgreSQL reachable and no lock in a
/// booking's way, see `health`), else 503 with `Retry-After`; Redis and the broker are
/// reported but do not count (sessions fall back to PostgreSQL, confirmations wait in the
/// outbox).
async fn readiness(State(s): State<Shared>) -> Response {
    if s.profile == Profile::Naive {
        return Json(json!({ "ready": true })).into_response();
    }
    let h = &s.health;
    let ready = h.ready();
    let body = json!({
        "ready": ready,
        "postgres": h.reachable(),
        "bookable": h.bookable(),
        "draining": h.draining(),
        "redis": s.sessions.redis_usable(),
        "rabbitmq": s.broker.last_known_up(),
    });
    if ready {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        r
    }
}

/// Prometheus text. Both profiles count requests and domain events; hardened adds the
/// saturation gauges (000:C8, 001:S-2): requests in flight, pool connections in use and
/// waited for, unpublished outbox rows, and each provider's circuit.
async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let mut text = s.metrics.render();
    if s.profile == Profile::Hardened {
        use std::sync::atomic::Ordering;
        let pool = s.pool.status();
        let mut gauges = vec![
            (
                "mediconnect_http_in_flight",
                String::new(),
                s.in_flight.load(Ordering::SeqCst) as f64,
            ),
            (
                "mediconnect_db_pool_in_use",
                String::new(),
                pool.size.saturating_sub(pool.available) as f64,
            ),
            (
                "mediconnect_db_pool_waiting",
                String::new(),
                pool.waiting as f64,
            ),
            (
                "mediconnect_outbox_pending",
                String::new(),
                s.outbox_pending.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (provider, open) in s.breakers.states() {
            gauges.push((
                "mediconnect_breaker_open",
                format!("provider=\"{provider}\""),
                if open { 1.0 } else { 0.0 },
            ));
        }
        text.push_str(&crate::metrics::render_gauges(&gauges));
    }
    ([("content-type", "text/plain; version=0.0.4")], text)
}
