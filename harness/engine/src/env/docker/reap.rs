//! What a docker run owns on the engine, found by label: its containers, its network and its
//! volumes carry `chaos.run=<run id>`, `chaos.owner=<pid> <start time>` and
//! `chaos.host=<boot id>/<pid namespace>` (the machine and pid namespace the owner's pid
//! means something in). A run removes its own at the end, whatever ended it, matching its
//! owner too, so another harness's resources are never touched even if a run id clashed; a
//! run of this host whose owner is gone (SIGKILLed) is reaped by the next chaos command, and
//! `chaos down --all` removes every run of this host.

use std::collections::{BTreeMap, HashMap};

use testcontainers::bollard::Docker;
use testcontainers::bollard::errors::Error as BollardError;
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};

use super::super::rundir::process_start_time;
use crate::error::EngineError;

pub(crate) const LABEL_RUN: &str = "chaos.run";
pub(crate) const LABEL_OWNER: &str = "chaos.owner";
pub(crate) const LABEL_HOST: &str = "chaos.host";

/// This machine's boot and this process's pid namespace: a pid in an owner label is only
/// checked where it was written.
fn host() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("{}/{}", boot.trim(), ns.trim_start_matches("pid:"))
}

fn me() -> String {
    let me = std::process::id() as i32;
    format!("{me}-{}", process_start_time(me).unwrap_or(0))
}

/// The labels every resource of run `run_id` carries, owned by this process.
pub(crate) fn labels(run_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_RUN.to_string(), run_id.to_string()),
        (LABEL_OWNER.to_string(), me()),
        (LABEL_HOST.to_string(), host()),
    ])
}

/// Connect to the engine and check that it answers; the error says what to do.
pub async fn connect() -> Result<Docker, EngineError> {
    connect_within(std::time::Duration::from_secs(10)).await
}

async fn connect_within(limit: std::time::Duration) -> Result<Docker, EngineError> {
    let unreachable = |e: String| {
        let what = if e.contains("ermission denied") {
            "run as root, or join the `docker` group (`usermod -aG docker $USER`, then log in again)"
        } else {
            "start it (`systemctl start docker`, or `dockerd &`), or point DOCKER_HOST at it"
        };
        EngineError::Docker(format!(
            "cannot reach the Docker engine ({e}): {what}; the local environment (`--env local`) needs none"
        ))
    };
    let docker = Docker::connect_with_local_defaults().map_err(|e| unreachable(e.to_string()))?;
    tokio::time::timeout(limit, docker.ping())
        .await
        .map_err(|_| unreachable(format!("no answer to a ping within {limit:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(docker)
}

/// The `label` filter for these `key=value` pairs (every one must match).
fn filter(pairs: &[String]) -> HashMap<&'static str, Vec<&str>> {
    HashMap::from([("label", pairs.iter().map(String::as_str).collect())])
}

/// One labelled resource on the engine.
#[derive(Debug, Clone)]
struct Resource {
    kind: &'static str,
    /// Its id (a container, a network) or name (a volume), what removal takes.
    id: String,
    /// What a person recognises it by.
    name: String,
    labels: HashMap<String, String>,
}

/// Every container, network and volume carrying all of `pairs`.
async fn list(docker: &Docker, pairs: &[String]) -> Result<Vec<Resource>, BollardError> {
    let f = filter(pairs);
    let mut all = Vec::new();
    for c in docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&f)
                .build(),
        ))
        .await?
    {
        all.push(Resource {
            kind: "container",
            id: c.id.unwrap_or_default(),
            name: c.names.unwrap_or_default().join(","),
            labels: c.labels.unwrap_or_default(),
        });
    }
    for n in docker
        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&f).build()))
        .await?
    {
        all.push(Resource {
            kind: "network",
            id: n.id.clone().unwrap_or_default(),
            name: n.name.unwrap_or_default(),
            labels: n.labels.unwrap_or_default(),
        });
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&f).build()))
        .await?;
    for v in volumes.volumes.unwrap_or_default() {
        all.push(Resource {
            kind: "volume",
            id: v.name.clone(),
            name: v.name,
            labels: v.labels,
        });
    }
    Ok(all)
}

fn owner_alive(owner: &str) -> bool {
    let mut fields = owner.split('-').map(|f| f.parse::<u64>().ok());
    match (fields.next().flatten(), fields.next().flatten()) {
        (Some(pid), Some(started)) => process_start_time(pid as i32) == Some(started),
        _ => false,
    }
}

