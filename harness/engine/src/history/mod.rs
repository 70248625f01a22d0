//! The history recorder: the only writer of `history.jsonl`.

mod clock;
mod recorder;

pub use clock::Clock;
pub use recorder::{Counters, Recorder, RecorderHandle};
