//! The workload: a seeded plan of ops (what clients do, when), and an open-loop driver that
//! sends each op on time through the target client, retries it as the client's policy says,
//! and records invoke and completion under the op ids the plan fixed.

mod calendar;
mod client;
mod driver;
mod http1;
mod plan;
mod retry;

pub use calendar::{BASE_MONDAY, NARROW_HOURS, format_date, slot_of, slot_start};
pub use client::{Reply, Request, TargetClient};
pub use driver::drive;
pub use plan::{Move, Planned, PlannedOp, plan, trace_id, traceparent};
pub use retry::{Tried, replica_of, retry_wait, try_op};
