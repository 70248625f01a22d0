//! One proxy: a listener that accepts clients, dials the upstream for each, and runs a link
//! per direction. Disabling it closes the listener and every open connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_model::Stream;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::link::{End, EndSignal, ToxicSet, pump};
use super::toxic::Toxic;

const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Proxy {
    pub name: String,
    seed: u64,
    state: Mutex<State>,
    toxics: watch::Sender<ToxicSet>,
    next_conn: AtomicU64,
}

struct State {
    /// The address actually bound (port 0 resolved), kept across disable/enable.
    listen: SocketAddr,
    upstream: String,
    enabled: bool,
    acceptor: Option<JoinHandle<()>>,
    conns: BTreeMap<u64, JoinHandle<()>>,
}

impl Proxy {
    /// Create a proxy; when `enabled`, bind `listen` now (errors if it cannot).
    pub async fn start(
        name: &str,
        listen: &str,
        upstream: &str,
        enabled: bool,
        seed: u64,
    ) -> std::io::Result<Arc<Proxy>> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let proxy = Arc::new(Proxy {
            name: name.to_string(),
            seed,
            state: Mutex::new(State {
                listen: addr,
                upstream: upstream.to_string(),
                enabled: false,
                acceptor: None,
                conns: BTreeMap::new(),
            }),
            toxics: watch::Sender::new(Arc::new(Vec::new())),
            next_conn: AtomicU64::new(0),
        });
        if enabled {
            proxy.run_acceptor(listener);
        }
        Ok(proxy)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("proxy state lock poisoned")
    }

    pub fn listen(&self) -> SocketAddr {
        self.lock().listen
    }

    pub fn upstream(&self) -> String {
        self.lock().upstream.clone()
    }

    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    fn run_acceptor(self: &Arc<Self>, listener: TcpListener) {
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                me.spawn_connection(client);
            }
        });
        let mut st = self.lock();
        st.enabled = true;
        st.acceptor = Some(task);
    }

    fn spawn_connection(self: &Arc<Self>, client: TcpStream) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let upstream = self.upstream();
        let toxics = self.toxics.subscribe();
        let seed = self.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let me = Arc::clone(self);
        // Hold the lock across spawn and insert, so the task's own removal cannot run first.
        let mut st = self.lock();
        let task = tokio::spawn(async move {
            connection(client, &upstream, toxics, seed).await;
            me.lock().conns.remove(&id);
        });
        st.conns.insert(id, task);
    }

    /// Stop accepting and close every open connection; returns once the listening socket
    /// and every connection are closed, so a client told "disabled" finds it so.
    pub async fn disable(&self) {
        let tasks = self.stop();
        for t in tasks {
            // A cancelled task's future (and its sockets) is dropped before this resolves.
            let _ = t.await;
        }
    }

    /// Cancel the acceptor and the connections without waiting for them to close (for
    /// synchronous shutdown paths).
    pub fn stop(&self) -> Vec<JoinHandle<()>> {
        let mut st = self.lock();
        st.enabled = false;
        let mut tasks: Vec<JoinHandle<()>> = st.acceptor.take().into_iter().collect();
        tasks.extend(std::mem::take(&mut st.conns).into_values());
        for t in &tasks {
            t.abort();
        }
        tasks
    }

    /// Listen again on the same address.
    pub async fn enable(self: &Arc<Self>) -> std::io::Result<()> {
        if self.enabled() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.listen()).await?;
        self.run_acceptor(listener);
        Ok(())
    }

    /// Change the upstream (new connections only), the listen address and/or whether the
    /// proxy is enabled. A listen address that cannot be resolved or bound changes nothing.
    pub async fn update(
        self: &Arc<Self>,
        listen: Option<&str>,
        upstream: Option<&str>,
        enabled: Option<bool>,
    ) -> std::io::Result<()> {
        let new_listen = match listen {
            Some(l) => Some(
                tokio::net::lookup_host(l)
                    .await?
                    .next()
                    .ok_or_else(|| std::io::Error::other(format!("cannot resolve {l}")))?,
            ),
            None => None,
        };
        let rebind = match new_listen {
            Some(addr) if addr != self.listen() => Some(TcpListener::bind(addr).await?),
            _ => None,
        };
        if let Some(u) = upstream {
            self.lock().upstream = u.to_string();
        }
        if let Some(listener) = rebind {
            let was_enabled = self.enabled();
            self.disable().await;
            self.lock().listen = listener.local_addr()?;
            if was_enabled {
                self.run_acceptor(listener);
            }
        }
        match enabled {
            Some(true) => self.enable().await?,
            Some(false) => self.disable().await,
            None => {}
        }
        Ok(())
    }

    pub fn toxics(&self) -> ToxicSet {
        self.toxics.borrow().clone()
    }

    /// Replace the toxic set; every link sees the new set before its next chunk.
    pub fn set_toxics(&self, toxics: Vec<Toxic>) {
        self.toxics.send_replace(Arc::new(toxics));
    }

    /// Change the toxic set atomically (concurrent API calls cannot lose each other's
    /// changes). Links are woken only when `f` succeeds.
    pub fn modify_toxics<R, E>(
        &self,
        f: impl FnOnce(&mut Vec<Toxic>) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut out = None;
        self.toxics.send_if_modified(|set| {
            let mut next = set.as_ref().clone();
            let r = f(&mut next);
            let ok = r.is_ok();
            if ok {
                *set = Arc::new(next);
            }
            out = Some(r);
            ok
        });
        out.expect("send_if_modified runs its closure")
    }

    pub fn to_json(&self) -> Value {
        let st = self.lock();
        json!({
            "name": self.name,
            "listen": st.listen.to_string(),
            "upstream": st.upstream,
            "enabled": st.enabled,
            "toxics": self.toxics.borrow().iter().map(Toxic::to_json).collect::<Vec<_>>(),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn connection(
    mut client: TcpStream,
    upstream: &str,
    toxics: watch::Receiver<ToxicSet>,
    seed: u64,
) {
    let mut server =
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
            Ok(Ok(s)) => s,
            // The client sees its connection closed, as with Toxiproxy when the upstream is down.
            _ => return,
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = EndSignal::default();
    let how = {
        let (client_r, client_w) = client.split();
        let (server_r, server_w) = server.split();
        let pumps = async {
            tokio::join!(
                pump(
                    client_r,
                    server_w,
                    Stream::Upstream,
                    toxics.clone(),
                    seed,
                    &end
                ),
                pump(
                    server_r,
                    client_w,
                    Stream::Downstream,
                    toxics,
                    seed.rotate_left(17),
                    &end
                ),
            )
        };
        tokio::select! {
            _ = pumps => None,
            how = end.ended() => Some(how),
        }
    };
    if how == Some(End::Reset) {
        // SO_LINGER 0: closing sends RST and discards unsent data, as a reset peer does.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}
