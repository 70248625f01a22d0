//! The recorder: ops and fault events arrive from many tasks over a channel and are written
//! by one task, one JSON object per line, in arrival order. Counters feed progress lines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chaos_model::Record;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::clock::Clock;
use crate::error::EngineError;

/// Bytes of history gathered before they go to the file.
const WRITE_BUFFER: usize = 256 << 10;

/// Live counts of what has been recorded so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub invoked: AtomicU64,
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> [u64; 4] {
        [&self.invoked, &self.ok, &self.fail, &self.info].map(|c| c.load(Ordering::Relaxed))
    }
}

/// A handle to record with; cheap to clone, one per task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
    clock: Clock,
    counters: Arc<Counters>,
}

/// Owns the writer task; `finish` waits until every record is on disk.
pub struct RecorderHandle {
    task: JoinHandle<Result<u64, EngineError>>,
    pub path: PathBuf,
}

impl Recorder {
    pub fn start(path: &Path, clock: Clock) -> Result<(Recorder, RecorderHandle), EngineError> {
        let file = std::fs::File::create(path)
            .map_err(EngineError::io(format!("create {}", path.display())))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
        let what = path.display().to_string();
        let task = tokio::spawn(async move {
            // Each flush of a tokio file is a hop to the blocking pool: at 50k ops a second an
            // 8 KiB buffer made that hop (two thread wake-ups) 10k times a second. What is
            // buffered is written when the run ends, interrupted or not.
            let mut out = BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
            let mut n = 0u64;
            while let Some(r) = rx.recv().await {
                let mut line = serde_json::to_vec(&r).expect("records serialise");
                line.push(b'\n');
                out.write_all(&line)
                    .await
                    .map_err(EngineError::io(format!("write {what}")))?;
                n += 1;
            }
            out.flush()
                .await
                .map_err(EngineError::io(format!("flush {what}")))?;
            Ok(n)
        });
        let rec = Recorder {
            tx,
            clock,
            counters: Arc::default(),
        };
        Ok((
            rec,
            RecorderHandle {
                task,
                path: path.to_path_buf(),
            },
        ))
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    pub fn record(&self, r: Record) {
        let c = match &r {
            Record::Invoke(_) => Some(&self.counters.invoked),
            Record::Ok(_) => Some(&self.counters.ok),
            Record::Fail(_) => Some(&self.counters.fail),
            Record::Info(_) => Some(&self.counters.info),
            Record::Fault(_) => None,
        };
        if let Some(c) = c {
            c.fetch_add(1, Ordering::Relaxed);
        }
        // The writer outlives every Recorder unless it failed to write (disk full); that
        // error is returned by `finish`, so here the record is only logged as lost.
        if self.tx.send(r).is_err() {
            tracing::error!("history writer stopped; a record was not written");
        }
    }
}

impl RecorderHandle {
    /// Wait for every record to be written. All `Recorder` clones must be dropped first.
    pub async fn finish(self) -> Result<u64, EngineError> {
        self.task
            .await
            .unwrap_or_else(|e| panic!("history writer task failed: {e}"))
    }
}
