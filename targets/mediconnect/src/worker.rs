//! The notification worker: consumes reminders from RabbitMQ and sends each as an SMS
//! (Twilio) and an e-mail (SendGrid).
//!
//! `naive` (000:C4, C6, S1): no timeouts, and a failed send is requeued whole, so the channel
//! that had succeeded sends again: duplicates. `hardened`: timeouts, a circuit breaker per
//! provider, de-duplication keyed by (appointment, reminder kind, channel) in PostgreSQL, and
//! retries with exponential backoff and jitter republished as new messages, ending in a
//! dead-letter queue; and bulkheads: each reminder is handled in its own task, its channels
//! independently, each channel with its own bounded number of calls in flight, so a hanging
//! Twilio holds up neither e-mails nor the reminders queued behind it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::json;
use tokio::sync::Mutex;

use crate::broker::{Broker, DEAD_LETTER_QUEUE, REMINDER_QUEUE, Reminder};
use crate::config::Profile;

pub const TWILIO_ACCOUNT: &str = "ACchaos00000000000000000000000000";
pub const SMS_FROM: &str = "+15550000000";
pub const MAIL_FROM: &str = "reminders@mediconnect.example";
/// Hardened: deliveries of one reminder before it goes to the dead-letter queue.
const MAX_ATTEMPTS: u32 = 6;
/// Hardened: unacknowledged reminders a worker holds, each handled in its own task.
const PREFETCH: u16 = 16;
/// Hardened: calls in flight to one provider at once (the bulkhead of each channel).
const CALLS_PER_CHANNEL: usize = 8;

pub fn http_client(profile: Profile) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(8)
        // A hidden retry would be a duplicate SMS the worker never decided to send.
        .retry(reqwest::retry::never());
    let builder = match profile {
        // 000:C4: the design sets no timeout on external calls.
        Profile::Naive => builder,
        Profile::Hardened => builder
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(3)),
    };
    builder.build().expect("reqwest client builds")
}

/// Where the worker sends, and what it shares across deliveries.
pub struct Senders {
    pub profile: Profile,
    pub http: reqwest::Client,
    pub twilio_url: String,
    pub sendgrid_url: String,
    pub pool: Pool,
    pub broker: Arc<Broker>,
    breakers: [Mutex<Breaker>; 2],
    bulkheads: [tokio::sync::Semaphore; 2],
}

