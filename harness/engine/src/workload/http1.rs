//! The driver's HTTP/1.1 client for one replica: keep-alive connections taken from and put
//! back into a pool of its own, each request written in one piece and its answer parsed with
//! `httparse`, in the op's task. It says whether a failed request was never sent (it cannot
//! have taken effect) or sent without an answer (it may have).
//!
//! Why not reqwest (used everywhere else): on the trivial endpoint of `just bench` it ran the
//! open-loop driver at a third of wrk's rate. Per request it parses a URL, builds a header
//! map, goes through a pool checkout, a tower stack and a connection task of its own with
//! channels between them. Here a request is one write and, as a rule, one read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, recv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A complete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    /// `Retry-After` in whole seconds, when the answer had one.
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection: the request never left.
    NotSent(String),
    /// Written, or partly written, and no complete answer came back.
    Lost(String),
}

/// Heads larger than this are not of the target's answers.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// Less time than this left after a checkout: the request is not sent.
const MIN_LEFT: Duration = Duration::from_millis(5);
/// Bodies larger than this are not of the target's answers either.
const MAX_BODY: usize = 16 << 20;

/// A pool of keep-alive connections to one `host:port`.
pub(crate) struct Http1 {
    /// `host:port`, as connected to and sent as `Host`.
    authority: Arc<str>,
    pool: Arc<Mutex<Pool>>,
    /// A connection idle longer than this is closed instead of reused.
    idle_for: Duration,
    connect_timeout: Duration,
}

/// What waits for a connection: the connection, or why the request's own connect failed.
type Waiter = oneshot::Sender<Result<TcpStream, String>>;

#[derive(Default)]
struct Pool {
    /// Idle connections, oldest first (each pushed when put back).
    idle: Vec<(TcpStream, Instant)>,
    /// Requests waiting for a connection, oldest first, by id: the id of the connect that
    /// answers each (its own, or one it adopted).
    waiting: VecDeque<(u64, Waiter)>,
    /// Connects still under way whose request no longer waits (another connection served
    /// it, or it gave up): a request finding no idle connection adopts one of these before
    /// it starts a connect of its own, so a burst right after another opens no connection
    /// the one before it had already started.
    orphans: Vec<u64>,
    next_id: u64,
}

impl Pool {
    /// Give `c` to the oldest request still waiting, or keep it idle.
    fn hand_over(&mut self, c: TcpStream) {
        let mut c = Ok(c);
        while let Some((id, w)) = self.waiting.pop_front() {
            // Its connect, still under way, answers nobody now.
            self.orphans.push(id);
            match w.send(c) {
                Ok(()) => return,
                Err(back) => c = back, // that request gave up
            }
        }
        if let Ok(c) = c {
            self.idle.push((c, Instant::now()));
        }
    }

    /// Answer request `id` with `r` if it still waits; a connection it no longer wants goes
    /// to the next one.
    fn answer(&mut self, id: u64, r: Result<TcpStream, String>) {
        match self.waiting.iter().position(|(w, _)| *w == id) {
            Some(i) => {
                let (_, w) = self.waiting.remove(i).expect("the position is in range");
                if let Err(Ok(c)) = w.send(r) {
                    self.hand_over(c);
                }
            }
            None => {
                self.orphans.retain(|o| *o != id);
                if let Ok(c) = r {
                    self.hand_over(c);
                }
            }
        }
    }
}

