//! The embedded toxic proxy through its Toxiproxy HTTP API: forwarding, latency from each
//! chunk's arrival, toxic changes under traffic, enable/disable, and the API's errors.

use std::time::Duration;

use chaos_engine::proxy::{ProxyServer, ToxiproxyClient};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// An upstream that echoes every byte back.
async fn echo_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn proxy_to(upstream: &str) -> (ProxyServer, ToxiproxyClient, String) {
    let server = ProxyServer::start("127.0.0.1:0", 7).await.unwrap();
    let client = ToxiproxyClient::new(&server.url());
    let info = client
        .create_proxy("p", "127.0.0.1:0", upstream)
        .await
        .unwrap();
    assert!(
        !info.listen.ends_with(":0"),
        "port 0 must be reported as the port bound: {}",
        info.listen
    );
    (server, client, info.listen)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Write `data` and read back as many bytes, concurrently.
async fn echo_through(listen: &str, data: &[u8]) -> Vec<u8> {
    echo_in_writes_of(listen, data, 7_919).await
}

/// Send `data` through the proxy in writes of `size` bytes and read back what returns.
async fn echo_in_writes_of(listen: &str, data: &[u8], size: usize) -> Vec<u8> {
    let s = TcpStream::connect(listen).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let to_send = data.to_vec();
    let writer = tokio::spawn(async move {
        for chunk in to_send.chunks(size) {
            w.write_all(chunk).await.unwrap();
        }
        w
    });
    let mut got = vec![0u8; data.len()];
    r.read_exact(&mut got).await.unwrap();
    drop(writer.await.unwrap());
    got
}

#[tokio::test]
async fn bytes_flow_both_ways_unchanged() {
    let (_server, _client, listen) = proxy_to(&echo_server().await).await;
    let data = pattern(1 << 20);
    assert!(
        echo_through(&listen, &data).await == data,
        "1 MiB came back changed"
    );
}

#[tokio::test]
async fn latency_counts_from_each_chunks_arrival_not_cumulatively() {
    // Upstream: five one-byte writes 10 ms apart, stamped when sent.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = l.local_addr().unwrap().to_string();
    let (_server, client, listen) = proxy_to(&upstream).await;
    client
        .add_toxic(
            "p",
            json!({ "type": "latency", "attributes": { "latency": 100 } }),
        )
        .await
        .unwrap();
    let sender = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut sent = Vec::new();
        for i in 0..5u8 {
            sent.push(Instant::now());
            s.write_all(&[i]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (s, sent)
    });
    let mut c = TcpStream::connect(&listen).await.unwrap();
    let mut arrived = Vec::new();
    let mut b = [0u8; 1];
    for _ in 0..5 {
        c.read_exact(&mut b).await.unwrap();
        arrived.push(Instant::now());
    }
    let (_s, sent) = sender.await.unwrap();
    for i in 0..5 {
        let d = arrived[i] - sent[i];
        assert!(
            d >= Duration::from_millis(100) && d < Duration::from_millis(250),
            "chunk {i} took {d:?}; expected about 100ms from its own arrival"
        );
    }
}

#[tokio::test]
async fn removing_a_toxic_releases_held_bytes_at_once_and_loses_none() {
    let (_server, client, listen) = proxy_to(&echo_server().await).await;
    client
        .add_toxic("p", json!({ "name": "slow", "type": "latency", "stream": "downstream", "attributes": { "latency": 5000 } }))
        .await
        .unwrap();
    let mut c = TcpStream::connect(&listen).await.unwrap();
    c.write_all(b"held").await.unwrap();
    let start = Instant::now();
    let remover = {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.remove_toxic("p", "slow").await.unwrap();
        })
    };
    let mut got = [0u8; 4];
    c.read_exact(&mut got).await.unwrap();
    remover.await.unwrap();
    assert_eq!(&got, b"held");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "held bytes waited {:?} after the toxic was removed",
        start.elapsed()
    );
}

#[tokio::test]
async fn toxic_churn_under_traffic_never_loses_duplicates_or_reorders_a_byte() {
    let (_server, client, listen) = proxy_to(&echo_server().await).await;
    let data = pattern(2 << 20);
    let churn = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..30u64 {
                let stream = if i % 2 == 0 { "upstream" } else { "downstream" };
                let name = format!("t{i}");
                client
                    .add_toxic(
                        "p",
                        json!({ "name": name, "type": "latency", "stream": stream,
                                            "attributes": { "latency": i % 3, "jitter": i % 2 } }),
                    )
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                if i % 3 == 0 {
                    client.remove_toxic("p", &name).await.unwrap();
                }
            }
        })
    };
    let got = echo_through(&listen, &data).await;
    churn.await.unwrap();
    assert!(got == data, "bytes changed under toxic churn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_spliced_while_toxics_come_and_go_keeps_every_byte_in_order() {
    // Writes of 256 KiB fill the proxy's read buffer, so bytes move by splice(2) through
    // its pipes; toxics on both streams come and go meanwhile, handing over between
    // splicing and the toxic writer with bytes held in the pipe.
    let (_server, client, listen) = proxy_to(&echo_server().await).await;
    let data = pattern(48 << 20);
    let churn = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..40u64 {
                let stream = if i % 2 == 0 { "upstream" } else { "downstream" };
                let name = format!("b{i}");
                client
                    .add_toxic(
                        "p",
                        json!({ "name": name, "type": "latency", "stream": stream,
                                "attributes": { "latency": 0 } }),
                    )
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                client.remove_toxic("p", &name).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let got = echo_in_writes_of(&listen, &data, 256 << 10).await;
    churn.await.unwrap();
    assert!(got == data, "bulk bytes changed under toxic churn");
}

#[tokio::test]
async fn disabling_closes_connections_and_refuses_new_ones_until_enabled() {
    let (_server, client, listen) = proxy_to(&echo_server().await).await;
    let mut c = TcpStream::connect(&listen).await.unwrap();
    c.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).await.unwrap();

    client.set_enabled("p", false).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the open connection must be closed: {closed:?}"
    );
    assert!(
        TcpStream::connect(&listen).await.is_err(),
        "a disabled proxy must refuse connections"
    );
    assert!(!client.proxy("p").await.unwrap().enabled);

    client.set_enabled("p", true).await.unwrap();
    assert_eq!(echo_through(&listen, b"again").await, b"again");
}

