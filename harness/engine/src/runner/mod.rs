//! The runner: puts one run through its phases, up -> steady and faults -> heal -> recover
//! -> quiesce -> collect -> check, and writes the raw artefacts of the run bundle.

mod drain;
mod evidence;
mod progress;
mod run;
mod sample;
mod schedule;

pub use evidence::collect_evidence;
pub use progress::{Progress, ProgressFn};
pub use run::{PhaseTime, RunReport, RunSpec, run};
pub use sample::gauges;
pub use schedule::{Applied, Stamp};
