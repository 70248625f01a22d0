//! One direction of one proxied connection: a reader that stamps each chunk with its arrival
//! time, and a writer that applies the current toxics to the chunks, in order.
//!
//! Exactness: every byte read is written exactly once and in order unless a toxic ends the
//! connection (timeout, reset_peer, limit_data), whatever happens to the toxic set meanwhile.
//! The writer works out when the next piece of pending data may go from the toxics in force
//! now, and wakes whenever the set changes, so an added toxic applies to data not yet written
//! and a removed one stops delaying at once. Latency counts from a chunk's arrival, so chunks
//! in flight are not delayed cumulatively.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chaos_model::Stream;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use nix::fcntl::{OFlag, SpliceFFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, tcp};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::toxic::{Toxic, ToxicKind};

/// Chunks in flight between a link's reader and writer: bounds memory and gives
/// backpressure to the sender when a toxic holds data back.
const CHANNEL_CHUNKS: usize = 64;
const READ_BUFFER: usize = 32 * 1024;
/// With no toxic, a read of less than this moves through user space (read and write cost
/// less than two splices for small messages); a read that fills it starts splicing.
const DIRECT_BUFFER: usize = 16 * 1024;
/// Capacity asked of each link's splice pipe.
const PIPE_BYTES: i32 = 1 << 20;

pub(crate) type ToxicSet = Arc<Vec<Toxic>>;

/// How a toxic ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Close both sides (FIN).
    Close,
    /// Reset both sides (RST: SO_LINGER 0, then close).
    Reset,
}

/// Shared by both directions of a connection: the first `End` wins and wakes the connection's
/// task. An atomic and an atomic waker, not a channel: the connection polls it at every
/// wake-up, and a channel's wait takes a lock each time.
#[derive(Default)]
pub(crate) struct EndSignal {
    /// 0: not ended; 1: close; 2: reset.
    how: AtomicU8,
    waker: futures_util::task::AtomicWaker,
}

