//! The journal: a stub's call log as a file of JSON lines, appended as calls arrive, are acted
//! on and are answered, and replayed when the stub starts, so that a stub killed and started
//! again on the same file still reports every call it ever received and still holds what its
//! provider accepted.
//!
//! One line per event, written with a single `write` on a file opened for appending and not
//! buffered in the process, so a SIGKILL loses nothing that was journaled:
//!
//! ```text
//! {"event":"arrived","call":{"seq":1,"at_ms":…,"method":"POST","path":…,"body":…,"status":null,"accepted":false}}
//! {"event":"accepted","seq":1,"at_ms":…}
//! {"event":"answered","seq":1,"status":201,"at_ms":…}
//! ```
//!
//! A line cut short by a kill (no final newline) is dropped from the file when it is opened;
//! a line that does not parse is skipped with a warning.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::log::Call;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A call arrived (before any knob delay).
    Arrived { call: Call },
    /// The provider acted on call `seq` at `at_ms` (message queued, mail accepted, resource
    /// stored).
    Accepted { seq: u64, at_ms: u64 },
    /// Call `seq` was answered with `status` at `at_ms`.
    Answered { seq: u64, status: u16, at_ms: u64 },
}

#[derive(Debug, thiserror::Error)]
#[error("journal {}: {what}: {source}", path.display())]
pub struct JournalError {
    path: PathBuf,
    what: &'static str,
    source: std::io::Error,
}

/// An open journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (creating it if needed) the journal at `path` and reads back its events.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Event>), JournalError> {
        let err = |what| {
            move |source| JournalError {
                path: path.to_path_buf(),
                what,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(err("open"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err("read"))?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            tracing::warn!(
                journal = %path.display(),
                bytes = bytes.len() - complete,
                "dropping a truncated last line (the stub was killed while writing it)"
            );
            file.set_len(complete as u64).map_err(err("truncate"))?;
        }
        let mut events = Vec::new();
        for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Event>(line) {
                Ok(e) => events.push(e),
                Err(e) => tracing::warn!(
                    journal = %path.display(),
                    line = n + 1,
                    error = %e,
                    "skipping a journal line that does not parse"
                ),
            }
        }
        let journal = Journal {
            path: path.to_path_buf(),
            file,
        };
        Ok((journal, events))
    }

    /// Appends one event as one line. A failed write is logged, not fatal: the stub keeps
    /// serving and its in-memory log stays whole.
    pub fn append(&mut self, event: &Event) {
        let mut line = serde_json::to_vec(event).expect("journal events serialise");
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line) {
            tracing::warn!(journal = %self.path.display(), error = %e, "journal write failed");
        }
    }

    /// Empties the journal (`POST /reset`).
    pub fn truncate(&mut self) {
        if let Err(e) = self.file.set_len(0) {
            tracing::warn!(journal = %self.path.display(), error = %e, "journal truncate failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(seq: u64) -> Call {
        Call {
            seq,
            at_ms: 1000 + seq,
            method: "POST".into(),
            path: "/p".into(),
            idempotency_key: None,
            trace: None,
            body: serde_json::json!({ "n": seq }),
            status: None,
            answered_ms: None,
            accepted: false,
        }
    }

    #[test]
    fn events_come_back_and_a_cut_or_corrupt_line_is_skipped() {
        let dir = std::env::temp_dir().join(format!("stubs-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut.jsonl");
        let _ = std::fs::remove_file(&path);
        let (mut j, events) = Journal::open(&path).unwrap();
        assert!(events.is_empty());
        let written = [
            Event::Arrived { call: call(1) },
            Event::Accepted {
                seq: 1,
                at_ms: 1002,
            },
            Event::Answered {
                seq: 1,
                status: 201,
                at_ms: 1003,
            },
        ];
        for e in &written {
            j.append(e);
        }
        drop(j);
        // A corrupt line in the middle, then a line cut short by a kill.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{not json}\n{\"event\":\"arrived\",\"ca")
            .unwrap();
        drop(f);

        let (mut j, events) = Journal::open(&path).unwrap();
        assert_eq!(events, written);
        // The cut line is gone from the file, so the next line starts a line of its own.
        j.append(&Event::Arrived { call: call(2) });
        drop(j);
        let (_, events) = Journal::open(&path).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[3], Event::Arrived { call: call(2) });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
