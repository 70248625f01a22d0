//! `report.html`: one self-contained page per run (inline CSS and SVG, no script, no
//! network, no font file): the verdict table with links to the ops that prove each verdict,
//! the plots, the faults as applied, the evidence collected, and the cited ops.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chaos_check::fmt_us;
use chaos_engine::runner::RunReport;
use chaos_model::{CheckResult, Evidence, History, Op, Verdict};

use super::RunFacts;
use super::plots::{self, Series};

/// How many of the slowest ops the ops table lists besides the cited ones.
const SLOWEST_LISTED: usize = 20;

pub(crate) const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}code{font-size:12px}
.valid{color:#1d7a3a;font-weight:600}.invalid{color:#c0262d;font-weight:700}
.unknown{color:#a86400;font-weight:600}
.badge{padding:2px 10px;border-radius:10px;color:#fff}
.b-valid{background:#1d7a3a}.b-invalid{background:#c0262d}.b-unknown{background:#a86400}
.facts{color:#555}tr:target{background:#fff3b0}svg{max-width:100%;height:auto}
";

pub fn report_html(
    f: &RunFacts<'_>,
    r: &RunReport,
    history: &History,
    evidence: &Evidence,
) -> String {
    let overall = CheckResult::overall(&r.results);
    let [invoked, ok, fail, info] = r.counts;
    let ops = history.ops();
    let series = Series::new(history, &ops, evidence);
    let mut h = String::new();
    let title = format!("{} on {}", f.scenario, f.profile);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · {}</title><style>{STYLE}</style></head><body>\n",
        esc(&title),
        overall.name()
    );
    let _ = write!(
        h,
        "<h1>{} <span class=\"badge b-{v}\">{v}</span></h1>\n<p class=\"facts\">seed {} · {invoked} ops (ok {ok}, fail {fail}, info {info}) · environment up in {:.1}s · workload {:.1}s{}<br>reproduce: <code>{}</code></p>\n",
        esc(&title),
        f.seed,
        super::to_ms(r.setup_s),
        super::to_ms(r.workload_s),
        super::phases_line(r).map_or(String::new(), |l| format!("<br>{}", esc(&l))),
        esc(f.reproduce),
        v = overall.name(),
    );

    h += "<h2>Invariants</h2>\n<table><tr><th>invariant</th><th>verdict</th><th>detail</th><th>proof</th></tr>\n";
    for c in &r.results {
        let _ = writeln!(
            h,
            "<tr id=\"inv-{}\"><td>{}</td><td class=\"{v}\">{v}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.invariant),
            esc(&c.invariant),
            esc(&detail(c)),
            proof(&c.verdict),
            v = c.verdict.name(),
        );
    }
    h += "</table>\n";

    h += "<h2>Latency</h2>\n";
    h += &plots::latency_svg(&series);
    h += "\n<h2>Throughput and errors</h2>\n";
    h += &plots::throughput_svg(&series);
    h += "\n<h2>Reminder deliveries</h2>\n";
    match plots::deliveries_svg(&series) {
        Some(svg) => h += &svg,
        None => h += "<p>No SMS or e-mail was accepted by the stubs in this run.</p>",
    }
    h += "\n";

    faults(&mut h, history);
    evidence_section(&mut h, evidence);
    ops_table(&mut h, r, &ops);
    h += "</body></html>\n";
    h
}

fn detail(c: &CheckResult) -> String {
    match &c.verdict {
        Verdict::Unknown { reason } if !c.detail.contains(reason.as_str()) => {
            format!("{}; {reason}", c.detail)
        }
        _ => c.detail.clone(),
    }
}

fn proof(v: &Verdict) -> String {
    let Verdict::Invalid { ops, rows } = v else {
        return String::new();
    };
    let mut out: Vec<String> = ops
        .iter()
        .map(|o| format!("<a href=\"#op-{o}\">{o}</a>"))
        .collect();
    out.extend(rows.iter().map(|row| format!("<code>{}</code>", esc(row))));
    out.join(", ")
}

fn faults(h: &mut String, history: &History) {
    let events: Vec<_> = history.faults().collect();
    if events.is_empty() {
        return;
    }
    *h +=
        "<h2>Faults</h2>\n<table><tr><th>fault</th><th>action</th><th>at</th><th>error</th></tr>\n";
    for e in events {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.name),
            e.action,
            secs(e.time_us),
            esc(e.error.as_deref().unwrap_or(""))
        );
    }
    *h += "</table>\n";
}

fn evidence_section(h: &mut String, ev: &Evidence) {
    *h += "<h2>Evidence</h2>\n<ul>\n";
    match &ev.appointments {
        Some(rows) => {
            let booked = rows.iter().filter(|r| r.status == "booked").count();
            let _ = writeln!(
                h,
                "<li>{} appointment row(s), {booked} booked</li>",
                rows.len()
            );
        }
        None => *h += "<li>appointment rows: not collected</li>\n",
    }
    for (stub, calls) in &ev.stub_calls {
        let ok = calls.iter().filter(|c| c.took_effect()).count();
        let _ = writeln!(
            h,
            "<li>{}: {} call(s), {ok} answered 2xx</li>",
            esc(stub),
            calls.len()
        );
    }
    if let Some(queues) = &ev.queues {
        for (q, d) in queues {
            let _ = writeln!(
                h,
                "<li>queue <code>{}</code>: {} message(s) waiting, {} consumer(s)</li>",
                esc(q),
                d.messages,
                d.consumers
            );
        }
    }
    if !ev.metrics.is_empty() {
        let _ = writeln!(
            h,
            "<li>/metrics of {} replica(s) in <code>evidence/</code></li>",
            ev.metrics.len()
        );
    }
    for e in &ev.errors {
        let _ = writeln!(h, "<li class=\"unknown\">not collected: {}</li>", esc(e));
    }
    *h += "</ul>\n";
}

/// Every op a verdict cites, and the slowest ops, one row each with an anchor.
fn ops_table(h: &mut String, r: &RunReport, ops: &[Op<'_>]) {
    let mut cited: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for c in &r.results {
        if let Verdict::Invalid { ops: proof, .. } = &c.verdict {
            for o in proof {
                cited.entry(*o).or_default().insert(c.invariant.as_str());
            }
        }
    }
    let mut slow: Vec<&Op> = ops.iter().filter(|o| o.latency_us().is_some()).collect();
    slow.sort_by_key(|o| std::cmp::Reverse(o.latency_us()));
    for o in slow.into_iter().take(SLOWEST_LISTED) {
        cited.entry(o.id).or_default().insert("slowest");
    }
    if cited.is_empty() {
        return;
    }
    let by_id: BTreeMap<u64, &Op> = ops.iter().map(|o| (o.id, o)).collect();
    *h += "<h2>Ops cited</h2>\n<table><tr><th>op</th><th>cited by</th><th>process</th><th>f</th><th>slot</th><th>due</th><th>completed</th><th>latency</th><th>outcome</th><th>status</th><th>appointment / error</th></tr>\n";
    for (id, why) in cited {
        let Some(o) = by_id.get(&id) else {
            continue;
        };
        let why: Vec<&str> = why.into_iter().collect();
        let _ = writeln!(
            h,
            "<tr id=\"op-{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{:?}</td><td>{}</td><td>{}</td></tr>",
            why.join(", "),
            o.process,
            o.f.as_str(),
            o.slot
                .map_or(String::new(), |s| format!("{}@{}", s.provider, s.start)),
            secs(o.due_us),
            o.complete_us.map_or_else(|| "never".into(), secs),
            o.latency_us().map_or_else(String::new, fmt_us),
            match o.outcome {
                chaos_model::Outcome::Ok => "valid",
                chaos_model::Outcome::Fail => "unknown",
                chaos_model::Outcome::Info => "invalid",
            },
            o.outcome,
            o.status.map_or(String::new(), |s| s.to_string()),
            esc(o.appointment.or(o.error).unwrap_or("")),
        );
    }
    *h += "</table>\n";
}

fn secs(us: u64) -> String {
    format!("{:.3}s", us as f64 / 1e6)
}

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
