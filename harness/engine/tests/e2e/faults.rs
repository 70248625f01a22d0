//! Every kind of fault, injected into a real local environment, takes effect, and its heal
//! undoes it: a paused Redis answers nothing, a killed one refuses, a stopped replica is
//! gone and comes back at its address, a held table lock blocks, a reset_peer resets, a cut
//! link refuses, a stub's knobs are set, a killed stub keeps its call log.

use std::time::{Duration, Instant};

use chaos_engine::env::{Env, EnvConfig};
use chaos_engine::fault;
use chaos_model::{
    Dur, FaultKind, LockMode, Node, Profile, Service, Signal, Stream, StubKnobs, TableLock, Toxic,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const D: Dur = Dur(Duration::from_secs(1));

fn process(signal: Signal, node: impl Into<Node>) -> FaultKind {
    FaultKind::Process {
        signal,
        node: node.into(),
        duration: D,
    }
}

fn toxic(service: Service, toxic: Toxic) -> FaultKind {
    FaultKind::Toxic {
        service,
        toxic,
        duration: D,
    }
}

/// What a Redis PING at `addr` came to within 500 ms.
#[derive(Debug, PartialEq)]
enum Ping {
    Pong,
    Silent,
    Refused,
    /// Closed or reset before a full answer.
    Cut(String),
}

async fn ping(addr: &str) -> Ping {
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => return Ping::Refused,
    };
    if let Err(e) = s.write_all(b"PING\r\n").await {
        return Ping::Cut(e.to_string());
    }
    let mut buf = [0u8; 7];
    match tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut buf)).await {
        Err(_) => Ping::Silent,
        Ok(Ok(_)) if &buf == b"+PONG\r\n" => Ping::Pong,
        Ok(Ok(_)) => Ping::Cut(format!("answered {buf:?}")),
        Ok(Err(e)) => Ping::Cut(format!("{:?}: {e}", e.kind())),
    }
}

async fn inject_heal<F, Fut>(env: &Env, i: usize, kind: FaultKind, during: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let injected = fault::inject(env, i, &kind)
        .await
        .unwrap_or_else(|e| panic!("inject {kind:?}: {e}"));
    during().await;
    fault::heal(env, injected)
        .await
        .unwrap_or_else(|e| panic!("heal {kind:?}: {e}"));
}

