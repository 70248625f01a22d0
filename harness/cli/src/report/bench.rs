//! The benchmark report: the parts `just bench` left (one per benchmark) joined into
//! `reports/bench/<date>.json` and `.md`, a plot of the proxy's latency distributions
//! pinned and unpinned side by side, and the latest table kept in `reports/README.md`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use chaos_model::bench::{BenchPart, Distribution, Figure};
use plotters::prelude::*;
use serde_json::json;

/// The parts a full `just bench` writes, in the report's order.
pub const PARTS: [&str; 5] = ["proxy", "proxy-pinned", "driver", "checkers", "envstart"];

/// Between these lines of `reports/README.md` stands the latest table.
const BEGIN: &str = "<!-- bench:begin (written by `just bench`) -->";
const END: &str = "<!-- bench:end -->";

/// Read every part present in `dir`, in the report's order (unknown ones after, by name).
pub fn read_parts(dir: &Path) -> anyhow::Result<Vec<BenchPart>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: no bench parts: run `just bench` first", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    let rank = |p: &PathBuf| {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        (
            PARTS.iter().position(|k| *k == stem).unwrap_or(PARTS.len()),
            stem.to_string(),
        )
    };
    files.sort_by_key(rank);
    let mut parts = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| f.display().to_string())?;
        let part: BenchPart = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bench part", f.display()))?;
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        ensure!(
            part.bench == stem,
            "{}: names bench `{}`, not `{stem}`",
            f.display(),
            part.bench
        );
        if let Some(problem) = part.problem() {
            bail!("{}: {problem}", f.display());
        }
        parts.push(part);
    }
    if parts.is_empty() {
        bail!("no bench part in {}: run `just bench` first", dir.display());
    }
    Ok(parts)
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn met(f: &Figure) -> &'static str {
    match f.met() {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "",
    }
}

/// The table of every figure: one section per part.
pub fn table(parts: &[BenchPart]) -> String {
    let mut s = String::new();
    for p in parts {
        s += &format!("### {}\n\n{}\n\n", p.title, p.conditions);
        s += "| figure | value | peer or floor | peer's | ratio | goal | |\n";
        s += "| --- | ---: | --- | ---: | ---: | --- | --- |\n";
        for f in &p.figures {
            s += &format!(
                "| {} | {} {} | {} | {} {} | {} | {} | {} |\n",
                f.name,
                num(f.value),
                f.unit,
                f.peer,
                num(f.peer_value),
                f.unit,
                f.ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                f.goal.describe(),
                met(f),
            );
        }
        s += "\n";
    }
    s
}

/// `n of m goals met`, over every figure that has a goal.
pub fn goals_line(parts: &[BenchPart]) -> String {
    let judged: Vec<bool> = parts
        .iter()
        .flat_map(|p| p.figures.iter().filter_map(Figure::met))
        .collect();
    let met = judged.iter().filter(|m| **m).count();
    format!("{met} of {} goals met", judged.len())
}

