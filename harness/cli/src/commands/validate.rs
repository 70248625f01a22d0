//! `chaos validate FILE...`: parse and validate scenarios; start nothing. Each good file is
//! a line on stdout, each bad one its error (file, line, field) on stderr and exit 3.

use std::path::PathBuf;

use super::load_scenario;
use crate::exit;

pub fn run(files: &[PathBuf]) -> u8 {
    let mut code = exit::VALID;
    for f in files {
        match load_scenario(f, None) {
            Ok((s, _)) => println!(
                "{}: ok ({}, {} fault(s), invariants: {})",
                f.display(),
                s.name,
                s.faults.len(),
                s.invariants.enabled().join(", ")
            ),
            Err(e) => {
                eprintln!("chaos: {e}");
                code = exit::USAGE;
            }
        }
    }
    code
}