impl Senders {
    pub fn new(
        profile: Profile,
        twilio: &str,
        sendgrid: &str,
        pool: Pool,
        broker: Arc<Broker>,
    ) -> Senders {
        Senders {
            profile,
            http: http_client(profile),
            twilio_url: format!(
                "{}/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Messages.json",
                twilio.trim_end_matches('/')
            ),
            sendgrid_url: format!("{}/v3/mail/send", sendgrid.trim_end_matches('/')),
            pool,
            broker,
            breakers: [
                Mutex::new(Breaker::default()),
                Mutex::new(Breaker::default()),
            ],
            bulkheads: [
                tokio::sync::Semaphore::new(CALLS_PER_CHANNEL),
                tokio::sync::Semaphore::new(CALLS_PER_CHANNEL),
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

/// A circuit breaker (000:C3, 001:C-2): after 5 failures in a row, calls fail fast for 2 s,
/// then one trial call decides whether it closes again.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    fn allows(&self) -> bool {
        self.open_until.is_none_or(|t| Instant::now() >= t)
    }

    fn record(&mut self, ok: bool) {
        if ok {
            *self = Breaker::default();
        } else {
            self.failures += 1;
            if self.failures >= 5 {
                self.open_until = Some(Instant::now() + Duration::from_secs(2));
            }
        }
    }
}

/// Run until the process ends, reconnecting to the broker when the connection is lost.
pub async fn run(amqp: String, senders: Arc<Senders>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match consume(&amqp, &senders).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!("notification worker: {e}; reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn consume(amqp: &str, s: &Arc<Senders>) -> Result<(), String> {
    let (_conn, ch) = Broker::open(amqp, false).await.map_err(|e| e.to_string())?;
    ch.basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = ch
        .basic_consume(
            REMINDER_QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("notification worker consuming {REMINDER_QUEUE}");
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.map_err(|e| e.to_string())?;
        let Ok(r) = serde_json::from_slice::<Reminder>(&delivery.data) else {
            // A message that can never be parsed is dropped, not redelivered forever.
            tracing::error!("dropping a malformed reminder");
            delivery
                .ack(BasicAckOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            continue;
        };
        match s.profile {
            // One reminder at a time: while one call hangs, nothing else is sent.
            Profile::Naive => {
                match deliver(s, &r).await {
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                    Err(e) => {
                        // The whole reminder goes back, channels that succeeded included.
                        tracing::warn!(
                            "reminder {}/{} failed, requeueing: {e}",
                            r.appointment_id,
                            r.kind
                        );
                        delivery
                            .nack(BasicNackOptions {
                                requeue: true,
                                multiple: false,
                            })
                            .await
                    }
                }
                .map_err(|e| e.to_string())?;
            }
            // Each reminder in its own task; the prefetch bounds how many run at once. An
            // acknowledgement lost with the connection means a redelivery, which the
            // de-duplication absorbs.
            Profile::Hardened => {
                let s = Arc::clone(s);
                tokio::spawn(async move {
                    if let Err(e) = deliver(&s, &r).await {
                        retry_later(&s, r, &e).await;
                    }
                    if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                        tracing::warn!("ack failed ({e}); the reminder will be redelivered");
                    }
                });
            }
        }
    }
    Err("consumer stream ended".into())
}

/// Hardened: wait out an exponential backoff with jitter, then republish with the attempt
/// counted, or give up to the dead-letter queue. If the broker refuses, the original stays
/// unacknowledged and comes back after a reconnect.
async fn retry_later(s: &Senders, mut r: Reminder, error: &str) {
    r.attempt += 1;
    let queue = if r.attempt >= MAX_ATTEMPTS {
        DEAD_LETTER_QUEUE
    } else {
        REMINDER_QUEUE
    };
    let base = Duration::from_millis(100) * 2u32.pow(r.attempt.min(6));
    let jitter = Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_u128() as u16 % 100));
    tracing::warn!(
        "reminder {}/{} attempt {} failed ({error}); to {queue}",
        r.appointment_id,
        r.kind,
        r.attempt
    );
    tokio::time::sleep(base.min(Duration::from_secs(5)) + jitter).await;
    if let Err(e) = s.broker.publish_to(queue, &r).await {
        tracing::warn!(
            "could not republish reminder {}/{}: {e}",
            r.appointment_id,
            r.kind
        );
    }
}

/// Send one reminder on every channel. Naive sends them in turn and stops at the first
/// failure; hardened sends them independently, skipping channels already delivered, and
/// fails if any channel did.
async fn deliver(s: &Senders, r: &Reminder) -> Result<(), String> {
    match s.profile {
        Profile::Naive => {
            for channel in [Channel::Sms, Channel::Email] {
                send(s, r, channel).await?;
            }
            Ok(())
        }
        Profile::Hardened => {
            let (sms, email) = tokio::join!(
                deliver_once(s, r, Channel::Sms),
                deliver_once(s, r, Channel::Email)
            );
            match (sms, email) {
                (Ok(()), Ok(())) => Ok(()),
                (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
                (Err(a), Err(b)) => Err(format!("{a}; {b}")),
            }
        }
    }
}

/// Hardened: claim, send inside the channel's bulkhead, and record the outcome.
async fn deliver_once(s: &Senders, r: &Reminder, channel: Channel) -> Result<(), String> {
    if !claim(s, r, channel).await? {
        return Ok(());
    }
    let sent = match s.bulkheads[channel as usize].acquire().await {
        Ok(_permit) => send(s, r, channel).await,
        Err(_) => unreachable!("the bulkhead semaphores are never closed"),
    };
    let status = if sent.is_ok() { "sent" } else { "failed" };
    mark(s, r, channel, status).await?;
    sent
}

/// Hardened de-duplication: claim a delivery. True if this worker should send it: never
/// tried, failed before, or claimed by a worker that has been silent for 30 s (it died
/// mid-send). False if it was sent, or another worker is sending it now.
async fn claim(s: &Senders, r: &Reminder, channel: Channel) -> Result<bool, String> {
    let db = s.pool.get().await.map_err(|e| e.to_string())?;
    let claim = db
        .prepare_cached(
            "INSERT INTO deliveries (appointment_id, kind, channel, status) VALUES ($1, $2, $3, 'sending')
             ON CONFLICT (appointment_id, kind, channel) DO UPDATE SET status = 'sending', updated_at = now()
                 WHERE deliveries.status = 'failed' OR (deliveries.status = 'sending'
                       AND deliveries.updated_at < now() - interval '30 seconds')
             RETURNING status",
        )
        .await
        .map_err(|e| e.to_string())?;
    let row = db
        .query_opt(&claim, &[&r.appointment_id, &r.kind, &channel.as_str()])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.is_some())
}

async fn mark(s: &Senders, r: &Reminder, channel: Channel, status: &str) -> Result<(), String> {
    let db = s.pool.get().await.map_err(|e| e.to_string())?;
    let update = db
        .prepare_cached(
            "UPDATE deliveries SET status = $4, updated_at = now() WHERE appointment_id = $1 AND kind = $2 AND channel = $3",
        )
        .await
        .map_err(|e| e.to_string())?;
    db.execute(
        &update,
        &[&r.appointment_id, &r.kind, &channel.as_str(), &status],
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

async fn send(s: &Senders, r: &Reminder, channel: Channel) -> Result<(), String> {
    let breaker = &s.breakers[channel as usize];
    if s.profile == Profile::Hardened && !breaker.lock().await.allows() {
        return Err(format!("{} circuit open", channel.as_str()));
    }
    // The key lets the provider (and the harness) recognise a repeat of the same delivery.
    let key = format!("{}:{}:{}", r.appointment_id, r.kind, channel.as_str());
    let req = match channel {
        Channel::Sms => s.http.post(&s.twilio_url).form(&[
            ("To", r.phone.as_str()),
            ("From", SMS_FROM),
            ("Body", r.body.as_str()),
        ]),
        Channel::Email => s
            .http
            .post(&s.sendgrid_url)
            .bearer_auth("SG.chaos-stub-key")
            .json(&json!({
                "personalizations": [{ "to": [{ "email": r.email }] }],
                "from": { "email": MAIL_FROM },
                "subject": format!("Your MediConnect appointment ({})", r.kind),
                "content": [{ "type": "text/plain", "value": r.body }],
                "custom_args": { "appointment_id": r.appointment_id, "kind": r.kind },
            })),
    };
    let req = if s.profile == Profile::Hardened {
        req.header("Idempotency-Key", key)
    } else {
        req
    };
    let result = match req.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("{} answered {}", channel.as_str(), resp.status())),
        Err(e) => Err(format!("{}: {e}", channel.as_str())),
    };
    if s.profile == Profile::Hardened {
        breaker.lock().await.record(result.is_ok());
    }
    result
}
