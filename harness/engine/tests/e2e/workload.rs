//! End-to-end: the workload driver against the real MediConnect (two replicas, PostgreSQL,
//! Redis, RabbitMQ and the stubs of a local environment), every op kind and a retry policy,
//! recorded under the op ids the plan fixed. Slow tier: build the target and the stubs first
//! (`cargo build -p mediconnect -p stubs --bins`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chaos_engine::env::{Env, EnvConfig};
use chaos_engine::history::{Clock, Recorder};
use chaos_engine::workload::{Planned, PlannedOp, TargetClient, drive, plan};
use chaos_model::{
    Dur, History, Mix, OP_STRIDE, Op, OpKind, Outcome, PART_LOGIN, PART_RESUBMIT, Profile, Retry,
    TargetOptions, Workload, op_id,
};

const SEED: u64 = 9;

fn workload() -> Workload {
    Workload {
        duration: Dur::from_secs(4),
        rate: 40.0,
        rate_end: None,
        clients: 8,
        mix: Mix {
            book: 3.0,
            availability: 1.0,
            forged: 0.3,
            readiness: 0.3,
            cancel: 1.0,
            reschedule: 1.5,
            waitlist: 1.5,
            schedule_change: 0.5,
            login: 0.5,
        },
        providers: 3,
        hot_slots: Some(3),
        burst: 2,
        op_timeout: Dur::from_secs(2),
        resubmit: 0.2,
        retry: Some(Retry {
            attempts: 3,
            backoff: Dur::from_millis(50),
            idempotency_key: true,
        }),
    }
}

/// Start an environment, drive `plan(SEED, w)` through it, and return the history's text.
async fn run(w: &Workload, tag: &str) -> String {
    let cfg = EnvConfig {
        run_id: format!("e2e-workload-{tag}-{}", std::process::id()),
        profile: Profile::Hardened,
        replicas: 2,
        providers: w.providers,
        patients: w.clients,
        seed: SEED,
        options: TargetOptions {
            // One request at a time per replica: a burst sheds (503, Retry-After), and the
            // client retries on the other replica.
            max_in_flight: 1,
            ..TargetOptions::default()
        },
        keep_dir: false,
        kind: chaos_model::EnvKind::Local,
        images: chaos_engine::env::docker::images::Build::Never,
    };
    let env = Env::start(&cfg, &|m: String| eprintln!("{tag}: {m}"))
        .await
        .expect("the local environment starts");
    let path = std::env::temp_dir().join(format!("{}.jsonl", cfg.run_id));
    let (rec, writer) = Recorder::start(&path, Clock::start()).unwrap();
    let client = TargetClient::new(env.endpoints().target.clone(), w.op_timeout.0);
    let driven = tokio::time::timeout(
        Duration::from_secs(60),
        drive(plan(SEED, w), client, rec, w.clone()),
    )
    .await;
    env.shutdown().await;
    driven.expect("the workload ends within a minute");
    writer.finish().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    text
}

/// The plan's op an op id names, and whether the op is of that planned op's kind.
fn planned<'p>(p: &'p [Planned], op: &Op<'_>) -> &'p Planned {
    let planned = p
        .get(op.plan_index() as usize)
        .unwrap_or_else(|| panic!("op {} is beyond the plan", op.id));
    let part = op.id % OP_STRIDE;
    let kind = planned.op.kind();
    let ok = match part {
        PART_LOGIN => op.f == OpKind::Login,
        PART_RESUBMIT => matches!(planned.op, PlannedOp::Book { resubmit: true, .. }),
        _ => op.f == kind && u64::from(op.attempt) == part,
    };
    assert!(
        ok,
        "op {} ({}, try {}) is no part {part} of planned {kind}",
        op.id, op.f, op.attempt
    );
    assert_eq!(op.process, planned.process, "op {}", op.id);
    let trace = format!("{:032x}", planned.trace);
    assert_eq!(
        op.trace,
        Some(trace.as_str()),
        "op {} carries its op's trace",
        op.id
    );
    planned
}

