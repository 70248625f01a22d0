//! `chaos bench-report`: join the parts `just bench` left into the dated benchmark report.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::exit;
use crate::report::bench;

pub fn run(parts: &Path, out: &Path, readme: &Path) -> anyhow::Result<u8> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let date = chaos_model::calendar::format_date(secs);
    // Parts that cannot be read or trusted, or a README without its section, are bad input.
    let inputs = match bench::inputs(parts, readme) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("chaos: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let written = bench::write(&inputs, out, readme, &date, &machine())?;
    for f in &written.files {
        println!("wrote {}", f.display());
    }
    println!("benchmarks: {}", written.goals);
    Ok(exit::VALID)
}

/// The machine the figures come from, in one line: CPUs, their model, the kernel.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|p| p.1.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |k| k.trim().to_string());
    format!("{cpus} CPUs ({model}), Linux {kernel}")
}
