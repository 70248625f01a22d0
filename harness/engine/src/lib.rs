//! The part of the harness that touches the world: environments (processes, ports), the
//! toxic proxies, faults, the workload, the history recorder, and the runner that puts a
//! run through its phases.
//!
//! Architecture invariant: this is the only crate of the harness that starts processes or
//! opens sockets; it never prints (progress goes to the caller through [`runner::Progress`]).

pub mod alloc;
pub mod env;
pub mod error;
pub mod fault;
pub mod history;
pub mod proxy;
pub mod runner;
mod timer;
pub mod workload;

pub use error::EngineError;
