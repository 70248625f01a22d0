//! MediConnect, the appointment scheduling system under test, in two resilience profiles:
//! `naive` (the design as reviewed) and `hardened` (the reviews' countermeasures).

pub mod api;
pub mod booking;
pub mod breaker;
pub mod broker;
pub mod config;
pub mod db;
pub mod ehr;
pub mod health;
pub mod metrics;
pub mod outbox;
pub mod ratelimit;
pub mod reminders;
pub mod schedule;
pub mod sessions;
pub mod templates;
pub mod trace;
pub mod worker;

pub use config::{Config, Profile};