/// The proxy's round-trip distributions, one panel per part (`proxy`, `proxy-pinned`), on
/// log scales: latency against "nines" (1 - quantile), as latency percentile plots are read.
pub fn proxy_plot(parts: &[BenchPart]) -> Option<String> {
    let panels: Vec<&BenchPart> = parts
        .iter()
        .filter(|p| p.bench.starts_with("proxy") && !p.distributions.is_empty())
        .collect();
    if panels.is_empty() {
        return None;
    }
    let colours = [
        RGBColor(90, 90, 90),
        RGBColor(200, 40, 40),
        RGBColor(230, 140, 20),
        RGBColor(40, 100, 200),
        RGBColor(40, 150, 80),
        RGBColor(140, 60, 170),
    ];
    let (w, h) = (560u32, 380u32);
    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (w * panels.len() as u32, h)).into_drawing_area();
        root.fill(&WHITE).expect("fill an in-memory SVG");
        let areas = root.split_evenly((1, panels.len()));
        for (area, part) in areas.iter().zip(&panels) {
            let all = part.distributions.iter().flat_map(|d| d.quantiles.iter());
            let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), &(_, v)| {
                (lo.min(v.max(0.1)), hi.max(v))
            });
            // Validated parts have quantiles; all-zero values still get a range to draw.
            let hi = hi.max(lo * 2.0);
            let nines = |q: f64| -(1.0 - q).max(1e-6).log10();
            let mut chart = ChartBuilder::on(area)
                .caption(&part.title, ("sans-serif", 15))
                .margin(10)
                .margin_right(30)
                .x_label_area_size(34)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..5.0, (lo * 0.8..hi * 1.25).log_scale())
                .expect("build a chart");
            chart
                .configure_mesh()
                .x_desc("percentile")
                .y_desc("round trip, us")
                .x_labels(6)
                .x_label_formatter(&|x| {
                    // Whole nines: p0, p90, p99, p99.9, ...
                    let k = x.round() as i32;
                    let q = 100.0 * (1.0 - 10f64.powi(-k));
                    format!("p{q:.*}", (k - 2).max(0) as usize)
                })
                .y_labels(8)
                .y_label_formatter(&|y| num(*y))
                .light_line_style(TRANSPARENT)
                .draw()
                .expect("draw the mesh");
            for (i, d) in part.distributions.iter().enumerate() {
                let c = colours[i % colours.len()];
                let pts: Vec<(f64, f64)> = d
                    .quantiles
                    .iter()
                    .filter(|(q, _)| *q < 1.0)
                    .map(|&(q, v)| (nines(q), v.max(0.1)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                    .expect("draw a distribution")
                    .label(d.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .expect("draw the legend");
        }
        root.present().expect("finish the SVG");
    }
    Some(out)
}

/// What `chaos bench-report` wrote.
#[derive(Debug)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub goals: String,
}

/// What a report is made of, read and checked before anything is written: the parts, and
/// the README whose section keeps the latest table.
pub struct Inputs {
    parts: Vec<BenchPart>,
    readme_text: String,
    /// Where the section begins and ends in `readme_text`.
    section: (usize, usize),
}

/// Read the parts of `parts_dir` and `readme`; an error here is bad input (exit 3).
pub fn inputs(parts_dir: &Path, readme: &Path) -> anyhow::Result<Inputs> {
    let parts = read_parts(parts_dir)?;
    let readme_text =
        std::fs::read_to_string(readme).with_context(|| readme.display().to_string())?;
    let (Some(a), Some(b)) = (readme_text.find(BEGIN), readme_text.find(END)) else {
        bail!(
            "{} has no `{BEGIN}` ... `{END}` section to keep the latest table in",
            readme.display()
        );
    };
    ensure!(
        a < b,
        "{}: `{END}` stands before `{BEGIN}`",
        readme.display()
    );
    Ok(Inputs {
        parts,
        readme_text,
        section: (a, b),
    })
}