impl EndSignal {
    /// End the connection `how`, unless it was ended already.
    pub(crate) fn set(&self, how: End) {
        let v = match how {
            End::Close => 1,
            End::Reset => 2,
        };
        let _ = self
            .how
            .compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    fn get(&self) -> Option<End> {
        match self.how.load(Ordering::Acquire) {
            1 => Some(End::Close),
            2 => Some(End::Reset),
            _ => None,
        }
    }

    /// Wait until the connection is ended, and say how.
    pub(crate) async fn ended(&self) -> End {
        std::future::poll_fn(|cx| {
            if let Some(how) = self.get() {
                return Poll::Ready(how);
            }
            self.waker.register(cx.waker());
            self.get().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }
}

struct Chunk {
    data: Vec<u8>,
    arrived: Instant,
}

/// How a stretch of pumping ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The direction is finished (source closed and closed onward, error, or a toxic ended
    /// the connection).
    Done,
    /// The toxics changed so that the other way of pumping applies now.
    Switch,
}

/// Pump bytes from `from` to `to` until `from` ends, then close `to`'s write side (a half
/// close, so the other direction can finish), or until a toxic ends the connection.
///
/// With no toxic in force on this direction small reads are written on at once and bulk
/// moves by `splice(2)` through a pipe, never entering user space; with toxics the bytes move
/// as time-stamped chunks through the toxic writer. The switch happens between whole
/// transfers, so no byte is lost or repeated.
pub(crate) async fn pump(
    mut from: tcp::ReadHalf<'_>,
    to: tcp::WriteHalf<'_>,
    stream: Stream,
    toxics: watch::Receiver<ToxicSet>,
    seed: u64,
    end: &EndSignal,
) {
    let mut w = Writer {
        to,
        stream,
        toxics,
        rng: ChaCha8Rng::seed_from_u64(seed),
        rolls: BTreeMap::new(),
        next_free: BTreeMap::new(),
        sent: BTreeMap::new(),
        piece: None,
        armed: None,
        eof_at: None,
        end,
    };
    let pipe = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok();
    if let Some((_, w)) = &pipe {
        // A larger pipe moves more per splice; the default 64 KiB costs many syscalls.
        let _ = nix::fcntl::fcntl(w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
    }
    let mut direct_buf = vec![0u8; DIRECT_BUFFER];
    loop {
        let outcome = match &pipe {
            Some(pipe) if w.active().is_empty() => {
                direct_mode(&mut from, &mut w, pipe, &mut direct_buf).await
            }
            _ => chunk_mode(&mut from, &mut w, pipe.is_some()).await,
        };
        if outcome == Outcome::Done {
            return;
        }
    }
}

/// With no toxic in force on this direction: a read that comes back small is written on at
/// once from a buffer (read and write cost less than two splices for small messages); once a
/// read fills the buffer (bulk), bytes move by splice(2) through a pipe, never entering user
/// space, until a read comes back small again. Reading into the pipe and writing out of it
/// overlap, so both sockets stay busy. A change of the toxic set hands over to `pump` once
/// nothing is held, which looks again at what applies. Returns only with nothing held.
///
/// One hand-written poll loop, as tokio's own copy is: the sockets' readiness is polled in
/// place (no readiness future made and dropped per wake-up), and the toxic set's version is
/// an atomic load per turn; the wait for a change is polled only when the loop is about to
/// sleep.
async fn direct_mode(
    from: &mut tcp::ReadHalf<'_>,
    w: &mut Writer<'_, '_>,
    pipe: &(OwnedFd, OwnedFd),
    buf: &mut [u8],
) -> Outcome {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    let (pipe_r, pipe_w) = pipe;
    let capacity = nix::fcntl::fcntl(pipe_w, nix::fcntl::FcntlArg::F_GETPIPE_SZ)
        .map_or(1 << 16, |n| n as usize);
    let src: &TcpStream = from.as_ref();
    let dst: &TcpStream = w.to.as_ref();
    let toxics = &w.toxics;
    let mut probe = toxics.clone();
    let mut changed = std::pin::pin!(probe.changed());
    let mut in_pipe = 0usize;
    // Bytes read but not yet written: buf[off..len].
    let (mut off, mut len) = (0usize, 0usize);
    let mut bulk = false;
    // The last splice into the pipe found it full.
    let mut pipe_full = false;
    let mut source_done = false;
    let mut switching = false;
    let mut watching = true;
    let would_block = |e: &std::io::Error| e.kind() == std::io::ErrorKind::WouldBlock;
    let stop = std::future::poll_fn(|cx| {
        loop {
            if !switching && toxics.has_changed().unwrap_or(false) {
                switching = true;
            }
            let held = in_pipe > 0 || off < len;
            if !held {
                if source_done {
                    return Poll::Ready(Stop::Finished);
                }
                if switching {
                    return Poll::Ready(Stop::Switch);
                }
            }
            let mut progressed = false;
            if held {
                match dst.poll_write_ready(cx) {
                    Poll::Ready(Err(_)) => return Poll::Ready(Stop::Failed),
                    Poll::Ready(Ok(())) => {
                        let r = if off < len {
                            dst.try_write(&buf[off..len])
                        } else {
                            dst.try_io(Interest::WRITABLE, || {
                                nix::fcntl::splice(pipe_r, None, dst, None, in_pipe, flags)
                                    .map_err(std::io::Error::from)
                            })
                        };
                        match r {
                            Ok(n) if off < len => {
                                off += n;
                                if off == len {
                                    (off, len) = (0, 0);
                                }
                                progressed = true;
                            }
                            Ok(n) => {
                                in_pipe -= n;
                                progressed = true;
                            }
                            // Readiness is cleared: poll it again, so the waker is registered.
                            Err(e) if would_block(&e) => progressed = true,
                            Err(_) => return Poll::Ready(Stop::Failed),
                        }
                    }
                    Poll::Pending => {}
                }
            }
            if in_pipe == 0 {
                pipe_full = false;
            }
            if !source_done && !switching && !pipe_full && off == len && in_pipe < capacity {
                match src.poll_read_ready(cx) {
                    Poll::Ready(Err(_)) => {
                        source_done = true;
                        progressed = true;
                    }
                    Poll::Ready(Ok(())) => {
                        let spliced = bulk || in_pipe > 0;
                        let r = if spliced {
                            let moved = nix::fcntl::splice(
                                src,
                                None,
                                pipe_w,
                                None,
                                capacity - in_pipe,
                                flags,
                            );
                            match moved {
                                // With bytes in the pipe, EAGAIN may mean the pipe is full
                                // (its slots, not its bytes): the socket may still hold data,
                                // so its readiness stays; read again once the pipe drains.
                                Err(nix::errno::Errno::EAGAIN) if in_pipe > 0 => {
                                    pipe_full = true;
                                    continue;
                                }
                                // The socket is empty (or failed): clear its readiness.
                                Err(e) => {
                                    src.try_io(Interest::READABLE, || Err(std::io::Error::from(e)))
                                }
                                Ok(n) => Ok(n),
                            }
                        } else {
                            src.try_read(buf)
                        };
                        match r {
                            Ok(0) => {
                                source_done = true;
                                progressed = true;
                            }
                            Ok(n) => {
                                bulk = n >= buf.len();
                                if spliced {
                                    in_pipe += n;
                                } else {
                                    len = n;
                                }
                                progressed = true;
                            }
                            // Readiness is cleared: poll it again, so the waker is registered.
                            Err(e) if would_block(&e) => progressed = true,
                            Err(_) => {
                                source_done = true;
                                progressed = true;
                            }
                        }
                    }
                    Poll::Pending => {}
                }
            }
            if !progressed {
                if watching && !switching {
                    match changed.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => {
                            switching = true;
                            continue;
                        }
                        // The proxy is gone; the set stands as it is.
                        Poll::Ready(Err(_)) => watching = false,
                        Poll::Pending => {}
                    }
                }
                return Poll::Pending;
            }
        }
    })
    .await;
    match stop {
        Stop::Finished => {
            let _ = w.to.shutdown().await;
            Outcome::Done
        }
        Stop::Failed => Outcome::Done,
        Stop::Switch => Outcome::Switch,
    }
}

/// How `direct_mode`'s loop ended.
enum Stop {
    /// The source closed and everything read was written: close onward.
    Finished,
    /// A socket failed: the direction is over.
    Failed,
    /// The toxic set changed and nothing is held.
    Switch,
}

/// Run the reader and the toxic writer until the direction is done or, when splicing is
/// available, until no toxic applies and nothing is pending.
async fn chunk_mode(
    from: &mut tcp::ReadHalf<'_>,
    w: &mut Writer<'_, '_>,
    can_splice: bool,
) -> Outcome {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let stop = Notify::new();
    let eof = AtomicBool::new(false);
    let ((), outcome) = tokio::join!(
        read_chunks(from, tx, &stop, &eof),
        w.run(rx, &stop, &eof, can_splice)
    );
    outcome
}

async fn read_chunks(
    from: &mut tcp::ReadHalf<'_>,
    tx: mpsc::Sender<Chunk>,
    stop: &Notify,
    eof: &AtomicBool,
) {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        // Reading a TCP stream is cancel-safe: a stop between reads loses nothing.
        let n = tokio::select! {
            biased;
            () = stop.notified() => return,
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    eof.store(true, Ordering::Release);
                    return;
                }
                Ok(n) => n,
            },
        };
        let chunk = Chunk {
            data: buf[..n].to_vec(),
            arrived: Instant::now(),
        };
        if tx.send(chunk).await.is_err() {
            return; // the writer is gone: the connection is ending
        }
    }
}

