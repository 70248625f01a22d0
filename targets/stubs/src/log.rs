//! The call log: every request a stub received, in arrival order, recorded the moment it
//! arrived and completed when the provider acted on it and when it was answered; journaled
//! to a file when the stub has one.

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::journal::{Event, Journal, JournalError};

/// One call, as `GET <control>/calls` shows it. The same shape as the harness's
/// `chaos_model::StubCall` (a test holds the two together); the stubs share no code with the
/// harness, so it is mirrored here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// 1-based, in arrival order; continues across restarts on the same journal.
    pub seq: u64,
    /// When it arrived, before any knob delay: ms since the Unix epoch.
    pub at_ms: u64,
    pub method: String,
    /// The request's path, and its query string when it had one (lookups).
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The 32-hex trace id of a well-formed W3C `traceparent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The request body, parsed: form fields or JSON (`{"unparsed": …}` when it is neither);
    /// `null` for a call without a body (a lookup).
    pub body: serde_json::Value,
    /// The status it was answered with: `null` until answered, and for good when the caller
    /// gave up first.
    #[serde(default)]
    pub status: Option<u16>,
    /// When it was answered: ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_ms: Option<u64>,
    /// Whether the provider acted on it (message queued, mail accepted, resource stored),
    /// answered or not. Never for lookups, injected errors, hangs, refused requests and calls
    /// abandoned before the stub acted.
    #[serde(default)]
    pub accepted: bool,
}

/// What a call carries when it arrives.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub method: &'static str,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub trace: Option<String>,
    pub body: serde_json::Value,
}

/// A call in the log that has not been answered yet. Dropping it (the caller gave up and its
/// handler future was dropped) leaves the entry as it is: `status: null`.
#[derive(Debug)]
pub struct Pending {
    pub call: Call,
    /// The log's generation when the call arrived: a `POST /reset` since then makes the
    /// call stale, and a stale call never writes into the new log.
    generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    generation: u64,
    journal: Option<Journal>,
}

#[derive(Debug, Default)]
pub struct CallLog {
    inner: Mutex<Inner>,
}

impl CallLog {
    /// A log kept in memory only.
    pub fn in_memory() -> CallLog {
        CallLog::default()
    }

    /// A log journaled to `path`, with the calls the file already holds. Also returns the
    /// calls the provider acted on, in the order it acted, with when: replaying them
    /// rebuilds the provider's state.
    pub fn journaled(path: &Path) -> Result<(CallLog, Vec<(Call, u64)>), JournalError> {
        let (journal, events) = Journal::open(path)?;
        let mut calls: Vec<Call> = Vec::new();
        let mut order = Vec::new();
        for e in events {
            match e {
                Event::Arrived { call } if call.seq == calls.len() as u64 + 1 => calls.push(call),
                Event::Arrived { call } => tracing::warn!(
                    journal = %path.display(),
                    seq = call.seq,
                    expected = calls.len() + 1,
                    "skipping an arrival out of sequence"
                ),
                Event::Accepted { seq, at_ms } => match entry(&mut calls, seq) {
                    Some(c) => {
                        c.accepted = true;
                        order.push((seq, at_ms));
                    }
                    None => unknown(path, seq),
                },
                Event::Answered { seq, status, at_ms } => match entry(&mut calls, seq) {
                    Some(c) => {
                        c.status = Some(status);
                        c.answered_ms = Some(at_ms);
                    }
                    None => unknown(path, seq),
                },
            }
        }
        let accepted = order
            .into_iter()
            .map(|(seq, at)| (calls[seq as usize - 1].clone(), at))
            .collect();
        let log = CallLog {
            inner: Mutex::new(Inner {
                calls,
                generation: 0,
                journal: Some(journal),
            }),
        };
        Ok((log, accepted))
    }

    /// Appends a call the moment it arrives (journaled before anything else happens to it).
    pub fn arrive(&self, a: Arrival, at_ms: u64) -> Pending {
        let mut inner = self.lock();
        let call = Call {
            seq: inner.calls.len() as u64 + 1,
            at_ms,
            method: a.method.to_string(),
            path: a.path,
            idempotency_key: a.idempotency_key,
            trace: a.trace,
            body: a.body,
            status: None,
            answered_ms: None,
            accepted: false,
        };
        inner.calls.push(call.clone());
        if let Some(j) = inner.journal.as_mut() {
            j.append(&Event::Arrived { call: call.clone() });
        }
        Pending {
            call,
            generation: inner.generation,
        }
    }

    /// Whether `p` arrived before the last reset.
    pub fn is_stale(&self, p: &Pending) -> bool {
        self.lock().generation != p.generation
    }

    /// Marks `p` as acted on by the provider.
    pub fn accept(&self, p: &Pending, at_ms: u64) {
        self.update(
            p,
            Event::Accepted {
                seq: p.call.seq,
                at_ms,
            },
            |c| {
                c.accepted = true;
            },
        );
    }

    /// Records the answer to `p`.
    pub fn answer(&self, p: Pending, status: u16, at_ms: u64) {
        let seq = p.call.seq;
        self.update(&p, Event::Answered { seq, status, at_ms }, |c| {
            c.status = Some(status);
            c.answered_ms = Some(at_ms);
        });
    }

    fn update(&self, p: &Pending, event: Event, change: impl FnOnce(&mut Call)) {
        let mut inner = self.lock();
        if inner.generation != p.generation {
            return;
        }
        let Some(c) = entry(&mut inner.calls, p.call.seq) else {
            panic!("call {} of this generation is not in the log", p.call.seq);
        };
        change(c);
        if let Some(j) = inner.journal.as_mut() {
            j.append(&event);
        }
    }

    pub fn snapshot(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Forgets every call, in memory and in the journal; calls still in flight become stale.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.calls.clear();
        inner.generation += 1;
        if let Some(j) = inner.journal.as_mut() {
            j.truncate();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("call log lock poisoned")
    }
}

fn entry(calls: &mut [Call], seq: u64) -> Option<&mut Call> {
    calls.get_mut((seq as usize).checked_sub(1)?)
}

fn unknown(path: &Path, seq: u64) {
    tracing::warn!(journal = %path.display(), seq, "skipping an event for an unknown call");
}