async fn sql(conninfo: &str, query: &str) -> Result<(), String> {
    let (client, conn) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio_postgres::connect(conninfo, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("{e:?}"))?;
    let task = tokio::spawn(conn);
    let r = tokio::time::timeout(Duration::from_secs(2), client.batch_execute(query))
        .await
        .map_err(|_| "query timed out".to_string())
        .and_then(|r| {
            r.map_err(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            })
        });
    drop(client);
    task.abort();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_takes_effect_against_real_servers() {
    let cfg = EnvConfig {
        run_id: format!("engine-faults-{}", std::process::id()),
        profile: Profile::Hardened,
        replicas: 2,
        providers: 2,
        patients: 4,
        seed: 9,
        options: chaos_model::TargetOptions::default(),
        keep_dir: false,
        kind: chaos_model::EnvKind::Local,
        images: chaos_engine::env::docker::images::Build::Never,
    };
    let env = Env::start(&cfg, &|_m: String| {})
        .await
        .unwrap_or_else(|e| panic!("environment: {e}"));
    let ep = env.endpoints().clone();
    let redis_direct = ep.direct["redis"].clone();
    let redis_proxy = ep.services["redis"].clone();
    let pg = ep.postgres_direct.clone();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert_eq!(ping(&redis_direct).await, Ping::Pong);

    // pause: Redis keeps its socket and answers nothing; resumed, it answers.
    inject_heal(&env, 0, process(Signal::Pause, Service::Redis), || async {
        assert_eq!(ping(&redis_direct).await, Ping::Silent);
    })
    .await;
    assert_eq!(ping(&redis_direct).await, Ping::Pong);

    // kill: refused; restarted on the same port.
    inject_heal(&env, 1, process(Signal::Kill, Service::Redis), || async {
        assert_eq!(ping(&redis_direct).await, Ping::Refused);
    })
    .await;
    assert_eq!(ping(&redis_direct).await, Ping::Pong);

    // stop a replica: gone (gracefully), back at the same address.
    let replica2 = format!("{}/health/liveness", ep.target[1]);
    inject_heal(&env, 2, process(Signal::Stop, Node::Replica(2)), || async {
        assert!(
            http.get(&replica2).send().await.is_err(),
            "mediconnect-2 still answers"
        );
        let one = http
            .get(format!("{}/health/liveness", ep.target[0]))
            .send()
            .await;
        assert!(
            one.is_ok_and(|r| r.status().is_success()),
            "mediconnect-1 must be untouched"
        );
    })
    .await;
    assert!(
        http.get(&replica2)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // kill a stub: its call log survives the restart (journal).
    let twilio_api = format!(
        "http://{}/2010-04-01/Accounts/AC1/Messages.json",
        ep.direct["twilio"]
    );
    let sent = http
        .post(&twilio_api)
        .form(&[
            ("To", "+15551"),
            ("From", "+15550"),
            ("Body", "before the kill"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 201);
    let calls_url = format!("{}/calls", ep.stubs["twilio"]);
    inject_heal(&env, 3, process(Signal::Kill, Service::Twilio), || async {
        assert!(http.get(&calls_url).send().await.is_err());
    })
    .await;
    let calls: Vec<chaos_model::StubCall> = http
        .get(&calls_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.body["Body"] == "before the kill" && c.took_effect()),
        "the call before the kill is still in the log: {calls:?}"
    );

    // knobs: set while in force, reset by the heal.
    let knobs_url = format!("{}/knobs", ep.stubs["sendgrid"]);
    let knobs = StubKnobs {
        error_rate: Some(1.0),
        error_status: Some(429),
        retry_after_s: Some(7),
        ..StubKnobs::default()
    };
    let kind = FaultKind::Knobs {
        service: Service::Sendgrid,
        knobs,
        duration: D,
    };
    inject_heal(&env, 4, kind, || async {
        let k: serde_json::Value = http
            .get(&knobs_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (k["error_status"].as_u64(), k["retry_after_s"].as_u64()),
            (Some(429), Some(7)),
            "{k}"
        );
    })
    .await;
    let k: serde_json::Value = http
        .get(&knobs_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(k["error_rate"].as_f64(), Some(0.0), "{k}");

    // postgres_lock: a query on the table blocks behind the harness's lock, then passes.
    let lock = FaultKind::PostgresLock {
        lock: TableLock {
            table: "appointments".into(),
            mode: LockMode::AccessExclusive,
        },
        duration: D,
    };
    let probe = "SET statement_timeout = '300ms'; SELECT count(*) FROM appointments";
    inject_heal(&env, 5, lock, || async {
        let e = sql(&pg, probe).await.unwrap_err();
        assert!(e.contains("statement timeout"), "blocked by the lock: {e}");
        sql(
            &pg,
            "SET statement_timeout = '300ms'; SELECT count(*) FROM providers",
        )
        .await
        .expect("other tables are free");
    })
    .await;
    sql(&pg, probe)
        .await
        .expect("the lock is released by the heal");

    // pause postgres: a query hangs; resumed, it answers.
    inject_heal(
        &env,
        6,
        process(Signal::Pause, Service::Postgres),
        || async {
            assert!(sql(&pg, "SELECT 1").await.is_err());
        },
    )
    .await;
    sql(&pg, "SELECT 1").await.unwrap();

    // stop postgres (a fast, graceful shutdown) and start it again on the same data.
    inject_heal(
        &env,
        7,
        process(Signal::Stop, Service::Postgres),
        || async {
            assert!(sql(&pg, "SELECT 1").await.is_err());
        },
    )
    .await;
    sql(&pg, "SELECT count(*) FROM appointments").await.unwrap();

    // Toxics on the proxy: reset_peer resets, timeout holds, latency delays, limit_data
    // closes, down refuses.
    assert_eq!(ping(&redis_proxy).await, Ping::Pong);
    let reset = Toxic::ResetPeer {
        timeout: Dur::ZERO,
        stream: Stream::Upstream,
        toxicity: 1.0,
    };
    inject_heal(&env, 8, toxic(Service::Redis, reset), || async {
        match ping(&redis_proxy).await {
            Ping::Cut(e) => assert!(e.contains("ConnectionReset") || e.contains("reset"), "{e}"),
            other => panic!("reset_peer must reset, got {other:?}"),
        }
    })
    .await;
    assert_eq!(ping(&redis_proxy).await, Ping::Pong);
    let hold = Toxic::Timeout {
        timeout: Dur::ZERO,
        stream: Stream::Downstream,
        toxicity: 1.0,
    };
    inject_heal(&env, 9, toxic(Service::Redis, hold), || async {
        assert_eq!(ping(&redis_proxy).await, Ping::Silent);
    })
    .await;
    let slow = Toxic::Latency {
        latency: Dur::from_millis(200),
        jitter: Dur::ZERO,
        stream: Stream::Downstream,
        toxicity: 1.0,
    };
    inject_heal(&env, 10, toxic(Service::Redis, slow), || async {
        let t = Instant::now();
        assert_eq!(ping(&redis_proxy).await, Ping::Pong);
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
    })
    .await;
    let limit = Toxic::LimitData {
        bytes: 3,
        stream: Stream::Downstream,
        toxicity: 1.0,
    };
    inject_heal(&env, 11, toxic(Service::Redis, limit), || async {
        assert!(matches!(ping(&redis_proxy).await, Ping::Cut(_)));
    })
    .await;
    let down = FaultKind::Down {
        service: Service::Redis,
        duration: D,
    };
    inject_heal(&env, 12, down, || async {
        assert!(matches!(
            ping(&redis_proxy).await,
            Ping::Refused | Ping::Cut(_)
        ));
    })
    .await;
    assert_eq!(ping(&redis_proxy).await, Ping::Pong);

    // A fault on something that is not running is an error, not a panic.
    let gone = fault::inject(&env, 13, &process(Signal::Kill, Node::Replica(3))).await;
    assert!(gone.is_err_and(|e| e.to_string().contains("mediconnect-3")));
    env.shutdown().await;
}
