//! HTTP stubs of the providers MediConnect calls: Twilio Messages, SendGrid Mail Send and
//! Email Activity, and an EHR's FHIR `Appointment` API. Each stub records every call the
//! moment it arrives and completes the record when it acts on the call and when it answers
//! (so a call its caller abandoned is still in the log), can journal its log to a file and
//! replay it on start (so it survives being killed), obeys fault knobs set through a control
//! API, and answers the provider's own lookups of what it already has. See the crate's
//! README for the endpoints, the knobs and the command line.

pub mod activity_query;
pub mod clock;
pub mod control;
pub mod ehr;
pub mod journal;
pub mod log;
pub mod sendgrid;
pub mod stub;
pub mod traceparent;
pub mod twilio;

use std::path::Path;
use std::sync::Arc;

pub use control::{Knobs, control_router};
pub use journal::JournalError;
pub use log::{Call, CallLog};
pub use stub::{Provider, SharedStub, Stub};

/// The three stubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Twilio,
    Sendgrid,
    Ehr,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Twilio, Kind::Sendgrid, Kind::Ehr];

    /// Its name on the command line, in the ready line and in the control API's paths.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Twilio => "twilio",
            Kind::Sendgrid => "sendgrid",
            Kind::Ehr => "ehr",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("expected twilio, sendgrid or ehr, found '{s}'"))
    }
}

/// One stub's two HTTP faces.
#[derive(Debug)]
pub struct Routers {
    /// The provider's API, served on its own port.
    pub api: axum::Router,
    /// Its control API, nested under `/<name>`: `/<name>/calls`, `/<name>/knobs`,
    /// `/<name>/reset`.
    pub control: axum::Router,
}

/// Builds stub `kind`, journaled to `journal` (and restored from it) when given.
pub fn routers(kind: Kind, journal: Option<&Path>) -> Result<Routers, JournalError> {
    fn build<P: Provider>(
        journal: Option<&Path>,
        api: fn(SharedStub<P>) -> axum::Router,
        name: &str,
    ) -> Result<Routers, JournalError> {
        let stub = Arc::new(match journal {
            Some(path) => Stub::<P>::journaled(path)?,
            None => Stub::<P>::in_memory(),
        });
        Ok(Routers {
            api: api(stub.clone()),
            control: axum::Router::new().nest(&format!("/{name}"), control_router(stub)),
        })
    }
    match kind {
        Kind::Twilio => build(journal, twilio::router, kind.name()),
        Kind::Sendgrid => build(journal, sendgrid::router, kind.name()),
        Kind::Ehr => build(journal, ehr::router, kind.name()),
    }
}
