//! RabbitMQ: one lazily (re)connected channel for publishing, and the queue's declaration.
//! lapin does not reconnect by itself here: a broken connection is dropped and the next
//! publish connects again.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config::Profile;

pub const REMINDER_QUEUE: &str = "reminders";
/// Hardened: reminders that failed every retry end here for a person to look at.
pub const DEAD_LETTER_QUEUE: &str = "reminders.dead";

/// One reminder to send: published at booking, consumed by the notification worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reminder {
    pub appointment_id: String,
    pub kind: String,
    pub phone: String,
    pub email: String,
    pub body: String,
    /// Deliveries tried so far (hardened retries republish with this incremented).
    #[serde(default)]
    pub attempt: u32,
    /// Hardened: the trace id of the request that booked the appointment (000:C13), sent
    /// on to the providers as a `traceparent` of the same trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

pub struct Broker {
    url: String,
    profile: Profile,
    channel: Mutex<Option<(Connection, Channel)>>,
    /// Whether the last connect or publish went through (for readiness's report).
    up: std::sync::atomic::AtomicBool,
}

impl Broker {
    pub fn new(url: &str, profile: Profile) -> Broker {
        Broker {
            url: url.to_string(),
            profile,
            channel: Mutex::new(None),
            up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Connect, open a channel and declare the durable reminder queue.
    pub async fn open(url: &str, confirms: bool) -> Result<(Connection, Channel), BrokerError> {
        let err = |e: lapin::Error| BrokerError::Unavailable(e.to_string());
        let conn = tokio::time::timeout(
            Duration::from_secs(2),
            Connection::connect(url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| BrokerError::Unavailable("connect timed out".into()))?
        .map_err(err)?;
        let ch = conn.create_channel().await.map_err(err)?;
        if confirms {
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(err)?;
        }
        for q in [REMINDER_QUEUE, DEAD_LETTER_QUEUE] {
            ch.queue_declare(
                q.into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .map_err(err)?;
        }
        Ok((conn, ch))
    }

    /// Publish a persistent reminder to the reminder queue.
    pub async fn publish(&self, reminder: &Reminder) -> Result<(), BrokerError> {
        self.publish_to(REMINDER_QUEUE, reminder).await
    }

    /// Publish a persistent reminder to `queue`. Hardened waits for the broker's confirm.
    pub async fn publish_to(&self, queue: &str, reminder: &Reminder) -> Result<(), BrokerError> {
        let hardened = self.profile == Profile::Hardened;
        let mut guard = self.channel.lock().await;
        if guard
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            *guard = Some(Self::open(&self.url, hardened).await.inspect_err(|_| {
                self.up.store(false, std::sync::atomic::Ordering::Relaxed);
            })?);
        }
        let (_, ch) = guard.as_ref().expect("channel opened above");
        let payload = serde_json::to_vec(reminder).expect("reminder serialises");
        let result = async {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .map_err(|e| e.to_string())?;
            if hardened && confirm.await.map_err(|e| e.to_string())?.is_nack() {
                return Err("the broker nacked the publish".to_string());
            }
            Ok(())
        };
        let outcome = tokio::time::timeout(Duration::from_secs(2), result)
            .await
            .unwrap_or_else(|_| Err("publish timed out".to_string()));
        self.up
            .store(outcome.is_ok(), std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = outcome {
            *guard = None;
            return Err(BrokerError::Unavailable(e));
        }
        Ok(())
    }

    /// Whether the broker was reachable at the last publish, without waiting for it.
    pub fn last_known_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Close the publishing connection cleanly (graceful shutdown), waiting at most `within`.
    pub async fn close(&self, within: Duration) {
        let taken = match tokio::time::timeout(within, self.channel.lock()).await {
            Ok(mut guard) => guard.take(),
            Err(_) => None,
        };
        if let Some((conn, _)) = taken {
            let _ = tokio::time::timeout(within, conn.close(200, "shutdown".into())).await;
        }
    }
}