/// A toxic in force on this link, and since when this link has seen it.
struct Active {
    toxic: Toxic,
    since: Instant,
}

/// The size and per-toxic random draws of the next piece, kept until it is written so
/// that re-planning after a toxic change does not redraw them.
struct Piece {
    jitter_ms: BTreeMap<String, i64>,
    slice: BTreeMap<String, usize>,
}

struct Writer<'w, 'e> {
    to: tcp::WriteHalf<'w>,
    stream: Stream,
    toxics: watch::Receiver<ToxicSet>,
    rng: ChaCha8Rng,
    /// Toxicity is decided per connection, as in Toxiproxy: each link rolls once per toxic
    /// (again if its toxicity changes) whether the toxic applies to it, and since when.
    rolls: BTreeMap<String, (f32, bool, Instant)>,
    /// bandwidth and slicer: the earliest instant their next piece may go.
    next_free: BTreeMap<String, Instant>,
    /// limit_data: bytes written while each limit_data toxic was in force.
    sent: BTreeMap<String, u64>,
    piece: Option<Piece>,
    /// reset_peer: when data first met it.
    armed: Option<(String, Instant)>,
    /// When the source closed (for slow_close).
    eof_at: Option<Instant>,
    end: &'e EndSignal,
}

impl Writer<'_, '_> {
    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Chunk>,
        stop: &Notify,
        eof: &AtomicBool,
        can_splice: bool,
    ) -> Outcome {
        let mut pending: Option<Chunk> = None;
        let mut watching = true;
        let mut stopping = false;
        loop {
            let active = self.active();
            if can_splice
                && !stopping
                && active.is_empty()
                && pending.is_none()
                && self.eof_at.is_none()
            {
                // Nothing to do to the bytes any more: stop the reader, write what it
                // already read, and hand over to splicing.
                stop.notify_one();
                stopping = true;
            }
            let blocked = active.iter().any(|a| {
                matches!(
                    a.toxic.kind,
                    ToxicKind::Timeout { .. } | ToxicKind::ResetPeer { .. }
                )
            });
            if !active
                .iter()
                .any(|a| matches!(a.toxic.kind, ToxicKind::ResetPeer { .. }))
            {
                self.armed = None;
            }
            if pending.is_some() {
                self.arm_reset(&active);
            }
            let deadline = self.deadline(&active);
            let release = match &pending {
                Some(c) if !blocked => Some(self.plan(c, &active)),
                _ => None,
            };
            let close_at = match (self.eof_at, &pending) {
                (Some(eof), None) if !blocked => Some(eof + slow_close(&active)),
                _ => None,
            };
            let receiving = pending.is_none() && self.eof_at.is_none();
            // Fast path: data that may go now goes without a trip through the timer.
            if let (Some((n, at)), None) = (release, deadline)
                && at <= Instant::now()
            {
                let c = pending.as_mut().expect("a release needs pending data");
                if !self.write_piece(c, n, &active).await {
                    return Outcome::Done;
                }
                if c.data.is_empty() {
                    pending = None;
                }
                continue;
            }
            tokio::select! {
                biased;
                () = sleep_until_opt(deadline.map(|d| d.0)), if deadline.is_some() => {
                    self.end.set(deadline.expect("guarded").1);
                    return Outcome::Done;
                }
                changed = self.toxics.changed(), if watching => {
                    // The proxy is gone when this errs; the set stands as it is.
                    watching = changed.is_ok();
                }
                () = crate::timer::sleep_until(release.map_or_else(Instant::now, |r| r.1)), if release.is_some() => {
                    let (n, _) = release.expect("guarded");
                    let c = pending.as_mut().expect("a release needs pending data");
                    if !self.write_piece(c, n, &active).await {
                        return Outcome::Done;
                    }
                    if c.data.is_empty() {
                        pending = None;
                    }
                }
                () = sleep_until_opt(close_at), if close_at.is_some() => {
                    let _ = self.to.shutdown().await;
                    return Outcome::Done;
                }
                c = rx.recv(), if receiving => match c {
                    Some(c) => pending = Some(c),
                    None if eof.load(Ordering::Acquire) => self.eof_at = Some(Instant::now()),
                    // The reader stopped on request and everything it read is written.
                    None => return Outcome::Switch,
                },
            }
        }
    }

    /// The toxics of this direction in force on this link, in the proxy's order.
    fn active(&mut self) -> Vec<Active> {
        let set = self.toxics.borrow_and_update().clone();
        let now = Instant::now();
        let mut out = Vec::new();
        for t in set.iter().filter(|t| t.stream == self.stream) {
            let (on, since) = match self.rolls.get(&t.name) {
                Some(&(toxicity, on, since)) if toxicity == t.toxicity => (on, since),
                _ => {
                    let on = t.toxicity >= 1.0 || self.rng.random::<f32>() < t.toxicity;
                    self.rolls.insert(t.name.clone(), (t.toxicity, on, now));
                    (on, now)
                }
            };
            if on {
                out.push(Active {
                    toxic: t.clone(),
                    since,
                });
            }
        }
        // Forget toxics that were removed, so that adding one again starts afresh.
        self.rolls
            .retain(|name, _| set.iter().any(|t| &t.name == name));
        self.next_free
            .retain(|name, _| set.iter().any(|t| &t.name == name));
        self.sent
            .retain(|name, _| set.iter().any(|t| &t.name == name));
        out
    }

    fn arm_reset(&mut self, active: &[Active]) {
        if let Some(a) = active
            .iter()
            .find(|a| matches!(a.toxic.kind, ToxicKind::ResetPeer { .. }))
            && self
                .armed
                .as_ref()
                .is_none_or(|(name, _)| name != &a.toxic.name)
        {
            self.armed = Some((a.toxic.name.clone(), Instant::now()));
        }
    }

    /// The earliest instant at which a toxic ends the connection, and how.
    fn deadline(&self, active: &[Active]) -> Option<(Instant, End)> {
        let mut best: Option<(Instant, End)> = None;
        let mut consider = |at: Instant, how: End| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, how));
            }
        };
        for a in active {
            match a.toxic.kind {
                ToxicKind::Timeout { timeout_ms } if timeout_ms > 0 => {
                    consider(a.since + Duration::from_millis(timeout_ms), End::Close);
                }
                ToxicKind::ResetPeer { timeout_ms } => {
                    if let Some((name, at)) = &self.armed
                        && name == &a.toxic.name
                    {
                        consider(*at + Duration::from_millis(timeout_ms), End::Reset);
                    }
                }
                _ => {}
            }
        }
        best
    }

    /// How many bytes of `c` go next, and when: the toxics apply in order, each to the
    /// release time the previous ones produced.
    fn plan(&mut self, c: &Chunk, active: &[Active]) -> (usize, Instant) {
        let piece = self.piece.get_or_insert_with(|| Piece {
            jitter_ms: BTreeMap::new(),
            slice: BTreeMap::new(),
        });
        let mut n = c.data.len();
        let mut release = c.arrived;
        for a in active {
            let name = &a.toxic.name;
            match a.toxic.kind {
                ToxicKind::Latency {
                    latency_ms,
                    jitter_ms,
                } => {
                    let j = *piece.jitter_ms.entry(name.clone()).or_insert_with(|| {
                        if jitter_ms == 0 {
                            0
                        } else {
                            let j = jitter_ms as i64;
                            self.rng.random_range(-j..j)
                        }
                    });
                    let ms = (latency_ms as i64 + j).max(0) as u64;
                    release += Duration::from_millis(ms);
                }
                ToxicKind::Bandwidth { rate_kbps } if rate_kbps > 0 => {
                    // At most 100 ms worth at a time, as Toxiproxy does, so a large chunk
                    // trickles out instead of arriving in one late burst.
                    n = n.min((rate_kbps * 100) as usize).max(1);
                    let start = self
                        .next_free
                        .get(name)
                        .map_or(release, |&f| f.max(release));
                    // rate KB/s is rate bytes per millisecond.
                    release = start + Duration::from_micros(n as u64 * 1000 / rate_kbps);
                }
                ToxicKind::Slicer {
                    average_size,
                    size_variation,
                    ..
                } => {
                    let size = *piece.slice.entry(name.clone()).or_insert_with(|| {
                        let v = size_variation as i64;
                        let s = average_size as i64
                            + if v > 0 {
                                self.rng.random_range(-v..=v)
                            } else {
                                0
                            };
                        s.max(1) as usize
                    });
                    n = n.min(size);
                    if let Some(&f) = self.next_free.get(name) {
                        release = release.max(f);
                    }
                }
                _ => {}
            }
        }
        (n, release)
    }

    /// Write the next `n` bytes of `c` (fewer if a limit_data toxic runs out). Returns
    /// false when the link is finished (write error or limit reached).
    async fn write_piece(&mut self, c: &mut Chunk, n: usize, active: &[Active]) -> bool {
        let mut n = n;
        let mut limit_reached = false;
        for a in active {
            if let ToxicKind::LimitData { bytes } = a.toxic.kind {
                let sent = self.sent.get(&a.toxic.name).copied().unwrap_or(0);
                let left = bytes.saturating_sub(sent) as usize;
                if left <= n {
                    n = left;
                    limit_reached = true;
                }
            }
        }
        if n > 0 && self.to.write_all(&c.data[..n]).await.is_err() {
            return false;
        }
        c.data.drain(..n);
        self.piece = None;
        let now = Instant::now();
        for a in active {
            match a.toxic.kind {
                ToxicKind::Bandwidth { rate_kbps } if rate_kbps > 0 => {
                    // The piece's transmission time was part of its release: the next
                    // piece's starts now.
                    self.next_free.insert(a.toxic.name.clone(), now);
                }
                ToxicKind::Slicer { delay_us, .. } => {
                    self.next_free
                        .insert(a.toxic.name.clone(), now + Duration::from_micros(delay_us));
                }
                ToxicKind::LimitData { .. } => {
                    *self.sent.entry(a.toxic.name.clone()).or_insert(0) += n as u64;
                }
                _ => {}
            }
        }
        if limit_reached {
            self.end.set(End::Close);
            return false;
        }
        true
    }
}

fn slow_close(active: &[Active]) -> Duration {
    active
        .iter()
        .map(|a| match a.toxic.kind {
            ToxicKind::SlowClose { delay_ms } => Duration::from_millis(delay_ms),
            _ => Duration::ZERO,
        })
        .sum()
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