/// Remove every resource carrying all of `pairs`: the containers first (at once), then the
/// networks they were on, then the volumes. Returns what could not be removed, and why.
async fn remove_matching(docker: &Docker, pairs: &[String]) -> Vec<String> {
    let found = match list(docker, pairs).await {
        Ok(f) => f,
        Err(e) => return vec![format!("list resources: {e}")],
    };
    let mut problems = Vec::new();
    let removals = found
        .iter()
        .filter(|r| r.kind == "container")
        .map(|r| async move {
            let opts = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            (r, docker.remove_container(&r.id, Some(opts)).await)
        });
    let mut results = futures_util::future::join_all(removals).await;
    for r in found.iter().filter(|r| r.kind == "network") {
        results.push((r, docker.remove_network(&r.id).await));
    }
    for r in found.iter().filter(|r| r.kind == "volume") {
        let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
        results.push((r, docker.remove_volume(&r.id, Some(opts)).await));
    }
    for (r, result) in results {
        if let Err(e) = result
            && !is_not_found(&e)
        {
            problems.push(format!("{} {}: {e}", r.kind, r.name));
        }
    }
    problems
}

/// Remove what this process made for run `run_id`: only resources carrying its own owner
/// label, so a clashing run id of another harness is never touched.
pub(crate) async fn remove_own(docker: &Docker, run_id: &str) -> Vec<String> {
    remove_matching(
        docker,
        &[
            format!("{LABEL_RUN}={run_id}"),
            format!("{LABEL_OWNER}={}", me()),
        ],
    )
    .await
}

pub(crate) fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Each run of this host on the engine, with its owner label (`PID-START`).
async fn runs_of_this_host(docker: &Docker) -> Result<BTreeMap<String, String>, EngineError> {
    let found = list(docker, &[format!("{LABEL_HOST}={}", host())])
        .await
        .map_err(|e| EngineError::Docker(format!("list the runs' resources: {e}")))?;
    let mut runs = BTreeMap::new();
    for r in found {
        if let Some(id) = r.labels.get(LABEL_RUN) {
            runs.entry(id.clone())
                .or_insert_with(|| r.labels.get(LABEL_OWNER).cloned().unwrap_or_default());
        }
    }
    Ok(runs)
}

/// Reap the runs of this host whose owner is gone; returns their ids.
pub async fn reap_leftovers(docker: &Docker) -> Result<Vec<String>, EngineError> {
    let mut reaped = Vec::new();
    for (id, owner) in runs_of_this_host(docker).await? {
        if owner_alive(&owner) {
            continue;
        }
        let pairs = [
            format!("{LABEL_RUN}={id}"),
            format!("{LABEL_OWNER}={owner}"),
        ];
        for p in remove_matching(docker, &pairs).await {
            tracing::warn!("reaping run {id}: {p}");
        }
        reaped.push(id);
    }
    Ok(reaped)
}

/// What any chaos command does first: reap this host's runs whose owner is gone, if an
/// engine answers at once; no engine is nothing to reap, not an error.
pub async fn reap_if_engine() -> Vec<String> {
    let Ok(docker) = connect_within(std::time::Duration::from_secs(2)).await else {
        return Vec::new();
    };
    reap_leftovers(&docker).await.unwrap_or_default()
}

/// Remove every run of this host, live or left behind (`chaos down --all`); returns their
/// ids.
pub async fn remove_all(docker: &Docker) -> Result<Vec<String>, EngineError> {
    let mut removed = Vec::new();
    for id in runs_of_this_host(docker).await?.into_keys() {
        let problems = remove_matching(
            docker,
            &[
                format!("{LABEL_RUN}={id}"),
                format!("{LABEL_HOST}={}", host()),
            ],
        )
        .await;
        if !problems.is_empty() {
            return Err(EngineError::Docker(format!(
                "could not remove all of run {id}: {}",
                problems.join("; ")
            )));
        }
        removed.push(id);
    }
    Ok(removed)
}

/// The resources of `run_id` still on the engine, as `kind name` lines (for tests).
pub async fn resources_of_run(docker: &Docker, run_id: &str) -> Vec<String> {
    list(docker, &[format!("{LABEL_RUN}={run_id}")])
        .await
        .map(|all| {
            all.into_iter()
                .map(|r| format!("{} {}", r.kind, r.name))
                .collect()
        })
        .unwrap_or_else(|e| vec![format!("(cannot list: {e})")])
}

/// [`remove_own`] from synchronous code (a drop, a panic's unwinding): on a thread of its own
/// with its own runtime and connection, so it works inside or outside any runtime.
pub(crate) fn remove_own_blocking(run_id: &str) {
    let id = run_id.to_string();
    let worker = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return vec!["cannot start a runtime to clean up".to_string()];
        };
        rt.block_on(async {
            match connect().await {
                Ok(docker) => remove_own(&docker, &id).await,
                Err(e) => vec![e.to_string()],
            }
        })
    });
    match worker.join() {
        Ok(problems) => {
            for p in problems {
                tracing::warn!("cleaning up run {run_id}: {p}");
            }
        }
        Err(_) => tracing::warn!("cleaning up run {run_id}: the cleanup thread panicked"),
    }
}
