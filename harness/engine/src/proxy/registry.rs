//! The set of proxies of one proxy server, and the operations the HTTP API exposes on it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::forward::Proxy;
use super::toxic::{Toxic, ToxicJson};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy not found")]
    ProxyNotFound,
    #[error("toxic not found")]
    ToxicNotFound,
    #[error("proxy already exists")]
    ProxyExists,
    #[error("toxic already exists")]
    ToxicExists,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Io(String),
}

impl ProxyError {
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::ProxyNotFound | ProxyError::ToxicNotFound => 404,
            ProxyError::ProxyExists | ProxyError::ToxicExists => 409,
            ProxyError::BadRequest(_) => 400,
            ProxyError::Io(_) => 500,
        }
    }
}

/// A proxy as a create or populate request names it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ProxySpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub listen: String,
    #[serde(default)]
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Fields of an update request; absent fields keep their value.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ProxyUpdate {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Default)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Arc<Proxy>>>,
    /// Seeds each proxy's per-connection randomness (jitter, toxicity), so runs repeat.
    seed: u64,
}

impl Registry {
    pub fn new(seed: u64) -> Registry {
        Registry {
            proxies: Mutex::new(BTreeMap::new()),
            seed,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Proxy>>> {
        self.proxies.lock().expect("proxy registry lock poisoned")
    }

    pub fn get(&self, name: &str) -> Result<Arc<Proxy>, ProxyError> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or(ProxyError::ProxyNotFound)
    }

    pub fn list(&self) -> Vec<Arc<Proxy>> {
        self.lock().values().cloned().collect()
    }

    pub async fn create(&self, spec: ProxySpec) -> Result<Arc<Proxy>, ProxyError> {
        if spec.name.is_empty() {
            return Err(ProxyError::BadRequest(
                "missing required field: name".into(),
            ));
        }
        if spec.upstream.is_empty() {
            return Err(ProxyError::BadRequest(
                "missing required field: upstream".into(),
            ));
        }
        if self.lock().contains_key(&spec.name) {
            return Err(ProxyError::ProxyExists);
        }
        let listen = if spec.listen.is_empty() {
            "127.0.0.1:0"
        } else {
            &spec.listen
        };
        let seed = self.seed ^ fnv1a(&spec.name);
        let proxy = Proxy::start(&spec.name, listen, &spec.upstream, spec.enabled, seed)
            .await
            .map_err(|e| ProxyError::BadRequest(format!("cannot listen on {listen}: {e}")))?;
        let mut map = self.lock();
        if map.contains_key(&spec.name) {
            proxy.stop();
            return Err(ProxyError::ProxyExists);
        }
        map.insert(spec.name.clone(), Arc::clone(&proxy));
        Ok(proxy)
    }

    pub async fn update(&self, name: &str, u: ProxyUpdate) -> Result<Arc<Proxy>, ProxyError> {
        let proxy = self.get(name)?;
        proxy
            .update(u.listen.as_deref(), u.upstream.as_deref(), u.enabled)
            .await
            .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        Ok(proxy)
    }

    pub async fn delete(&self, name: &str) -> Result<(), ProxyError> {
        let proxy = self.lock().remove(name).ok_or(ProxyError::ProxyNotFound)?;
        proxy.disable().await;
        Ok(())
    }

    /// Re-enable every proxy and remove every toxic.
    pub async fn reset(&self) -> Result<(), ProxyError> {
        for p in self.list() {
            p.set_toxics(Vec::new());
            p.enable()
                .await
                .map_err(|e| ProxyError::Io(e.to_string()))?;
        }
        Ok(())
    }

    /// Stop every proxy (used when the embedding harness shuts down).
    pub fn shutdown(&self) {
        for (_, p) in std::mem::take(&mut *self.lock()) {
            p.stop();
        }
    }

    pub fn add_toxic(&self, proxy: &str, req: Value) -> Result<Toxic, ProxyError> {
        let p = self.get(proxy)?;
        let toxic = Toxic::from_request(parse_body(req)?).map_err(ProxyError::BadRequest)?;
        p.modify_toxics(|set| {
            if set.iter().any(|t| t.name == toxic.name) {
                return Err(ProxyError::ToxicExists);
            }
            set.push(toxic.clone());
            Ok(toxic)
        })
    }

    pub fn update_toxic(&self, proxy: &str, name: &str, req: Value) -> Result<Toxic, ProxyError> {
        let p = self.get(proxy)?;
        let req = parse_body(req)?;
        p.modify_toxics(|set| {
            let slot = set
                .iter_mut()
                .find(|t| t.name == name)
                .ok_or(ProxyError::ToxicNotFound)?;
            *slot = slot.updated(req).map_err(ProxyError::BadRequest)?;
            Ok(slot.clone())
        })
    }

    pub fn get_toxic(&self, proxy: &str, name: &str) -> Result<Toxic, ProxyError> {
        let p = self.get(proxy)?;
        let set = p.toxics();
        set.iter()
            .find(|t| t.name == name)
            .cloned()
            .ok_or(ProxyError::ToxicNotFound)
    }

    pub fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ProxyError> {
        self.get(proxy)?.modify_toxics(|set| {
            let i = set
                .iter()
                .position(|t| t.name == name)
                .ok_or(ProxyError::ToxicNotFound)?;
            set.remove(i);
            Ok(())
        })
    }
}

fn parse_body(req: Value) -> Result<ToxicJson, ProxyError> {
    serde_json::from_value(req)
        .map_err(|e| ProxyError::BadRequest(format!("bad request body: {e}")))
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