fn statuses(ops: &[Op<'_>], f: OpKind) -> BTreeMap<Option<u16>, usize> {
    let mut m = BTreeMap::new();
    for o in ops.iter().filter(|o| o.f == f) {
        *m.entry(o.status).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_op_kind_reaches_the_target_under_its_planned_id_and_a_rerun_cites_the_same_ops() {
    let w = workload();
    let p = plan(SEED, &w);
    let first = run(&w, "first").await;
    let history = History::from_jsonl(&first).expect("the driver records a history");
    let ops = history.ops();
    assert!(
        ops.len() > p.len() / 2,
        "{} ops for {} planned",
        ops.len(),
        p.len()
    );
    let by_id: BTreeMap<u64, &Op<'_>> = ops.iter().map(|o| (o.id, o)).collect();

    for o in &ops {
        planned(&p, o);
        let unsent = o.error == Some("no session: login failed");
        assert!(
            unsent || o.replica.is_some_and(|r| (1..=2).contains(&r)),
            "op {} names its replica: {:?}",
            o.id,
            o.replica
        );
        if let Some(login) = o.session {
            let l = by_id[&login];
            assert_eq!(
                (l.f, l.outcome, l.process),
                (OpKind::Login, Outcome::Ok, o.process)
            );
            assert!(l.id <= o.id, "op {} used a session from the future", o.id);
        }
        if matches!(o.f, OpKind::Forged | OpKind::Readiness | OpKind::Login) {
            assert_eq!(o.session, None, "op {} ({}) carries no session", o.id, o.f);
        } else if !unsent {
            assert!(
                o.session.is_some(),
                "op {} ({}) names its session",
                o.id,
                o.f
            );
        }
    }
    let replicas: BTreeSet<u32> = ops.iter().filter_map(|o| o.replica).collect();
    assert_eq!(replicas.len(), 2, "both replicas served");

    // Retries: each follows a try of the same op that the client could not trust, goes to
    // the next replica, after the backoff (or the Retry-After), with the same key.
    let retries: Vec<&Op<'_>> = ops.iter().filter(|o| o.attempt > 1).collect();
    assert!(!retries.is_empty(), "the shedding replicas provoke retries");
    for r in &retries {
        let before = by_id[&(r.id - 1)];
        assert!(
            before.outcome == Outcome::Info || matches!(before.status, None | Some(429 | 503)),
            "op {} retries op {} ({:?} {:?})",
            r.id,
            before.id,
            before.outcome,
            before.status
        );
        assert_ne!(r.replica, before.replica, "op {} fails over", r.id);
        assert_eq!(r.key, before.key);
        let waited = r.due_us - before.complete_us.unwrap();
        let wanted =
            (50_000u64 << (before.attempt - 1)).max(before.retry_after.unwrap_or(0) * 1_000_000);
        assert!(
            waited + 1_000 >= wanted,
            "op {} waited {waited}us of {wanted}us",
            r.id
        );
        assert!(!matches!(r.f, OpKind::Forged | OpKind::Readiness));
    }
    assert!(
        ops.iter()
            .filter(|o| o.f == OpKind::Book)
            .all(|o| o.key.is_some())
    );

    // Every new op kind got through to its handler: answered as the API documents, never
    // refused as malformed (400) or unrouted (404).
    for (f, reached) in [
        (OpKind::Reschedule, &[200u16, 409, 422][..]),
        (OpKind::Waitlist, &[201, 409, 422]),
        (OpKind::ScheduleChange, &[200]),
        (OpKind::Login, &[201]),
        (OpKind::Cancel, &[200, 409]),
        (OpKind::Availability, &[200]),
        (OpKind::Book, &[201, 409, 422]),
    ] {
        let s = statuses(&ops, f);
        assert!(
            reached.iter().any(|st| s.contains_key(&Some(*st))),
            "no {f} reached the target: {s:?}"
        );
        assert!(
            !s.contains_key(&Some(400)) && !s.contains_key(&Some(404)),
            "{f} answered {s:?}"
        );
    }
    assert!(
        ops.iter()
            .any(|o| o.f == OpKind::Waitlist && o.status == Some(201)),
        "a hot slot's waitlist was joined: {:?}",
        statuses(&ops, OpKind::Waitlist)
    );
    for o in &ops {
        if o.f == OpKind::Reschedule {
            let (from, to) = (o.slot.unwrap(), o.to.unwrap());
            assert_eq!(from.provider, to.provider);
            assert_ne!(from, to);
            assert!(o.target.is_some());
            if o.outcome == Outcome::Ok {
                assert_eq!(o.appointment, o.target);
                assert!(
                    o.version.is_some_and(|v| v >= 2),
                    "a move bumps the version"
                );
            }
        }
        if o.f == OpKind::ScheduleChange {
            assert_eq!(o.hours, Some([600, 960]));
            assert_eq!(o.slot.unwrap().start, 0);
        }
        if o.f == OpKind::Availability && o.outcome == Outcome::Ok {
            let free = o.free.expect("an answered read lists its free slots");
            assert!(free.iter().all(|s| s % 1800 == 0));
        }
        if o.f == OpKind::Book && o.outcome == Outcome::Ok {
            assert!(o.appointment.is_some() && o.version.is_some());
        }
        if o.status == Some(503) {
            assert!(
                o.retry_after.is_some(),
                "a shed request says when to come back"
            );
        }
    }
    // Reschedule bursts move one appointment.
    let mut bursts: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.f == OpKind::Reschedule) {
        if let PlannedOp::Reschedule(m) = &planned(&p, o).op {
            bursts.entry(m.burst).or_default().insert(o.target.unwrap());
        }
    }
    assert!(!bursts.is_empty());
    assert!(bursts.values().all(|t| t.len() == 1), "{bursts:?}");
    assert!(ops.iter().any(|o| o.id % OP_STRIDE == PART_RESUBMIT));

    // The same seed again: every planned op that cannot be skipped has its first try under
    // the same id, of the same kind, client and trace.
    let again = run(&w, "again").await;
    let again = History::from_jsonl(&again).unwrap();
    let again_ops = again.ops();
    let firsts = |ops: &[Op<'_>]| -> BTreeMap<u64, (OpKind, u32, String)> {
        ops.iter()
            .filter(|o| o.id % OP_STRIDE == 1)
            .map(|o| (o.id, (o.f, o.process, o.trace.unwrap().to_string())))
            .collect()
    };
    let (a, b) = (firsts(&ops), firsts(&again_ops));
    let unskippable: BTreeSet<u64> = p
        .iter()
        .filter(|o| !matches!(o.op, PlannedOp::Cancel | PlannedOp::Reschedule(_)))
        .map(|o| op_id(o.index, 1))
        .collect();
    for id in &unskippable {
        assert!(
            a.contains_key(id) && b.contains_key(id),
            "op {id} in both runs"
        );
    }
    for (id, x) in &a {
        if let Some(y) = b.get(id) {
            assert_eq!(x, y, "op {id} differs between runs");
        }
    }
    for o in &again_ops {
        planned(&p, o);
    }
}
