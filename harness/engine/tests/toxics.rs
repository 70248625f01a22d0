//! Each toxic's effect on real TCP connections through the embedded proxy, as Toxiproxy
//! defines it, plus per-connection toxicity.

use std::time::Duration;

use chaos_engine::proxy::{ProxyServer, ToxiproxyClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// An upstream that, for each connection, writes `payload`, then closes if `close`.
async fn talker(payload: Vec<u8>, close: bool) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let p = payload.clone();
            tokio::spawn(async move {
                let _ = s.write_all(&p).await;
                if close {
                    let _ = s.shutdown().await;
                } else {
                    let mut sink = Vec::new();
                    let _ = s.read_to_end(&mut sink).await;
                }
            });
        }
    });
    addr
}

async fn proxied(upstream: &str, toxic: Value) -> (ProxyServer, ToxiproxyClient, String) {
    let server = ProxyServer::start("127.0.0.1:0", 1).await.unwrap();
    let client = ToxiproxyClient::new(&server.url());
    let listen = client
        .create_proxy("p", "127.0.0.1:0", upstream)
        .await
        .unwrap()
        .listen;
    client.add_toxic("p", toxic).await.unwrap();
    (server, client, listen)
}

/// Read until EOF or error; returns the bytes, the read sizes, and how it ended.
async fn read_all(s: &mut TcpStream) -> (Vec<u8>, Vec<usize>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (got, sizes, Ok(())),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                sizes.push(n);
            }
            Err(e) => return (got, sizes, Err(e)),
        }
    }
}

#[tokio::test]
async fn bandwidth_limits_throughput() {
    let payload = vec![7u8; 50 * 1024];
    let up = talker(payload.clone(), true).await;
    let (_s, _c, listen) = proxied(
        &up,
        json!({ "type": "bandwidth", "attributes": { "rate": 100 } }),
    )
    .await;
    let start = Instant::now();
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let (got, _, end) = read_all(&mut s).await;
    end.unwrap();
    assert_eq!(got, payload);
    let took = start.elapsed();
    // 50 KiB at 100 KB/s is 0.51 s.
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[tokio::test]
async fn slicer_cuts_data_into_small_delayed_pieces() {
    let payload: Vec<u8> = (0..200u8).collect();
    let up = talker(payload.clone(), true).await;
    let toxic = json!({ "type": "slicer", "attributes": { "average_size": 10, "size_variation": 3, "delay": 2000 } });
    let (_s, _c, listen) = proxied(&up, toxic).await;
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let start = Instant::now();
    let (got, sizes, end) = read_all(&mut s).await;
    end.unwrap();
    assert_eq!(got, payload, "slices must reassemble to the original");
    assert!(
        sizes.len() >= 10,
        "expected many small reads, got {sizes:?}"
    );
    assert!(
        sizes.iter().all(|&n| n <= 13 * 2),
        "slices larger than average + variation: {sizes:?}"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "2 ms between ~17 slices"
    );
}

#[tokio::test]
async fn slow_close_delays_the_close_but_not_the_data() {
    let up = talker(b"bye".to_vec(), true).await;
    let (_s, _c, listen) = proxied(
        &up,
        json!({ "type": "slow_close", "attributes": { "delay": 300 } }),
    )
    .await;
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let start = Instant::now();
    let mut b = [0u8; 3];
    s.read_exact(&mut b).await.unwrap();
    let data_at = start.elapsed();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let closed_at = start.elapsed();
    assert!(
        data_at < Duration::from_millis(200),
        "data waited {data_at:?}"
    );
    assert!(
        closed_at >= Duration::from_millis(300),
        "closed after only {closed_at:?}"
    );
}

#[tokio::test]
async fn timeout_holds_data_and_closes_after_the_timeout() {
    let up = talker(b"never seen".to_vec(), false).await;
    let (_s, _c, listen) = proxied(
        &up,
        json!({ "type": "timeout", "attributes": { "timeout": 200 } }),
    )
    .await;
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let start = Instant::now();
    let (got, _, _) = read_all(&mut s).await;
    assert!(
        got.is_empty(),
        "a timeout toxic lets nothing through: {got:?}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn timeout_zero_holds_data_until_the_toxic_is_removed() {
    let up = talker(b"held".to_vec(), false).await;
    let (_s, client, listen) = proxied(
        &up,
        json!({ "name": "t", "type": "timeout", "attributes": { "timeout": 0 } }),
    )
    .await;
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let mut b = [0u8; 4];
    let early = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut b)).await;
    assert!(
        early.is_err(),
        "nothing may pass while the toxic is in place"
    );
    client.remove_toxic("p", "t").await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &b, b"held",
        "held data is delivered, not dropped, once the toxic goes"
    );
}

#[tokio::test]
async fn reset_peer_is_seen_as_a_tcp_reset() {
    let up = talker(b"data".to_vec(), false).await;
    let (_s, _c, listen) = proxied(
        &up,
        json!({ "type": "reset_peer", "attributes": { "timeout": 50 } }),
    )
    .await;
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let (_, _, end) = read_all(&mut s).await;
    let err = end.expect_err("the connection must end in an error, not a clean EOF");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test]
async fn limit_data_closes_after_exactly_the_limit() {
    let up = talker(vec![1u8; 100], false).await;
    let (_s, _c, listen) = proxied(
        &up,
        json!({ "type": "limit_data", "attributes": { "bytes": 10 } }),
    )
    .await;
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let (got, _, _) = tokio::time::timeout(Duration::from_secs(2), read_all(&mut s))
        .await
        .unwrap();
    assert_eq!(got.len(), 10);
}

#[tokio::test]
async fn toxicity_is_decided_per_connection() {
    let up = talker(b"x".to_vec(), false).await;
    let toxic = json!({ "type": "latency", "toxicity": 0.5, "attributes": { "latency": 200 } });
    let (_s, _c, listen) = proxied(&up, toxic).await;
    let mut slow = 0;
    for _ in 0..24 {
        let mut s = TcpStream::connect(&listen).await.unwrap();
        let start = Instant::now();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        if start.elapsed() >= Duration::from_millis(150) {
            slow += 1;
        }
    }
    assert!(
        (3..=21).contains(&slow),
        "{slow} of 24 connections got the toxic at toxicity 0.5"
    );
    let up0 = talker(b"x".to_vec(), false).await;
    let (_s0, _c0, listen0) = proxied(
        &up0,
        json!({ "type": "latency", "toxicity": 0.0, "attributes": { "latency": 1000 } }),
    )
    .await;
    let mut s = TcpStream::connect(&listen0).await.unwrap();
    let start = Instant::now();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "toxicity 0 never applies"
    );
}

#[tokio::test]
async fn upstream_toxics_act_on_client_to_server_bytes() {
    // An echo server; 200 ms upstream latency delays the round trip by about 200 ms.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let (_s, _c, listen) = proxied(
        &up,
        json!({ "type": "latency", "stream": "upstream", "attributes": { "latency": 200 } }),
    )
    .await;
    let mut s = TcpStream::connect(&listen).await.unwrap();
    let start = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    let rtt = start.elapsed();
    assert!(
        rtt >= Duration::from_millis(200) && rtt < Duration::from_millis(400),
        "{rtt:?}"
    );
}
