//! The docker environment against real containers (the `docker` tier): every container
//! fault takes effect and heals, a partition cuts the target off a dependency while the
//! proxy stays up, a restarted database keeps its volume's data, the broker boots from its
//! code volumes read-only (kept after the run, pruned with earlier inputs, filled again
//! when incomplete), and shutdown
//! leaves no container, network or volume of the run behind. Needs the Docker engine; the images are built on
//! demand (`chaos images build`). Build the binaries first (`just test` does).

use std::time::Duration;

use chaos_engine::env::docker::{
    images::{self, Build},
    reap,
};
use chaos_engine::env::{Env, EnvConfig};
use chaos_model::{EnvKind, Node, Profile, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(tag: &str) -> Env {
    let cfg = EnvConfig {
        run_id: format!("docker-{tag}-{}", std::process::id()),
        profile: Profile::Hardened,
        replicas: 1,
        providers: 2,
        patients: 4,
        seed: 3,
        options: chaos_model::TargetOptions::default(),
        keep_dir: false,
        kind: EnvKind::Docker,
        images: Build::IfMissing,
    };
    Env::start(&cfg, &|m: String| eprintln!("{tag}: {m}"))
        .await
        .unwrap_or_else(|e| panic!("the docker environment starts (is the engine up?): {e}"))
}

/// A Redis PING at `addr` answered +PONG within 500 ms.
async fn pong(addr: &str) -> bool {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
    else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"+PONG\r\n"
    )
}

/// Whether `cond` holds within `limit`, asked every 50 ms: waiting for a state the fault
/// brings about, not sleeping in its place.
async fn within<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(http: &reqwest::Client, url: &str) -> Option<u16> {
    http.get(url).send().await.ok().map(|r| r.status().as_u16())
}

