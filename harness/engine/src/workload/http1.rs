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

/// A pool of keep-alive connections to one `host:port`.
pub(crate) struct Http1 {
    /// `host:port`, as connected to and sent as `Host`.
    authority: Arc<str>,
    pool: Arc<Mutex<Pool>>,
    /// A connection idle longer than this is closed instead of reused.
    idle_for: Duration,
    connect_timeout: Duration,
}

#[derive(Default)]
struct Pool {
    idle: Vec<(TcpStream, Instant)>,
    /// Requests waiting for a connection, oldest first, by id.
    waiting: VecDeque<(u64, oneshot::Sender<TcpStream>)>,
    next_id: u64,
}

impl Pool {
    /// Give `c` to the oldest request still waiting, or keep it idle.
    fn hand_over(&mut self, mut c: TcpStream) {
        while let Some((_, w)) = self.waiting.pop_front() {
            match w.send(c) {
                Ok(()) => return,
                Err(back) => c = back, // that request gave up
            }
        }
        self.idle.push((c, Instant::now()));
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
        let mut conn = self.checkout(deadline).await.map_err(Failure::NotSent)?;
        let left = deadline.saturating_sub(start.elapsed());
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
        self.pool.lock().expect("the pool's lock is never poisoned")
    }

    /// A connection to send on: an idle one that is still open, else whichever comes first
    /// of a new one (connected for this request) and one another request puts back, as
    /// hyper's pool does, so a burst opens no more connections than it needs. A connection
    /// this request opened and did not use goes to the next request or the pool.
    async fn checkout(&self, deadline: Duration) -> Result<TcpStream, String> {
        let (id, rx) = {
            let mut pool = self.lock();
            if let Some(c) = self.reuse(&mut pool) {
                return Ok(c);
            }
            let (tx, rx) = oneshot::channel();
            let id = pool.next_id;
            pool.next_id += 1;
            pool.waiting.push_back((id, tx));
            (id, rx)
        };
        let within = self.connect_timeout.min(deadline);
        let (err_tx, err_rx) = oneshot::channel();
        let (authority, pool) = (Arc::clone(&self.authority), Arc::clone(&self.pool));
        tokio::spawn(async move {
            let failed = match tokio::time::timeout(within, TcpStream::connect(&*authority)).await {
                Ok(Ok(c)) => {
                    let _ = c.set_nodelay(true);
                    pool.lock()
                        .expect("the pool's lock is never poisoned")
                        .hand_over(c);
                    return;
                }
                Ok(Err(e)) => format!("connect: {e}"),
                Err(_) => format!("connect timed out after {within:?}"),
            };
            // The failure is the request's that started this connect, if it still waits.
            let mut pool = pool.lock().expect("the pool's lock is never poisoned");
            if let Some(i) = pool.waiting.iter().position(|(w, _)| *w == id) {
                pool.waiting.remove(i);
                let _ = err_tx.send(failed);
            }
        });
        // A connect that succeeded drops its failure's sender: that branch is then disabled,
        // and the connection came (or comes) to the oldest waiting request. Every waiting
        // request started a connect, and each connect serves one, or fails its own: none
        // waits without a connect under way.
        tokio::select! {
            c = rx => c.map_err(|_| "the connection pool dropped a waiting request".to_string()),
            Ok(e) = err_rx => Err(e),
        }
    }

    /// An idle connection that is still open, if there is one: a server that closed it (a
    /// restarted replica, its keep-alive limit) has left an end of file to read.
    fn reuse(&self, pool: &mut Pool) -> Option<TcpStream> {
        while let Some((c, since)) = pool.idle.pop() {
            if since.elapsed() > self.idle_for {
                continue;
            }
            let mut probe = [0u8; 1];
            match c.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(c),
                // Closed, reset, or bytes nobody asked for: not a connection to send on.
                _ => continue,
            }
        }
        None
    }
}

/// Write `request` and read one answer. Returns it and whether the connection may carry
/// another request.
async fn exchange(c: &mut TcpStream, request: &[u8]) -> Result<(Answer, bool), String> {
    c.write_all(request)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let head = parse_head(&buf)?;
        if let Some(head) = head {
            return read_body(c, buf, head).await;
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
    let mut chunked = false;
    let mut close = r.version == Some(0);
    let mut retry_after = None;
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or_default().trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("a malformed content-length {v:?}"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after = v.parse::<u64>().ok();
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
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
        assert!(dechunk(b"2\r\nabcd\r\n", &mut Vec::new()).is_err());
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
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        match answers.next() {
                            Some([]) => {
                                // Close without an answer.
                                let _ = s.shutdown().await;
                                break;
                            }
                            Some(a) => s.write_all(a).await.unwrap(),
                            None => return connections,
                        }
                    }
                    if answers.len() == 0 {
                        return connections;
                    }
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
        assert!(matches!(
            c.send(GET, Duration::from_secs(1)).await,
            Err(Failure::NotSent(_))
        ));
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
}
