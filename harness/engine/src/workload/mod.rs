//! The workload: a seeded plan of ops (what clients do, when), and an open-loop driver that
//! sends each op on time through the target client and records invoke and completion.

mod calendar;
mod client;
mod driver;
mod plan;

pub use calendar::{BASE_MONDAY, format_date, slot_start};
pub use client::{Reply, TargetClient};
pub use driver::drive;
pub use plan::{Planned, plan};
