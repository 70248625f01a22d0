//! Phases of a run in time: steady, fault (a fault is active), recovery (just after a heal).

use chaos_model::{Dur, History};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Steady,
    Fault,
    Recovery,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Steady => "steady",
            Phase::Fault => "fault",
            Phase::Recovery => "recovery",
        }
    }
}

/// The fault and recovery windows of one history; every other instant is steady.
#[derive(Debug, Clone, Default)]
pub struct PhaseMap {
    fault: Vec<(u64, u64)>,
    recovery: Vec<(u64, u64)>,
}

impl PhaseMap {
    pub fn new(history: &History, recovery: Dur) -> PhaseMap {
        let fault: Vec<(u64, u64)> = history
            .fault_windows()
            .into_iter()
            .map(|(_, a, b)| (a, b))
            .collect();
        let recovery = fault
            .iter()
            .map(|&(_, heal)| (heal, heal.saturating_add(recovery.as_micros())))
            .collect();
        PhaseMap { fault, recovery }
    }

    /// The phase at a time; a fault window wins over a recovery window that overlaps it.
    pub fn at(&self, t_us: u64) -> Phase {
        let inside = |ws: &[(u64, u64)]| ws.iter().any(|&(a, b)| a <= t_us && t_us < b);
        if inside(&self.fault) {
            Phase::Fault
        } else if inside(&self.recovery) {
            Phase::Recovery
        } else {
            Phase::Steady
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_model::{FaultAction, FaultEvent, Record};

    fn ev(action: FaultAction, t: u64) -> Record {
        Record::Fault(FaultEvent {
            fault: 0,
            name: "f".into(),
            action,
            time_us: t,
            effective_us: None,
            error: None,
        })
    }

    #[test]
    fn windows_classify_instants() {
        let h = History::new(vec![
            ev(FaultAction::Inject, 100),
            ev(FaultAction::Heal, 200),
        ]);
        let m = PhaseMap::new(&h, Dur(std::time::Duration::from_micros(50)));
        assert_eq!(m.at(99), Phase::Steady);
        assert_eq!(m.at(100), Phase::Fault);
        assert_eq!(m.at(199), Phase::Fault);
        assert_eq!(m.at(200), Phase::Recovery);
        assert_eq!(m.at(250), Phase::Steady);
    }
}
