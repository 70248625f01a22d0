//! End-to-end tests of the engine against real servers (PostgreSQL, Redis, RabbitMQ, the
//! stubs and MediConnect): the `e2e` tier, run one at a time. Build the target and the stubs
//! first (`cargo build -p mediconnect -p stubs --bins`; `just test` does).

#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/workload.rs"]
mod workload;
