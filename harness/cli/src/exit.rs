//! Exit codes, documented in the README: the one place they are defined.

use chaos_model::Verdict;

pub const VALID: u8 = 0;
pub const INVALID: u8 = 1;
pub const UNKNOWN: u8 = 2;
pub const USAGE: u8 = 3;
pub const ENVIRONMENT: u8 = 4;
/// Interrupted by SIGINT or SIGTERM (the shell's 128 + signal number).
pub const INTERRUPTED_INT: u8 = 130;
pub const INTERRUPTED_TERM: u8 = 143;

pub fn of_verdict(v: &Verdict) -> u8 {
    match v {
        Verdict::Valid => VALID,
        Verdict::Invalid { .. } => INVALID,
        Verdict::Unknown { .. } => UNKNOWN,
    }
}
