//! Sessions survive (000:C1, 001:C-4): no request carrying a session whose login was
//! acknowledged is refused 401. A lost session is a logout the user did not ask for: a
//! session store that loses its keys in an outage, or a fallback that does not know them,
//! logs everyone out. Judged from the history: each op names the login whose token it
//! carried. Only answered requests are judged; an unanswered login (`info`) proves no
//! session. With faults the verdict is earned only by a session acknowledged before a
//! fault's injection and used at or after it.

use chaos_model::{CheckResult, History, OpKind, Outcome, Scenario, Verdict};

use crate::fasthash::FastMap;
use crate::fmt_us;
use crate::view::{View, with_history};

pub const NAME: &str = "sessions_survive";
const MAX_PROOF: usize = 20;

pub fn check_sessions_survive(scenario: &Scenario, history: &History) -> CheckResult {
    with_history(history, |v| check(!scenario.faults.is_empty(), v))
}

pub(crate) fn check(has_faults: bool, v: &View<'_>) -> CheckResult {
    // Login op -> when its acknowledgement arrived.
    let logins: FastMap<u64, u64> = v
        .ops
        .iter()
        .filter(|o| o.f == OpKind::Login && o.outcome == Outcome::Ok)
        .filter_map(|o| Some((o.id, o.complete_us?)))
        .collect();
    // A session crossed an injection if it was acknowledged before the fault began and used
    // once it was certainly in effect.
    let injections: Vec<(u64, u64)> = v
        .fault_windows()
        .iter()
        .filter_map(|wide| {
            let certain = v.certain_fault_windows().iter().find(|c| c.0 == wide.0)?;
            Some((wide.1, certain.1))
        })
        .collect();
    let (mut used, mut crossed) = (0usize, 0usize);
    let mut lost = Vec::new();
    let mut rows = Vec::new();
    for o in &v.ops {
        let (Some(login), Some(status)) = (o.session, o.status) else {
            continue;
        };
        let Some(&acked_at) = logins.get(&login) else {
            continue;
        };
        used += 1;
        let across = injections
            .iter()
            .any(|&(began, certain)| acked_at < began && certain <= o.invoke_us);
        crossed += usize::from(across);
        if status == 401 {
            lost.push(o.id);
            if rows.len() < MAX_PROOF {
                rows.push(format!(
                    "op {} ({}) at {} refused 401 with the session of login op {login}, acknowledged at {}{}",
                    o.id,
                    o.f,
                    fmt_us(o.invoke_us),
                    fmt_us(acked_at),
                    if across { ", before a fault" } else { "" }
                ));
            }
        }
    }
    let detail = format!(
        "{used} answered requests carried an acknowledged session, {crossed} of them across a fault's injection"
    );
    if !lost.is_empty() {
        let n = lost.len();
        if n > MAX_PROOF {
            rows.push(format!("… {} more", n - MAX_PROOF));
        }
        lost.truncate(MAX_PROOF);
        return CheckResult::new(
            NAME,
            (
                Verdict::Invalid { ops: lost, rows },
                format!("{n} request(s) lost their session (401); {detail}"),
            ),
        );
    }
    if has_faults && crossed == 0 {
        return CheckResult::new(
            NAME,
            Verdict::unknown(
                "no session crossed a fault: no request used a session acknowledged before a fault's injection at or after it",
            ),
        );
    }
    if used == 0 {
        return CheckResult::new(
            NAME,
            Verdict::unknown("no answered request carried an acknowledged session"),
        );
    }
    CheckResult::new(NAME, (Verdict::Valid, detail + ": none refused 401"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::Record;

    /// Login op 1 acknowledged at 101 us; op `op` reads at `t` with its session.
    fn world(after: Vec<Record>) -> Vec<Record> {
        let mut r = vec![
            invoked(1, OpKind::Login, 1),
            ended(1, Outcome::Ok, 101, Some(201)),
        ];
        r.extend(after);
        r
    }

    fn read(op: u64, t: u64, status: u16, session: u64) -> [Record; 2] {
        let outcome = if status < 300 {
            Outcome::Ok
        } else {
            Outcome::Fail
        };
        [
            edit(invoked(op, OpKind::Availability, t), |i| {
                i.session = Some(session)
            }),
            ended(op, outcome, t + 10, Some(status)),
        ]
    }

    fn run(has_faults: bool, records: Vec<Record>) -> CheckResult {
        with_history(&history(records), |v| check(has_faults, v))
    }

    #[test]
    fn a_session_used_across_a_fault_and_still_known_is_valid() {
        let mut r = vec![inject(1_000)];
        r.extend(read(2, 2_000, 200, 1));
        r.push(heal(3_000));
        let c = run(true, world(r));
        assert_eq!(c.verdict, Verdict::Valid, "{}", c.detail);
        assert!(c.detail.contains("1 of them across"), "{}", c.detail);
    }

    #[test]
    fn a_401_to_an_acknowledged_session_is_invalid() {
        let mut r = vec![inject(1_000)];
        r.extend(read(2, 2_000, 401, 1));
        match run(true, world(r)).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![2]);
                assert!(rows[0].contains("login op 1"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        // No fault needed: a 401 is a 401.
        assert!(matches!(
            run(false, world(read(2, 2_000, 401, 1).to_vec())).verdict,
            Verdict::Invalid { .. }
        ));
    }

    #[test]
    fn a_session_whose_login_was_not_acknowledged_proves_nothing() {
        let mut r = vec![
            invoked(1, OpKind::Login, 1),
            amend(ended(1, Outcome::Info, 101, None), |c| {
                c.error = Some("operation timed out".into())
            }),
        ];
        r.extend(read(2, 2_000, 401, 1));
        let c = run(false, r);
        assert!(matches!(c.verdict, Verdict::Unknown { .. }), "{c:?}");
    }

    #[test]
    fn no_session_across_a_fault_is_unknown_with_faults() {
        // Used only before the fault, and a session acknowledged after it.
        let mut r = read(2, 500, 200, 1).to_vec();
        r.push(inject(1_000));
        r.extend([
            invoked(3, OpKind::Login, 1_500),
            ended(3, Outcome::Ok, 1_600, Some(201)),
        ]);
        r.extend(read(4, 2_000, 200, 3));
        match run(true, world(r.clone())).verdict {
            Verdict::Unknown { reason } => {
                assert!(reason.contains("no session crossed"), "{reason}")
            }
            v => panic!("expected unknown, got {v:?}"),
        }
        assert_eq!(run(false, world(r)).verdict, Verdict::Valid);
        assert!(matches!(
            run(false, world(vec![])).verdict,
            Verdict::Unknown { .. }
        ));
    }
}