/// Join the parts into `<out>/<date>.{json,md}` (and the proxy plot), and put the table
/// between the markers of `readme`.
pub fn write(
    inputs: &Inputs,
    out: &Path,
    readme: &Path,
    date: &str,
    machine: &str,
) -> anyhow::Result<Written> {
    let Inputs {
        parts,
        readme_text,
        section: (a, b),
    } = inputs;
    let (parts, a, b) = (parts.as_slice(), *a, *b);
    let io = |p: &Path| p.display().to_string();
    std::fs::create_dir_all(out).with_context(|| io(out))?;
    let missing: Vec<&str> = PARTS
        .iter()
        .copied()
        .filter(|k| !parts.iter().any(|p| p.bench == *k))
        .collect();
    let goals = goals_line(parts);
    let mut files = Vec::new();
    let json_file = out.join(format!("{date}.json"));
    let doc = json!({ "date": date, "machine": machine, "missing": missing, "parts": parts });
    std::fs::write(
        &json_file,
        serde_json::to_string_pretty(&doc).expect("the report serialises"),
    )
    .with_context(|| io(&json_file))?;
    files.push(json_file);
    let mut md = format!(
        "# Benchmarks, {date}\n\n{machine}. Every ratio is against a peer or floor measured in \
         the same run (`just bench`); {goals}.\n\n"
    );
    if !missing.is_empty() {
        md += &format!("Not in this run: {}.\n\n", missing.join(", "));
    }
    if let Some(svg) = proxy_plot(parts) {
        let svg_file = out.join(format!("{date}-proxy-latency.svg"));
        std::fs::write(&svg_file, svg).with_context(|| io(&svg_file))?;
        md += &format!("![proxy round-trip distributions]({date}-proxy-latency.svg)\n\n");
        files.push(svg_file);
    }
    md += &table(parts);
    md += &distributions_table(parts);
    let md_file = out.join(format!("{date}.md"));
    std::fs::write(&md_file, &md).with_context(|| io(&md_file))?;
    files.push(md_file);
    let latest = format!(
        "{BEGIN}\n\nLatest: [{date}](bench/{date}.md), {machine}; {goals}.\n\n{}{END}",
        table(parts)
    );
    let new_readme = format!(
        "{}{latest}{}",
        &readme_text[..a],
        &readme_text[b + END.len()..]
    );
    std::fs::write(readme, new_readme).with_context(|| io(readme))?;
    files.push(readme.to_path_buf());
    Ok(Written { files, goals })
}

/// Each distribution's p50, p99, p99.9 and max, for people who read tables.
fn distributions_table(parts: &[BenchPart]) -> String {
    let mut s = String::new();
    for p in parts.iter().filter(|p| !p.distributions.is_empty()) {
        s += &format!("### {}: distributions\n\n", p.title);
        s += "| path | p50 | p90 | p99 | p99.9 | max |\n| --- | ---: | ---: | ---: | ---: | ---: |\n";
        for d in &p.distributions {
            let at =
                |q: f64| quantile(d, q).map_or("-".into(), |v| format!("{} {}", num(v), d.unit));
            s += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                d.name,
                at(0.5),
                at(0.9),
                at(0.99),
                at(0.999),
                at(1.0)
            );
        }
        s += "\n";
    }
    s
}