#[tokio::test]
async fn the_api_answers_toxiproxy_status_codes_and_reset_clears_everything() {
    let upstream = echo_server().await;
    let (server, client, _listen) = proxy_to(&upstream).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = |p: &str| format!("{}{p}", server.url());
    let status = |r: reqwest::Response| r.status().as_u16();

    let r = http.get(url("/proxies/nope")).send().await.unwrap();
    assert_eq!(status(r), 404);
    let dup = json!({ "name": "p", "listen": "127.0.0.1:0", "upstream": upstream });
    assert_eq!(
        status(http.post(url("/proxies")).json(&dup).send().await.unwrap()),
        409
    );
    let bad = http
        .post(url("/proxies/p/toxics"))
        .json(&json!({ "type": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid toxic type"),
        "{body}"
    );
    assert_eq!(body["status"], 400);
    assert_eq!(
        status(
            http.post(url("/proxies"))
                .body("{not json")
                .send()
                .await
                .unwrap()
        ),
        400
    );
    assert_eq!(
        status(
            http.delete(url("/proxies/p/toxics/none"))
                .send()
                .await
                .unwrap()
        ),
        404
    );

    let t = client
        .add_toxic(
            "p",
            json!({ "type": "latency", "attributes": { "latency": 10 } }),
        )
        .await
        .unwrap();
    assert_eq!(t["name"], "latency_downstream");
    assert_eq!(
        status(
            http.post(url("/proxies/p/toxics"))
                .json(&json!({ "type": "latency" }))
                .send()
                .await
                .unwrap()
        ),
        409
    );
    client.set_enabled("p", false).await.unwrap();
    client.reset().await.unwrap();
    let p = client.proxy("p").await.unwrap();
    assert!(
        p.enabled && p.toxics.is_empty(),
        "reset re-enables and removes toxics: {p:?}"
    );
    let version = client.version().await.unwrap();
    assert!(version["version"].is_string());
}

#[tokio::test]
async fn updating_a_proxy_moves_its_upstream_and_listen_address() {
    let first = echo_server().await;
    let (server, client, listen) = proxy_to(&first).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/proxies/p", server.url());

    // A new upstream applies to new connections.
    let second = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second_addr = second.local_addr().unwrap().to_string();
    let r = http
        .post(&url)
        .json(&json!({ "upstream": second_addr }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _c = TcpStream::connect(&listen).await.unwrap();
    let accepted = tokio::time::timeout(Duration::from_secs(2), second.accept()).await;
    assert!(
        accepted.is_ok(),
        "the new upstream must get the next connection"
    );

    // A new listen address; port 0 is resolved and reported.
    let r: serde_json::Value = http
        .post(&url)
        .json(&json!({ "listen": "127.0.0.1:0", "upstream": first }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let moved = r["listen"].as_str().unwrap().to_string();
    assert_ne!(moved, listen);
    assert!(!moved.ends_with(":0"));
    assert_eq!(echo_through(&moved, b"moved").await, b"moved");
    assert!(
        TcpStream::connect(&listen).await.is_err(),
        "the old address is released"
    );

    // Bad input: 400 with a message, and nothing changes.
    let before = client.proxy("p").await.unwrap();
    let r = http
        .post(&url)
        .json(&json!({ "listen": "not an address" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(!body["error"].as_str().unwrap().is_empty());
    let r = http
        .post(&url)
        .body("{\"enabled\": \"yes\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        client.proxy("p").await.unwrap(),
        before,
        "a refused update changes nothing"
    );
}

#[tokio::test]
async fn populate_creates_and_updates_and_delete_removes() {
    let upstream = echo_server().await;
    let server = ProxyServer::start("127.0.0.1:0", 0).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = json!([
        { "name": "a", "listen": "127.0.0.1:0", "upstream": upstream },
        { "name": "b", "listen": "127.0.0.1:0", "upstream": upstream, "enabled": false },
    ]);
    let r = http
        .post(format!("{}/populate", server.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["proxies"].as_array().unwrap().len(), 2);
    assert_eq!(v["proxies"][1]["enabled"], false);
    // Populating again with b enabled updates it in place.
    let body = json!([{ "name": "b", "upstream": upstream, "enabled": true }]);
    let v: serde_json::Value = http
        .post(format!("{}/populate", server.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["proxies"][0]["enabled"], true);
    let all: serde_json::Value = http
        .get(format!("{}/proxies", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_object().unwrap().len(), 2);
    let r = http
        .delete(format!("{}/proxies/a", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = http
        .get(format!("{}/proxies/a", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
