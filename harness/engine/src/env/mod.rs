//! Environments: the running services of one run. `local` starts them as child processes.

mod local;
mod ports;
mod postgres;
mod process;
mod rabbitmq;
mod ready;
mod reaper;
mod redis;
mod rundir;
mod stubs;
mod target;

pub use local::{Endpoints, LocalEnv, LocalEnvConfig, runs_root};
pub use ports::free_port;
pub use process::{ChildProcess, RUN_ID_ENV};
pub use reaper::{processes_of_run, reap_leftovers};
pub use rundir::RunDir;