async fn sql(
    conninfo: &str,
    query: &str,
) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, String> {
    let (client, conn) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_postgres::connect(conninfo, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let task = tokio::spawn(conn);
    let r = client.simple_query(query).await.map_err(|e| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string())
    });
    drop(client);
    task.abort();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_faults_take_effect_heal_and_leave_nothing() {
    let env = start("faults").await;
    let run_id = env.run_id().to_string();
    let ep = env.endpoints().clone();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let redis = ep.direct["redis"].clone();
    let ready = format!("{}/health/readiness", ep.target[0]);
    assert!(pong(&redis).await, "redis answers at {redis}");
    assert_eq!(status(&http, &ready).await, Some(200));

    // The broker booted from the code volumes, mounted read-only: no run changes them.
    let docker = reap::connect().await.unwrap();
    let code = images::wanted().unwrap().code_volumes();
    let rabbit = docker
        .inspect_container(&format!("chaos-{run_id}-rabbitmq"), None)
        .await
        .unwrap();
    let mounts = rabbit.mounts.unwrap_or_default();
    for (volume, dir) in &code {
        let m = mounts
            .iter()
            .find(|m| m.name.as_deref() == Some(volume.as_str()))
            .unwrap_or_else(|| panic!("{volume} is mounted on the broker: {mounts:?}"));
        assert_eq!(m.destination.as_deref(), Some(*dir));
        assert_eq!(m.rw, Some(false), "{volume} is mounted read-only");
    }

    // pause: the cgroup freezer; Redis holds its socket and answers nothing; unpaused, it does.
    env.pause(Service::Redis).await.unwrap();
    assert!(!pong(&redis).await, "a paused redis answers nothing");
    env.resume(Service::Redis).await.unwrap();
    assert!(pong(&redis).await, "a resumed redis answers");

    // kill, then start again with the volume kept: the database's data survives. (The
    // checkpoint writes it out: the servers run with synchronous_commit off, as on local,
    // so a commit of the last moments before a SIGKILL may be lost by design.)
    let pg = ep.postgres_direct.clone();
    sql(
        &pg,
        "CREATE TABLE durable (v text); INSERT INTO durable VALUES ('kept')",
    )
    .await
    .unwrap();
    sql(&pg, "CHECKPOINT").await.unwrap();
    env.kill(Service::Postgres).await.unwrap();
    assert!(
        sql(&pg, "SELECT 1").await.is_err(),
        "a killed postgres refuses"
    );
    env.restart(Service::Postgres).await.unwrap();
    let rows = sql(&pg, "SELECT v FROM durable").await.unwrap();
    let kept = rows.iter().any(
        |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("kept")),
    );
    assert!(
        kept,
        "the row written before the kill is there after the restart"
    );

    // stop: a graceful stop (tini forwards SIGTERM); back at the same address.
    let live = format!("{}/health/liveness", ep.target[0]);
    assert!(
        env.stop(Node::Replica(1)).await.unwrap(),
        "the replica exits on SIGTERM"
    );
    assert_eq!(
        status(&http, &live).await,
        None,
        "a stopped replica answers nothing"
    );
    env.restart(Node::Replica(1)).await.unwrap();
    assert_eq!(status(&http, &live).await, Some(200));
    assert!(
        within(Duration::from_secs(10), || async {
            status(&http, &ready).await == Some(200)
        })
        .await,
        "the restarted replica becomes ready"
    );

    // partition: PostgreSQL leaves the network. The proxy stays up and keeps its link
    // enabled, yet the target loses the database: its readiness says so.
    env.partition(Service::Postgres).await.unwrap();
    let proxy = env.proxy_client().proxy("postgres").await.unwrap();
    assert!(
        proxy.enabled,
        "the proxy's link is untouched by a partition"
    );
    assert!(
        env.proxy_client().version().await.is_ok(),
        "the proxy answers"
    );
    assert!(
        within(Duration::from_secs(10), || async {
            status(&http, &ready).await == Some(503)
        })
        .await,
        "a replica cut off from its database is not ready"
    );
    assert!(
        sql(&pg, "SELECT 1").await.is_err(),
        "a partitioned postgres is not reachable on its mapped port either"
    );
    env.reconnect(Service::Postgres).await.unwrap();
    assert!(
        within(Duration::from_secs(20), || async {
            status(&http, &ready).await == Some(200)
        })
        .await,
        "reconnected, the replica is ready again"
    );
    assert!(
        sql(&pg, "SELECT 1").await.is_ok(),
        "reconnected, postgres answers on the same mapped port"
    );
    // Through the proxy's published port, as the target reaches it on the network.
    assert!(
        pong(&ep.services["redis"]).await,
        "redis answers through its proxy"
    );

    let dir = std::env::temp_dir().join(format!("chaos-docker-logs-{}", std::process::id()));
    env.copy_logs(&dir).await.unwrap();
    for node in [
        "postgres",
        "redis",
        "rabbitmq",
        "proxy",
        "mediconnect-1",
        "twilio",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{node}.log"))).unwrap_or_default();
        assert!(!text.is_empty(), "{node}.log holds the container's output");
    }
    let _ = std::fs::remove_dir_all(&dir);

    env.shutdown().await;
    let left = reap::resources_of_run(&docker, &run_id).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    for (volume, _) in &code {
        assert!(
            images::volume_exists(volume).await.unwrap(),
            "{volume} holds code, not the run's state: it stays for the next run"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_the_images_removes_code_volumes_of_earlier_inputs() {
    let docker = reap::connect().await.unwrap();
    let code_repo = format!(
        "{}-code",
        std::env::var("CHAOS_IMAGE_PREFIX").unwrap_or_else(|_| "chaos".into())
    );
    // A code volume of other inputs (its tag is no hash of today's), and a volume whose
    // name only looks like one: not a tag after the prefix, so not the prune's to remove.
    let old = format!("{code_repo}-{:016x}-erlang", std::process::id());
    let old_marker = format!("{code_repo}-{:016x}-ready", std::process::id());
    let other = format!("{code_repo}-x{}-erlang", std::process::id());
    for name in [&old, &old_marker, &other] {
        docker
            .create_volume(testcontainers::bollard::models::VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some([("chaos.code".to_string(), "old".to_string())].into()),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let built = images::ensure(Build::Command, &|m: String| eprintln!("build: {m}"))
        .await
        .unwrap();
    for name in [&old, &old_marker] {
        assert!(
            !images::volume_exists(name).await.unwrap(),
            "{name} is removed"
        );
    }
    assert!(
        images::volume_exists(&other).await.unwrap(),
        "{other} is no code volume's name: it stays"
    );
    assert!(images::volume_exists(&built.code_marker()).await.unwrap());
    for (volume, _) in built.code_volumes() {
        assert!(
            images::volume_exists(&volume).await.unwrap(),
            "today's {volume} is made and kept"
        );
    }
    let _ = docker
        .remove_volume(
            &other,
            None::<testcontainers::bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_environment_removes_its_containers() {
    // What a panic or a cancelled run does: the environment is dropped, not shut down.
    let env = start("dropped").await;
    let run_id = env.run_id().to_string();
    let docker = reap::connect().await.unwrap();
    assert!(
        reap::resources_of_run(&docker, &run_id).await.len() >= 9,
        "the run has its containers, network and volumes"
    );
    drop(env);
    let left = reap::resources_of_run(&docker, &run_id).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_code_volumes_are_filled_again() {
    use testcontainers::bollard::models::VolumeCreateRequest;
    let docker = reap::connect().await.unwrap();
    let note = |m: String| eprintln!("code: {m}");
    let real = images::ensure(Build::IfMissing, &note).await.unwrap();
    // Code volumes of a tag of this test's own, from today's images.
    let fake = images::Images {
        code: format!(
            "{:016x}",
            0xc0de_0000_0000_u64 + u64::from(std::process::id())
        ),
        ..real.clone()
    };
    let marker = fake.code_marker();
    let create = |name: String, labels: Vec<(&'static str, &'static str)>| {
        let docker = docker.clone();
        async move {
            docker
                .create_volume(VolumeCreateRequest {
                    name: Some(name),
                    labels: Some(
                        labels
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ),
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let base_of_marker = || async {
        docker
            .inspect_volume(&marker)
            .await
            .unwrap()
            .labels
            .get("chaos.code-base")
            .cloned()
    };
    let (erlang, _) = fake.code_volumes()[0].clone();
    // Through a container (the engine may be remote, its volumes root's), mounting without
    // the engine's copy, which would fill an empty volume itself.
    let erlang_filled = || {
        let out = std::process::Command::new("docker")
            .args(["run", "--rm", "--mount"])
            .arg(format!(
                "type=volume,src={erlang},dst=/v,readonly,volume-nocopy"
            ))
            .args([real.app.as_str(), "test", "-x", "/v/bin/erl"])
            .output()
            .expect("docker runs");
        out.status.success()
    };
    let remove = |name: String| {
        let docker = docker.clone();
        async move {
            let _ = docker
                .remove_volume(
                    &name,
                    None::<testcontainers::bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
    };
    // What a cut-off fill leaves: every volume there, empty, and no marker.
    for (volume, _) in fake.code_volumes() {
        create(volume, vec![("chaos.code", "test")]).await;
    }
    assert!(!erlang_filled());
    images::ensure_code_volumes(&fake, &note).await.unwrap();
    assert!(erlang_filled(), "volumes without a marker are filled again");
    let base_id = base_of_marker().await.expect("the marker names its base");
    assert!(base_id.starts_with("sha256:"), "{base_id}");
    assert!(images::code_volumes_complete(&fake).await.unwrap());

    // An emptied volume under a marker naming another base (an app image on a rebuilt
    // base): filled again.
    remove(marker.clone()).await;
    remove(erlang.clone()).await;
    create(erlang.clone(), vec![("chaos.code", "test")]).await;
    create(
        marker.clone(),
        vec![
            ("chaos.code", "test"),
            ("chaos.code-base", "sha256:another"),
        ],
    )
    .await;
    assert!(!erlang_filled());
    assert!(!images::code_volumes_complete(&fake).await.unwrap());
    images::ensure_code_volumes(&fake, &note).await.unwrap();
    assert_eq!(base_of_marker().await, Some(base_id));
    assert!(erlang_filled(), "a marker of another base is no marker");

    for name in fake
        .code_volumes()
        .into_iter()
        .map(|(v, _)| v)
        .chain([marker.clone()])
    {
        remove(name).await;
    }
}
