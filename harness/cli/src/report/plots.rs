//! The plots of `report.html`: time series computed from a history and the stubs' call
//! logs, drawn as inline SVG with plotters (SVG backend only; its text is plain SVG text
//! the browser renders, so no font is needed here).

use chaos_check::nearest_rank;
use chaos_model::{Evidence, History, Op, Outcome};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

const SIZE: (u32, u32) = (960, 300);
/// At most this many buckets on the time axis; the bucket is a whole number of seconds.
const MAX_BUCKETS: u64 = 150;
/// How many of the slowest ops are drawn one by one.
const SLOW_OPS: usize = 150;

/// One time bucket of latency percentiles (nearest rank, as the `latency` checker and
/// `--compare` take them), in milliseconds, from each op's due time.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyBucket {
    pub t_s: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Everything the plots draw, computed once.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub bucket_s: f64,
    pub end_s: f64,
    pub latency: Vec<LatencyBucket>,
    /// (due time s, latency ms, op id, outcome) of the slowest ops.
    pub slow: Vec<(f64, f64, u64, Outcome)>,
    /// (bucket start s, ok/s, fail/s, info/s) by completion time.
    pub rates: Vec<(f64, f64, f64, f64)>,
    /// (bucket start s, SMS/s, e-mails/s) accepted by the stubs; empty without a start time.
    pub deliveries: Vec<(f64, f64, f64)>,
    /// (fault name, inject s, heal s).
    pub windows: Vec<(String, f64, f64)>,
}

fn s(us: u64) -> f64 {
    us as f64 / 1e6
}

impl Series {
    /// `ops` are the history's, folded once by the caller.
    pub fn new(history: &History, ops: &[Op<'_>], evidence: &Evidence) -> Series {
        // Every point drawn lies within the axis: an op due after the last record (which a
        // corrupt history can hold) widens it rather than falling off the chart.
        let end_us = history
            .records
            .iter()
            .map(chaos_model::Record::time_us)
            .chain(ops.iter().map(|o| o.due_us))
            .max()
            .unwrap_or(0);
        let bucket_us = (end_us / MAX_BUCKETS).div_ceil(1_000_000).max(1) * 1_000_000;
        let n = (end_us / bucket_us + 1) as usize;
        let mut lat: Vec<Vec<u64>> = vec![Vec::new(); n];
        let mut rates = vec![[0u64; 3]; n];
        for op in ops {
            if let Some(l) = op.latency_us() {
                lat[(op.due_us / bucket_us) as usize].push(l);
            }
            if let Some(c) = op.complete_us {
                let i = (c / bucket_us).min(n as u64 - 1) as usize;
                rates[i][op.outcome as usize] += 1;
            }
        }
        let ms = |us: u64| us as f64 / 1e3;
        let latency = lat
            .iter_mut()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(i, v)| {
                v.sort_unstable();
                let q = |q: f64| ms(v[nearest_rank(v.len(), q)]);
                LatencyBucket {
                    t_s: s(i as u64 * bucket_us + bucket_us / 2),
                    p50: q(0.5),
                    p90: q(0.9),
                    p99: q(0.99),
                    max: ms(*v.last().expect("non-empty")),
                }
            })
            .collect();
        let per_s = bucket_us as f64 / 1e6;
        let rates = rates
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let t = s(i as u64 * bucket_us);
                (
                    t,
                    r[0] as f64 / per_s,
                    r[1] as f64 / per_s,
                    r[2] as f64 / per_s,
                )
            })
            .collect();
        Series {
            bucket_s: per_s,
            end_s: s(end_us),
            latency,
            slow: slowest(ops),
            rates,
            deliveries: deliveries(evidence, bucket_us, n),
            windows: history
                .fault_windows()
                .into_iter()
                .map(|(i, a, b)| {
                    let name = history
                        .faults()
                        .find(|f| f.fault == i)
                        .map_or_else(|| format!("fault {i}"), |f| f.name.clone());
                    (name, s(a), s(b))
                })
                .collect(),
        }
    }
}

