//! Property: whatever sequence of toxic additions, updates and removals happens while bytes
//! stream through a proxy, exactly the bytes sent arrive, in order (toxics that end the
//! connection by design, such as limit_data, are left out).

use std::time::Duration;

use chaos_engine::proxy::{ProxyServer, ToxiproxyClient};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
enum Op {
    Add { slot: u8, toxic: Value },
    Update { slot: u8, attributes: Value },
    Remove { slot: u8 },
    Pause { ms: u8 },
}

fn toxic() -> impl Strategy<Value = Value> {
    let stream = prop_oneof![Just("upstream"), Just("downstream")];
    let kind = prop_oneof![
        (0u64..4, 0u64..3).prop_map(|(l, j)| json!({ "type": "latency", "attributes": { "latency": l, "jitter": j.min(l) } })),
        (200u64..5000).prop_map(|r| json!({ "type": "bandwidth", "attributes": { "rate": r } })),
        (2u64..400, 0u64..2, 0u64..200).prop_map(|(a, v, d)| json!({ "type": "slicer",
            "attributes": { "average_size": a, "size_variation": v.min(a - 1), "delay": d } })),
        (0u64..5).prop_map(|d| json!({ "type": "slow_close", "attributes": { "delay": d } })),
        Just(json!({ "type": "timeout", "attributes": { "timeout": 0 } })),
    ];
    (kind, stream, 0.0f32..=1.0).prop_map(|(mut k, s, t)| {
        k["stream"] = json!(s);
        k["toxicity"] = json!(t);
        k
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, toxic()).prop_map(|(slot, toxic)| Op::Add { slot, toxic }),
        1 => (0u8..4, 0u64..3).prop_map(|(slot, l)| Op::Update { slot, attributes: json!({ "latency": l }) }),
        2 => (0u8..4).prop_map(|slot| Op::Remove { slot }),
        2 => (0u8..20).prop_map(|ms| Op::Pause { ms }),
    ]
}

async fn echo_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Apply the ops; failures the API reports for ops that do not fit the current state
/// (removing a toxic that is not there) are part of the sequence, not of the test.
async fn apply(client: &ToxiproxyClient, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Add { slot, toxic } => {
                let mut t = toxic.clone();
                t["name"] = json!(format!("t{slot}"));
                let _ = client.add_toxic("p", t).await;
            }
            Op::Update { slot, attributes } => {
                // Only latency toxics take a latency attribute; others answer 400.
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                let _ = http
                    .post(format!("{}/proxies/p/toxics/t{slot}", client.base()))
                    .json(&json!({ "attributes": attributes }))
                    .send()
                    .await;
            }
            Op::Remove { slot } => {
                let _ = client.remove_toxic("p", &format!("t{slot}")).await;
            }
            Op::Pause { ms } => tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await,
        }
    }
    // Whatever is held (a timeout toxic) must flow once the toxics are gone.
    for slot in 0..4 {
        let _ = client.remove_toxic("p", &format!("t{slot}")).await;
    }
}

async fn case(data: Vec<u8>, writes: Vec<(usize, u8)>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let server = ProxyServer::start("127.0.0.1:0", 3).await.unwrap();
    let client = ToxiproxyClient::new(&server.url());
    let listen = client
        .create_proxy("p", "127.0.0.1:0", &echo_server().await)
        .await
        .unwrap()
        .listen;
    let stream = TcpStream::connect(&listen).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let to_send = data.clone();
    let writer = tokio::spawn(async move {
        let mut rest = &to_send[..];
        let mut sizes = writes.iter().cycle();
        while !rest.is_empty() {
            // Paced, so that toxic changes land while bytes are in flight.
            let &(n, pause_ms) = sizes.next().unwrap();
            let n = n.clamp(1, rest.len());
            w.write_all(&rest[..n]).await.unwrap();
            rest = &rest[n..];
            tokio::time::sleep(Duration::from_millis(u64::from(pause_ms))).await;
        }
        w.shutdown().await.unwrap();
    });
    let toxics = apply(&client, &ops);
    let mut got = Vec::new();
    let reader = tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut got));
    let (read, ()) = tokio::join!(reader, toxics);
    writer.await.unwrap();
    prop_assert!(read.is_ok(), "the stream did not finish within 30 s");
    prop_assert_eq!(got.len(), data.len(), "byte count differs");
    prop_assert!(got == data, "bytes differ or are out of order");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn toxic_changes_never_lose_duplicate_or_reorder_bytes(
        data in proptest::collection::vec(any::<u8>(), 1..100_000),
        writes in proptest::collection::vec((1usize..8_000, 0u8..4), 1..8),
        ops in proptest::collection::vec(op(), 0..24),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(case(data, writes, ops))?;
    }
}