impl Http1 {
    /// A client of `base` (`http://host:port`, no path).
    pub(crate) fn new(base: &str, idle_for: Duration, connect_timeout: Duration) -> Http1 {
        let authority = base
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("a replica's base URL is http://host:port, not {base:?}"))
            .trim_end_matches('/');
        assert!(
            !authority.is_empty() && !authority.contains('/'),
            "a replica's base URL is http://host:port, not {base:?}"
        );
        Http1 {
            authority: authority.into(),
            pool: Arc::default(),
            idle_for,
            connect_timeout,
        }
    }

    /// The `Host` header's value.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// Send `request` (a whole HTTP/1.1 request, head and body) and read its answer, all
    /// within `deadline`.
    pub(crate) async fn send(&self, request: &[u8], deadline: Duration) -> Result<Answer, Failure> {
        let start = tokio::time::Instant::now();
        let mut conn = match tokio::time::timeout(deadline, self.checkout(deadline)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(Failure::NotSent(e)),
            Err(_) => {
                return Err(Failure::NotSent(format!(
                    "timed out after {deadline:?} waiting for a connection"
                )));
            }
        };
        let left = deadline.saturating_sub(start.elapsed());
        if left < MIN_LEFT {
            // A request written with (almost) no time left could only be lost: the timer
            // fires at the next millisecond, after the write.
            self.lock().hand_over(conn);
            return Err(Failure::NotSent(format!(
                "timed out after {deadline:?} before it was sent"
            )));
        }
        match tokio::time::timeout(left, exchange(&mut conn, request)).await {
            Ok(Ok((answer, keep))) => {
                if keep {
                    self.lock().hand_over(conn);
                }
                Ok(answer)
            }
            Ok(Err(e)) => Err(Failure::Lost(e)),
            Err(_) => Err(Failure::Lost(format!("timed out after {deadline:?}"))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        lock(&self.pool)
    }

    /// A connection to send on: an idle one that is still open, else whichever comes first
    /// of the one this request's connect opens and one another request puts back (so a
    /// burst is not held up by its own handshakes; the connections it opened and did not use
    /// stay idle for the next requests, up to the idle limit). A request's connect is its
    /// own, or one under way that nobody waits for any more (adopted). That connect answers
    /// the request while it waits: with the connection, or with why it failed; so every
    /// waiting request is answered by its connect's end at the latest. A connection whose
    /// request was already served goes to the oldest waiting one, or to the pool.
    async fn checkout(&self, deadline: Duration) -> Result<TcpStream, String> {
        let (stale, ready) = {
            let mut pool = self.lock();
            let stale = self.expired(&mut pool);
            let ready = match take_open(&mut pool) {
                Some(c) => Ok(c),
                None => {
                    let (tx, rx) = oneshot::channel();
                    // A connect under way that nobody waits for answers this request as its
                    // own would (with its connection, or why it failed); else a new one.
                    let adopted = pool.orphans.pop();
                    let id = adopted.unwrap_or_else(|| {
                        pool.next_id += 1;
                        pool.next_id - 1
                    });
                    pool.waiting.push_back((id, tx));
                    Err((id, rx, adopted.is_some()))
                }
            };
            (stale, ready)
        };
        // Closed outside the lock: a burst may leave thousands behind.
        drop(stale);
        let (id, rx, adopted) = match ready {
            Ok(c) => return Ok(c),
            Err(waiting) => waiting,
        };
        if !adopted {
            let within = self.connect_timeout.min(deadline);
            let (authority, pool) = (Arc::clone(&self.authority), Arc::clone(&self.pool));
            tokio::spawn(async move {
                let r = match tokio::time::timeout(within, TcpStream::connect(&*authority)).await {
                    Ok(Ok(c)) => {
                        let _ = c.set_nodelay(true);
                        Ok(c)
                    }
                    Ok(Err(e)) => Err(format!("connect: {e}")),
                    Err(_) => Err(format!("connect timed out after {within:?}")),
                };
                lock(&pool).answer(id, r);
            });
        }
        rx.await
            .unwrap_or_else(|_| Err("the connection pool dropped a waiting request".into()))
    }

    /// The idle connections kept longer than `idle_for`, taken out of the pool.
    fn expired(&self, pool: &mut Pool) -> Vec<(TcpStream, Instant)> {
        let old = pool
            .idle
            .partition_point(|(_, since)| since.elapsed() > self.idle_for);
        pool.idle.drain(..old).collect()
    }
}

fn lock(pool: &Mutex<Pool>) -> std::sync::MutexGuard<'_, Pool> {
    pool.lock().expect("the pool's lock is never poisoned")
}

/// The newest idle connection that is still open: a server that closed one (a restarted
/// replica, its keep-alive limit) has left an end of file, which a peek at the socket sees
/// whether or not the runtime has yet.
fn take_open(pool: &mut Pool) -> Option<TcpStream> {
    while let Some((c, _)) = pool.idle.pop() {
        let mut probe = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        match recv(c.as_raw_fd(), &mut probe, flags) {
            Err(nix::errno::Errno::EAGAIN) => return Some(c),
            // Closed, reset, or bytes nobody asked for: not a connection to send on.
            _ => continue,
        }
    }
    None
}