fn slowest(ops: &[Op]) -> Vec<(f64, f64, u64, Outcome)> {
    let mut v: Vec<(u64, &Op)> = ops
        .iter()
        .filter_map(|o| o.latency_us().map(|l| (l, o)))
        .collect();
    let k = SLOW_OPS.min(v.len());
    if k == 0 {
        return Vec::new();
    }
    v.select_nth_unstable_by(k - 1, |a, b| b.0.cmp(&a.0));
    v.truncate(k);
    v.sort_by_key(|(_, o)| o.id);
    v.iter()
        .map(|(l, o)| (s(o.due_us), *l as f64 / 1e3, o.id, o.outcome))
        .collect()
}

/// Accepted SMS and e-mails per second, placed on the run's clock through the evidence's
/// start time (the stubs stamp calls with the wall clock).
fn deliveries(evidence: &Evidence, bucket_us: u64, n: usize) -> Vec<(f64, f64, f64)> {
    let Some(t0_ms) = evidence.run_started_unix_ms else {
        return Vec::new();
    };
    let mut counts = vec![[0u64; 2]; n];
    let mut any = false;
    for (stub, channel) in [("twilio", 0), ("sendgrid", 1)] {
        for c in evidence.stub_calls.get(stub).into_iter().flatten() {
            if c.took_effect() {
                let us = c.at_ms.saturating_sub(t0_ms).saturating_mul(1000);
                let i = ((us / bucket_us) as usize).min(n - 1);
                counts[i][channel] += 1;
                any = true;
            }
        }
    }
    if !any {
        return Vec::new();
    }
    let per_s = bucket_us as f64 / 1e6;
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                s(i as u64 * bucket_us),
                c[0] as f64 / per_s,
                c[1] as f64 / per_s,
            )
        })
        .collect()
}

const FAULT_FILL: RGBAColor = RGBAColor(220, 60, 60, 0.14);
const BAND: RGBAColor = RGBAColor(60, 110, 200, 0.22);
const P50: RGBColor = RGBColor(30, 80, 170);
const P99: RGBColor = RGBColor(120, 40, 160);
const OK: RGBColor = RGBColor(40, 140, 70);
const FAIL: RGBColor = RGBColor(220, 120, 20);
const INFO: RGBColor = RGBColor(200, 30, 30);

fn outcome_colour(o: Outcome) -> RGBColor {
    match o {
        Outcome::Ok => P50,
        Outcome::Fail => FAIL,
        Outcome::Info => INFO,
    }
}

type Chart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// Draws one chart into an SVG string; a drawing error is a harness bug (the SVG backend
/// writes to memory).
fn svg<Y, F>(title: &str, y_desc: &str, x_end: f64, y: Y, draw: F) -> String
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    <Y as plotters::coord::ranged1d::AsRangedCoord>::CoordDescType:
        plotters::coord::ranged1d::ValueFormatter<f64>,
    F: FnOnce(&mut Chart<'_, '_, Y::CoordDescType>) -> Result<(), String>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).expect("fill an in-memory SVG");
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_end.max(1.0), y)
            .expect("build a chart");
        chart
            .configure_mesh()
            .x_desc("seconds since the start of the workload")
            .y_desc(y_desc)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .expect("draw the mesh");
        draw(&mut chart).unwrap_or_else(|e| panic!("draw {title}: {e}"));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .expect("draw the legend");
        root.present().expect("finish the SVG");
    }
    out
}

fn shade_faults<Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    windows: &[(String, f64, f64)],
    y: (f64, f64),
) -> Result<(), String> {
    if windows.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(
            windows
                .iter()
                .map(|(_, a, b)| Rectangle::new([(*a, y.0), (*b, y.1)], FAULT_FILL.filled())),
        )
        .map_err(|e| e.to_string())?
        .label("fault active")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], FAULT_FILL.filled()));
    Ok(())
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
}

