//! The stable contract of the harness: scenario files, the history format, evidence and verdicts.
//!
//! Architecture invariant: this crate does no IO and depends on no async runtime. Everything
//! here is a plain value that can be built by hand in a test, serialised, and read back.

pub mod calendar;
mod duration;
mod evidence;
mod history;
mod locate;
mod scenario;
mod suite;
mod verdict;

pub use duration::Dur;
pub use evidence::{AppointmentRow, Evidence, QueueDepth, ScheduleRow, StubCall};
pub use history::{
    Completion, FaultAction, FaultEvent, History, Invoke, Op, OpKind, Outcome, Record, Slot,
};
pub use scenario::{
    CallBound, Expect, Fault, FaultKind, Invariants, LatencyBounds, Mix, Percentiles, PhaseRatios,
    Phases, Profile, ReadinessBound, RecoveryBound, Scenario, ScenarioError, Service, Stream,
    StubKnobs, TargetOptions, Toxic, Workload,
};
pub use suite::{Suite, SuiteRun};
pub use verdict::{CheckResult, Verdict};