/// Write `request` and read one answer. Returns it and whether the connection may carry
/// another request.
async fn exchange(c: &mut TcpStream, request: &[u8]) -> Result<(Answer, bool), String> {
    c.write_all(request)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        match parse_head(&buf)? {
            // An interim answer (100 Continue, 103 Early Hints): the final one follows.
            Some(head) if (100..200).contains(&head.status) => {
                buf.drain(..head.len);
                continue;
            }
            Some(head) => return read_body(c, buf, head).await,
            None => {}
        }
        if buf.len() >= MAX_HEAD {
            return Err(format!("an answer's head is over {MAX_HEAD} bytes"));
        }
        if read_more(c, &mut buf).await? == 0 {
            return Err(if buf.is_empty() {
                "the connection closed before an answer".to_string()
            } else {
                "the connection closed in the middle of an answer's head".to_string()
            });
        }
    }
}

/// What an answer's head says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    status: u16,
    retry_after: Option<u64>,
    /// Bytes of `buf` the head took.
    len: usize,
    framing: Framing,
    /// Whether the connection may carry another request.
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// The head of the answer at the start of `buf`, once it is all there.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("a malformed answer: {e}")),
    };
    let status = r.code.expect("a complete head has a status");
    let mut length = None;
    // The last transfer coding, when there is one: only `chunked` ends the body on its own.
    let mut coding: Option<bool> = None;
    // HTTP/1.0 closes unless asked to keep the connection, 1.1 keeps it unless asked to close.
    let http10 = r.version == Some(0);
    let mut close = http10;
    let mut retry_after = None;
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or_default().trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("a malformed content-length {v:?}"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coding = v
                .rsplit(',')
                .next()
                .map(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            let has = |t: &str| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(t));
            close = if http10 {
                !has("keep-alive")
            } else {
                has("close")
            };
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after = v.parse::<u64>().ok();
        }
    }
    // RFC 9112 6.3: a transfer coding overrides any length; one that is not chunked last
    // runs until the connection closes.
    let framing = match (status, coding, length) {
        (100..200 | 204 | 304, _, _) => Framing::Length(0),
        (_, Some(true), _) => Framing::Chunked,
        (_, Some(false), _) | (_, None, None) => Framing::UntilClose,
        (_, None, Some(n)) if n > MAX_BODY => {
            return Err(format!("an answer's body of {n} bytes is over {MAX_BODY}"));
        }
        (_, None, Some(n)) => Framing::Length(n),
    };
    Ok(Some(Head {
        status,
        retry_after,
        len,
        keep: !close && framing != Framing::UntilClose,
        framing,
    }))
}

async fn read_more(c: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, String> {
    if buf.len() > MAX_HEAD + MAX_BODY {
        return Err(format!("an answer is over {} bytes", MAX_HEAD + MAX_BODY));
    }
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(buf.capacity().max(4096));
    }
    c.read_buf(buf)
        .await
        .map_err(|e| format!("reading the answer: {e}"))
}

/// The body after `head`, whose first bytes may already be in `buf`.
async fn read_body(
    c: &mut TcpStream,
    mut buf: Vec<u8>,
    head: Head,
) -> Result<(Answer, bool), String> {
    let mut keep = head.keep;
    let body = match head.framing {
        Framing::Length(n) => {
            while buf.len() < head.len + n {
                if read_more(c, &mut buf).await? == 0 {
                    return Err("the connection closed in the middle of an answer".into());
                }
            }
            // Bytes past the answer were never asked for: the connection is out of step.
            keep &= buf.len() == head.len + n;
            buf.truncate(head.len + n);
            buf.drain(..head.len);
            buf
        }
        Framing::UntilClose => {
            while read_more(c, &mut buf).await? > 0 {}
            buf.drain(..head.len);
            buf
        }
        Framing::Chunked => {
            let mut at = head.len;
            let mut body = Vec::new();
            loop {
                match dechunk(&buf[at..], &mut body)? {
                    Some(used) => {
                        at += used;
                        break;
                    }
                    None => {
                        if read_more(c, &mut buf).await? == 0 {
                            return Err("the connection closed in the middle of an answer".into());
                        }
                    }
                }
            }
            keep &= at == buf.len();
            body
        }
    };
    Ok((
        Answer {
            status: head.status,
            retry_after: head.retry_after,
            body,
        },
        keep,
    ))
}