fn quantile(d: &Distribution, q: f64) -> Option<f64> {
    d.quantiles
        .iter()
        .find(|(k, _)| (k - q).abs() < 1e-9)
        .map(|p| p.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_model::bench::Goal;

    /// Read and write, as `chaos bench-report` does.
    fn write(
        parts: &Path,
        out: &Path,
        readme: &Path,
        date: &str,
        machine: &str,
    ) -> anyhow::Result<Written> {
        super::write(&inputs(parts, readme)?, out, readme, date, machine)
    }

    /// A directory of this test's own, removed when it ends.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let d = std::env::temp_dir().join(format!("chaos-bench-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            TempDir(d)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn part(bench: &str, ratio_value: f64) -> BenchPart {
        let sorted: Vec<f64> = (1..=2000).map(|i| f64::from(i) / 10.0).collect();
        BenchPart {
            bench: bench.into(),
            title: format!("{bench} title"),
            conditions: "measured so".into(),
            figures: vec![
                Figure::new(
                    "rtt p50",
                    ratio_value,
                    "us",
                    "plain",
                    10.0,
                    Goal::AtMost(1.0),
                ),
                Figure::new("context", 3.0, "us", "direct", 2.0, Goal::Reported),
            ],
            distributions: vec![Distribution::from_sorted("direct", "us", &sorted)],
        }
    }

    #[test]
    fn joins_parts_into_dated_files_and_keeps_the_latest_table_in_the_readme() {
        let dir = TempDir::new("joins");
        let parts = dir.path().join("parts");
        std::fs::create_dir_all(&parts).unwrap();
        for (b, v) in [("proxy-pinned", 12.0), ("proxy", 8.0), ("zzz-extra", 9.0)] {
            std::fs::write(
                parts.join(format!("{b}.json")),
                serde_json::to_string(&part(b, v)).unwrap(),
            )
            .unwrap();
        }
        let readme = dir.path().join("README.md");
        std::fs::write(
            &readme,
            format!("# Runs\n\nbefore\n\n{BEGIN}\nold table\n{END}\n\nafter\n"),
        )
        .unwrap();
        let w = write(&parts, dir.path(), &readme, "2026-12-03", "2 CPUs").unwrap();
        assert_eq!(w.goals, "2 of 3 goals met");
        let md = std::fs::read_to_string(dir.path().join("2026-12-03.md")).unwrap();
        // The report's order, not the directory's: proxy before proxy-pinned, unknown last.
        let (a, b, c) = (
            md.find("### proxy title").unwrap(),
            md.find("### proxy-pinned title").unwrap(),
            md.find("### zzz-extra title").unwrap(),
        );
        assert!(a < b && b < c, "{md}");
        assert!(
            md.contains("| rtt p50 | 8.00 us | plain | 10.0 us | 0.80x | <= 1.00x | met |"),
            "{md}"
        );
        assert!(
            md.contains("| rtt p50 | 12.0 us | plain | 10.0 us | 1.20x | <= 1.00x | **not met** |")
        );
        assert!(md.contains("Not in this run: driver, checkers, envstart."));
        assert!(
            md.contains("| direct | 100 us | 180 us | 198 us | 200 us | 200 us |"),
            "{md}"
        );
        let svg = std::fs::read_to_string(dir.path().join("2026-12-03-proxy-latency.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("proxy-pinned title"));
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("2026-12-03.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["parts"].as_array().unwrap().len(), 3);
        assert_eq!(json["parts"][0]["figures"][0]["ratio"], 0.8);
        let text = std::fs::read_to_string(&readme).unwrap();
        assert!(text.starts_with("# Runs\n\nbefore\n\n") && text.ends_with("\n\nafter\n"));
        assert!(!text.contains("old table") && text.contains("Latest: [2026-12-03]"));
        // Again: the section is replaced, not appended to.
        write(&parts, dir.path(), &readme, "2026-12-04", "2 CPUs").unwrap();
        let again = std::fs::read_to_string(&readme).unwrap();
        assert_eq!(again.matches(BEGIN).count(), 1);
        assert!(again.contains("Latest: [2026-12-04]"));
    }

    #[test]
    fn refuses_what_it_cannot_join() {
        let dir = TempDir::new("refuses");
        let readme = dir.path().join("README.md");
        std::fs::write(&readme, "no markers\n").unwrap();
        let err = write(dir.path(), dir.path(), &readme, "d", "m").unwrap_err();
        assert!(
            format!("{err:#}").contains("run `just bench` first"),
            "{err:#}"
        );
        std::fs::write(dir.path().join("proxy.json"), "{\"bench\": 1}").unwrap();
        let err = write(dir.path(), dir.path(), &readme, "d", "m").unwrap_err();
        assert!(
            format!("{err:#}").contains("proxy.json: not a bench part"),
            "{err:#}"
        );
        std::fs::write(
            dir.path().join("proxy.json"),
            serde_json::to_string(&part("proxy", 1.0)).unwrap(),
        )
        .unwrap();
        let err = write(dir.path(), dir.path(), &readme, "d", "m").unwrap_err();
        assert!(err.to_string().contains("no `<!-- bench:begin"), "{err}");
        std::fs::rename(
            dir.path().join("proxy.json"),
            dir.path().join("driver.json"),
        )
        .unwrap();
        let err = write(dir.path(), dir.path(), &readme, "d", "m").unwrap_err();
        assert!(
            err.to_string()
                .contains("names bench `proxy`, not `driver`"),
            "{err}"
        );
        let mut bad = part("driver", 1.0);
        bad.distributions[0].quantiles.clear();
        std::fs::write(
            dir.path().join("driver.json"),
            serde_json::to_string(&bad).unwrap(),
        )
        .unwrap();
        let err = write(dir.path(), dir.path(), &readme, "d", "m").unwrap_err();
        assert!(err.to_string().contains("has no quantiles"), "{err}");
    }
}