/// Latency over time: the p50-p99 band, the p50, p99 and max lines, and the slowest ops
/// one by one (coloured by outcome), on a log scale, with fault windows shaded.
pub fn latency_svg(se: &Series) -> String {
    let top = se
        .latency
        .iter()
        .map(|b| b.max)
        .chain(se.slow.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.5;
    let bottom = se
        .latency
        .iter()
        .map(|b| b.p50)
        .fold(top, f64::min)
        .clamp(0.01, 1.0)
        / 2.0;
    svg(
        "Latency (from each op's due time)",
        "milliseconds (log)",
        se.end_s,
        (bottom..top).log_scale(),
        |chart| {
            shade_faults(chart, &se.windows, (bottom, top))?;
            let clamp = |v: f64| v.max(bottom);
            let mut band: Vec<(f64, f64)> =
                se.latency.iter().map(|b| (b.t_s, clamp(b.p99))).collect();
            band.extend(se.latency.iter().rev().map(|b| (b.t_s, clamp(b.p50))));
            if !band.is_empty() {
                chart
                    .draw_series(std::iter::once(Polygon::new(band, BAND.filled())))
                    .map_err(|e| e.to_string())?
                    .label("p50-p99 band")
                    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BAND.filled()));
            }
            type Pick = fn(&LatencyBucket) -> f64;
            let lines: [(&str, Pick, RGBColor); 3] = [
                ("p50", |b| b.p50, P50),
                ("p99", |b| b.p99, P99),
                ("max", |b| b.max, RGBColor(90, 90, 90)),
            ];
            for (name, pick, colour) in lines {
                chart
                    .draw_series(LineSeries::new(
                        se.latency.iter().map(|b| (b.t_s, clamp(pick(b)))),
                        colour.stroke_width(if name == "max" { 1 } else { 2 }),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(name)
                    .legend(legend_line(colour));
            }
            for (outcome, name) in [
                (Outcome::Ok, "slowest ops: ok"),
                (Outcome::Fail, "fail"),
                (Outcome::Info, "info (unknown)"),
            ] {
                let colour = outcome_colour(outcome);
                let points: Vec<_> = se.slow.iter().filter(|p| p.3 == outcome).collect();
                if points.is_empty() {
                    continue;
                }
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new((p.0, clamp(p.1)), 2, colour.filled())),
                    )
                    .map_err(|e| e.to_string())?
                    .label(name)
                    .legend(move |(x, y)| Circle::new((x + 8, y), 3, colour.filled()));
            }
            Ok(())
        },
    )
}

fn rate_lines<const N: usize>(
    chart: &mut Chart<'_, '_, RangedCoordf64>,
    points: &[(f64, [f64; N])],
    names: [(&str, RGBColor); N],
) -> Result<(), String> {
    for (i, (name, colour)) in names.into_iter().enumerate() {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(t, v)| (*t, v[i])),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(legend_line(colour));
    }
    Ok(())
}

/// Completed ops per second by outcome, with fault windows shaded.
pub fn throughput_svg(se: &Series) -> String {
    let points: Vec<(f64, [f64; 3])> = se.rates.iter().map(|r| (r.0, [r.1, r.2, r.3])).collect();
    let names = [("ok", OK), ("fail", FAIL), ("info (unknown)", INFO)];
    rates_svg(
        se,
        "Throughput and errors",
        "ops per second",
        se.end_s,
        &points,
        names,
    )
}

/// SMS and e-mails accepted by the stubs per second; `None` when no delivery was recorded.
pub fn deliveries_svg(se: &Series) -> Option<String> {
    if se.deliveries.is_empty() {
        return None;
    }
    let points: Vec<(f64, [f64; 2])> = se.deliveries.iter().map(|r| (r.0, [r.1, r.2])).collect();
    let end = se
        .end_s
        .max(points.last().map_or(0.0, |p| p.0 + se.bucket_s));
    let names = [("SMS (Twilio)", P50), ("e-mail (SendGrid)", OK)];
    Some(rates_svg(
        se,
        "Reminder deliveries",
        "deliveries per second",
        end,
        &points,
        names,
    ))
}