/// Decode a whole chunked body at the start of `data` into `body`: the bytes it took, or
/// `None` (and `body` untouched) while it is not all there. Trailers are skipped.
fn dechunk(data: &[u8], body: &mut Vec<u8>) -> Result<Option<usize>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&data[at..]) else {
            return Ok(None);
        };
        let line =
            std::str::from_utf8(&data[at..at + eol]).map_err(|_| "a malformed chunk size")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16)
            .map_err(|_| format!("a malformed chunk size {line:?}"))?;
        at += eol + 2;
        if size > MAX_BODY || out.len() + size > MAX_BODY {
            return Err(format!("a chunked body over {MAX_BODY} bytes"));
        }
        if size == 0 {
            // Trailer lines, then an empty line.
            loop {
                let Some(eol) = find_crlf(&data[at..]) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    body.extend_from_slice(&out);
                    return Ok(Some(at));
                }
            }
        }
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[at..at + size]);
        if &data[at + size..at + size + 2] != b"\r\n" {
            return Err("a chunk without its line end".into());
        }
        at += size + 2;
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn a_head_says_how_its_body_ends_and_whether_the_connection_goes_on() {
        let whole =
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\ncontent-length: 2\r\n\r\n{}";
        let h = parse_head(whole).unwrap().unwrap();
        assert_eq!(
            (h.status, h.retry_after, h.framing, h.keep, h.len),
            (503, Some(3), Framing::Length(2), true, whole.len() - 2)
        );
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep), (Framing::Chunked, false));
        let h = parse_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep), (Framing::UntilClose, false));
        let h = parse_head(b"HTTP/1.0 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep), (Framing::Length(0), false));
        let h =
            parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!((h.framing, h.keep), (Framing::Length(0), true));
        // A transfer coding overrides a length; one not chunked last runs to the close.
        let h =
            parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ncontent-length: 2\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!((h.framing, h.keep), (Framing::UntilClose, false));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n").is_err());
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-len").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(parse_head(b"SMTP ready\r\n\r\n").is_err());
    }

    #[test]
    fn a_chunked_body_is_decoded_once_it_is_all_there() {
        let whole = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: y\r\n\r\n";
        let mut body = Vec::new();
        for cut in 0..whole.len() {
            assert_eq!(dechunk(&whole[..cut], &mut body), Ok(None), "cut at {cut}");
            assert!(body.is_empty());
        }
        assert_eq!(dechunk(whole, &mut body), Ok(Some(whole.len())));
        assert_eq!(body, b"Wikipedia");
        assert!(dechunk(b"zz\r\n", &mut Vec::new()).is_err());
        // A size past any body (it would wrap the offsets) is refused, not a panic.
        assert!(dechunk(b"ffffffffffffffff\r\nab\r\n", &mut Vec::new()).is_err());
        assert!(dechunk(b"2\r\nabcd\r\n", &mut Vec::new()).is_err());
    }

    /// Read from `s` until a whole request head is in `buf`, and take it out: false once the
    /// client has closed (or the read failed) first.
    async fn next_head(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
        loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.drain(..i + 4);
                return true;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A server on loopback that answers each connection's requests with `answers`, one per
    /// request head, then closes the connection.
    async fn server(answers: Vec<&'static [u8]>) -> (String, tokio::task::JoinHandle<usize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut connections = 0;
            let mut answers = answers.into_iter();
            while let Ok((mut s, _)) = l.accept().await {
                connections += 1;
                let mut buf = Vec::new();
                while next_head(&mut s, &mut buf).await {
                    match answers.next() {
                        Some([]) => {
                            // Close without an answer.
                            let _ = s.shutdown().await;
                            break;
                        }
                        Some(a) => s.write_all(a).await.unwrap(),
                        None => return connections,
                    }
                    if answers.len() == 0 {
                        return connections;
                    }
                }
                if answers.len() == 0 {
                    return connections;
                }
            }
            connections
        });
        (base, task)
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn answers_come_back_over_one_kept_connection() {
        let (base, srv) = server(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 429 Too Many\r\nretry-after: 1\r\ntransfer-encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n",
        ])
        .await;
        let c = Http1::new(&base, Duration::from_secs(5), Duration::from_secs(1));
        let a = c.send(GET, Duration::from_secs(5)).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"{}"[..]));
        let a = c.send(GET, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            (a.status, a.retry_after, a.body.as_slice()),
            (429, Some(1), &b"[]"[..])
        );
        assert_eq!(
            srv.await.unwrap(),
            1,
            "both requests went over one connection"
        );
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_reused_and_a_lost_answer_is_lost() {
        // The first answer is followed by the server closing; the second request needs a new
        // connection, which the server closes without answering.
        let (base, srv) = server(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            b"",
        ])
        .await;
        let c = Http1::new(&base, Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(
            c.send(GET, Duration::from_secs(5)).await.unwrap().status,
            200
        );
        match c.send(GET, Duration::from_secs(5)).await {
            Err(Failure::Lost(e)) => assert!(e.contains("closed before an answer"), "{e}"),
            other => panic!("expected a lost answer, got {other:?}"),
        }
        assert_eq!(srv.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn no_listener_is_not_sent_and_no_answer_times_out() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let c = Http1::new(&base, Duration::from_secs(5), Duration::from_secs(1));
        match c.send(GET, Duration::from_secs(1)).await {
            Err(Failure::NotSent(e)) => assert!(e.starts_with("connect: "), "{e}"),
            other => panic!("expected a refused connect, got {other:?}"),
        }
        // A listener that accepts (the kernel does) and never answers.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = Http1::new(
            &format!("http://{}", l.local_addr().unwrap()),
            Duration::from_secs(5),
            Duration::from_secs(1),
        );
        match c.send(GET, Duration::from_millis(100)).await {
            Err(Failure::Lost(e)) => assert!(e.contains("timed out"), "{e}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    /// A server on loopback that answers every request on every connection `answer`,
    /// counting connections; with `close_after_one`, it closes each connection after its
    /// first answer (as a server at its keep-alive limit does, without saying so) and
    /// reports each close on `closed`.
    async fn answering(
        answer: &'static [u8],
        close_after_one: bool,
    ) -> (
        String,
        Arc<std::sync::atomic::AtomicUsize>,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
        let counted = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let closed_tx = closed_tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while next_head(&mut s, &mut buf).await {
                        s.write_all(answer).await.unwrap();
                        if close_after_one {
                            let _ = s.shutdown().await;
                            drop(s);
                            let _ = closed_tx.send(());
                            return;
                        }
                    }
                });
            }
        });
        (base, count, closed)
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_unannounced_is_not_sent_on_again() {
        let (base, count, mut closed) =
            answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", true).await;
        let c = Http1::new(&base, Duration::from_secs(5), Duration::from_secs(1));
        for i in 0..3 {
            let a = c.send(GET, Duration::from_secs(5)).await;
            assert_eq!(a.map(|a| a.status), Ok(200), "request {i}");
            // Its end of file is in the client's socket once the server has closed.
            closed.recv().await.unwrap();
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_is_answered_in_full_over_at_most_one_connection_each() {
        let (base, count, _closed) =
            answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", false).await;
        let c = Arc::new(Http1::new(
            &base,
            Duration::from_secs(5),
            Duration::from_secs(1),
        ));
        for _ in 0..3 {
            let burst: Vec<_> = (0..64)
                .map(|_| {
                    let c = Arc::clone(&c);
                    tokio::spawn(async move { c.send(GET, Duration::from_secs(5)).await })
                })
                .collect();
            for t in burst {
                assert_eq!(t.await.unwrap().map(|a| a.status), Ok(200));
            }
        }
        let n = count.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=64).contains(&n), "{n} connections for bursts of 64");
        assert!(
            lock(&c.pool).waiting.is_empty(),
            "no request is left waiting for a connection"
        );
    }

    #[tokio::test]
    async fn an_interim_answer_is_skipped_and_a_long_body_cut_to_its_length() {
        let (base, _count, _closed) = answering(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}",
            false,
        )
        .await;
        let c = Http1::new(&base, Duration::from_secs(5), Duration::from_secs(1));
        let a = c.send(GET, Duration::from_secs(5)).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (201, &b"{}"[..]));
        let (base, _count, _closed) = answering(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
            false,
        )
        .await;
        let c = Http1::new(&base, Duration::from_secs(5), Duration::from_secs(1));
        let a = c.send(GET, Duration::from_secs(5)).await.unwrap();
        assert_eq!(a.body, b"{}");
        assert!(
            lock(&c.pool).idle.is_empty(),
            "a connection out of step is not kept"
        );
    }
}
