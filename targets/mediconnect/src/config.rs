//! Configuration of one MediConnect replica: where its dependencies are and which profile.

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// The design as reviewed: check-then-insert booking, no idempotency, inline publishing.
    Naive,
    /// The reviews' countermeasures: constraints, transactions, confirms, timeouts.
    Hardened,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "mediconnect",
    about = "MediConnect appointment scheduling service (system under test)"
)]
pub struct Config {
    #[arg(long, value_enum, default_value = "hardened")]
    pub profile: Profile,
    /// Address of the HTTP API; port 0 picks a free port, printed on stdout when ready.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// PostgreSQL connection string (key=value form).
    #[arg(long)]
    pub postgres: String,
    /// Redis URL, e.g. redis://127.0.0.1:6379
    #[arg(long)]
    pub redis: String,
    /// AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f
    #[arg(long)]
    pub amqp: String,
    /// Base URL of the Twilio API (the stub, behind its proxy).
    #[arg(long)]
    pub twilio: String,
    /// Base URL of the SendGrid API (the stub, behind its proxy).
    #[arg(long)]
    pub sendgrid: String,
    /// Base URL of the EHR's FHIR API (the stub, behind its proxy), e.g. http://host/fhir
    #[arg(long)]
    pub ehr: String,
    /// Providers created at start (ids 1..=N), each with a weekday 09:00-17:00 template.
    #[arg(long, default_value_t = 5)]
    pub providers: u32,
    /// Patients created at start (ids 1..=N, username patient-N, password pw-N).
    #[arg(long, default_value_t = 100)]
    pub patients: u32,
    /// Hardened: requests handled at once before new ones are shed with 503 and Retry-After
    /// (000:C12). Naive queues without bound.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Requests per user per minute before 429 (the design's 100).
    #[arg(long, default_value_t = 100)]
    pub rate_limit: u32,
    /// The service clock's time (Unix seconds) at the real instant `--clock-epoch`; with it
    /// the clock runs `--clock-scale` times real time, so reminders come within seconds.
    #[arg(long, requires = "clock_epoch")]
    pub clock_start: Option<f64>,
    /// Real Unix time (seconds) at which the service clock reads `--clock-start`.
    #[arg(long, requires = "clock_start")]
    pub clock_epoch: Option<f64>,
    /// Service-clock seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    pub clock_scale: f64,
    /// Period of the reminder poller, in milliseconds (0: no poller in this replica).
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Period of the EHR sync, in milliseconds (0: no sync in this replica).
    #[arg(long, default_value_t = 1000)]
    pub ehr_sync_ms: u64,
    /// Run the notification worker in this replica.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub worker: bool,
}

impl Config {
    /// The service clock these options describe.
    pub fn clock(&self) -> crate::reminders::Clock {
        match (self.clock_start, self.clock_epoch) {
            (Some(start), Some(epoch)) => crate::reminders::Clock {
                start,
                epoch,
                scale: self.clock_scale,
            },
            _ => crate::reminders::Clock::real(),
        }
    }
}