/// Rates per time bucket as lines from zero, with fault windows shaded.
fn rates_svg<const N: usize>(
    se: &Series,
    title: &str,
    y_desc: &str,
    end: f64,
    points: &[(f64, [f64; N])],
    names: [(&str, RGBColor); N],
) -> String {
    let top = peak(points.iter().map(|p| &p.1[..]));
    svg(title, y_desc, end, 0f64..top, |chart| {
        shade_faults(chart, &se.windows, (0.0, top))?;
        rate_lines(chart, points, names)
    })
}

fn peak<'a>(rows: impl Iterator<Item = &'a [f64]>) -> f64 {
    rows.flatten().fold(1.0f64, |a, b| a.max(*b)) * 1.15
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_model::{Completion, FaultAction, FaultEvent, Invoke, OpKind, Record};

    fn op(id: u64, due: u64, done: u64, ok: bool) -> [Record; 2] {
        let c = Completion {
            op: id,
            time_us: done,
            status: Some(if ok { 200 } else { 503 }),
            appointment: None,
            error: None,
            ..Completion::default()
        };
        [
            Record::Invoke(Invoke {
                ..Invoke::new(id, 0, OpKind::Availability, due, due)
            }),
            if ok { Record::Ok(c) } else { Record::Fail(c) },
        ]
    }

    fn history() -> History {
        let mut r = Vec::new();
        for i in 0..300u64 {
            // 100 ops a second for 3 s; the ones in the second second take 50 ms and fail.
            let due = i * 10_000;
            let slow = (100..200).contains(&i);
            r.extend(op(i, due, due + if slow { 50_000 } else { 1_000 }, !slow));
        }
        let fault = |action, time_us| {
            Record::Fault(FaultEvent {
                fault: 0,
                name: "kill redis".into(),
                action,
                time_us,
                effective_us: None,
                error: None,
            })
        };
        r.push(fault(FaultAction::Inject, 1_000_000));
        r.push(fault(FaultAction::Heal, 2_000_000));
        History::new(r)
    }

    #[test]
    fn series_bucket_latency_rates_and_fault_windows() {
        let h = history();
        let se = Series::new(&h, &h.ops(), &Evidence::default());
        assert_eq!(se.bucket_s, 1.0);
        assert_eq!(se.latency.len(), 3);
        assert_eq!(se.latency[0].p50, 1.0);
        assert_eq!(se.latency[1].p50, 50.0);
        assert_eq!(se.rates[0], (0.0, 100.0, 0.0, 0.0));
        // Ops 100..200 complete between 1.05 s and 2.04 s: mostly in the second bucket.
        assert_eq!(se.rates[1].2 + se.rates[2].2, 100.0);
        assert_eq!(se.windows, vec![("kill redis".to_string(), 1.0, 2.0)]);
        assert_eq!(se.slow.len(), SLOW_OPS);
        assert_eq!(
            se.slow.iter().filter(|p| p.1 == 50.0).count(),
            100,
            "every 50 ms op is among the slowest"
        );
        assert!(
            se.deliveries.is_empty(),
            "no start time, no delivery series"
        );
    }

    #[test]
    fn the_svgs_are_self_contained_and_draw_every_series() {
        let h = history();
        let se = Series::new(&h, &h.ops(), &Evidence::default());
        let lat = latency_svg(&se);
        assert!(lat.starts_with("<svg"), "{}", &lat[..80]);
        for label in [
            "p50-p99 band",
            "p99",
            "fault active",
            "slowest ops: ok",
            "fail",
        ] {
            assert!(lat.contains(label), "latency plot lacks {label}");
        }
        assert!(
            !lat.contains("href") && !lat.contains("<image") && !lat.contains("@font-face"),
            "the SVG refers to nothing outside itself"
        );
        let tp = throughput_svg(&se);
        assert!(tp.contains("<polyline") && tp.contains("info (unknown)"));
        assert!(deliveries_svg(&se).is_none());
    }
}
