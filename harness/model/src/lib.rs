//! The stable contract of the harness: scenario files, the history format, evidence and verdicts.
//!
//! Architecture invariant: this crate does no IO and depends on no async runtime. Everything
//! here is a plain value that can be built by hand in a test, serialised, and read back.

pub mod bench;
pub mod calendar;
mod duration;
mod evidence;
mod fault;
mod history;
mod locate;
mod rank;
mod scenario;
mod suite;
mod verdict;

pub use duration::Dur;
pub use evidence::{
    AppointmentRow, Drain, Evidence, MetricSample, QueueDepth, ScheduleRow, ServiceClock, StubCall,
    WaitlistRow,
};
pub use fault::{
    Fault, FaultKind, LOCKABLE_TABLES, LockMode, Node, Service, Signal, Stream, StubKnobs,
    TableLock, Toxic,
};
pub use history::{
    Completion, FaultAction, FaultEvent, History, Invoke, OP_STRIDE, Op, OpKind, Outcome,
    PART_LOGIN, PART_RESUBMIT, Record, Slot, op_id,
};
pub use rank::nearest_rank;
pub use scenario::{
    AnswerBound, CallBound, DeliveryBound, EnvKind, Expect, GaugeBound, Invariants, LatencyBounds,
    Mix, Percentiles, PhaseRatios, Phases, Profile, ReadinessBound, RecoveryBound, Retry, Scenario,
    ScenarioError, TargetOptions, Workload,
};
pub use suite::{Baseline, MAX_SEEDS, Suite, SuiteRow, SuiteRun, Thresholds, glob_match};
pub use verdict::{CheckResult, Verdict};
