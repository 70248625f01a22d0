//! Shared by every benchmark of the workspace (included with `#[path]`): how a figure is
//! printed, and where a bench leaves its part for `chaos bench-report` to join.

use std::path::Path;

use chaos_model::bench::{BenchPart, Figure};

/// One figure, as the benches print it.
pub fn line(f: &Figure) {
    let verdict = match f.met() {
        Some(true) => "met",
        Some(false) => "NOT MET",
        None => "",
    };
    println!(
        "{:<54} {:>10.2} {:<5} vs {:>10.2} ({}) = {:>6}   goal {:<12} {verdict}",
        f.name,
        f.value,
        f.unit,
        f.peer_value,
        f.peer,
        f.ratio.map_or("-".into(), |r| format!("{r:.2}x")),
        f.goal.describe(),
    );
}

/// Print the part's figures and leave it in `reports/bench/parts/` (or `$CHAOS_BENCH_PARTS`).
pub fn write_part(part: &BenchPart) {
    for f in &part.figures {
        line(f);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("a bench's crate is two levels below the workspace");
    let dir = std::env::var_os("CHAOS_BENCH_PARTS")
        .map_or_else(|| chaos_model::bench::parts_dir(root), Into::into);
    std::fs::create_dir_all(&dir).expect("create the bench parts directory");
    let file = chaos_model::bench::part_file(&dir, &part.bench);
    std::fs::write(
        &file,
        serde_json::to_string_pretty(part).expect("a part serialises"),
    )
    .expect("write the bench part");
    println!("wrote {}", file.display());
}
