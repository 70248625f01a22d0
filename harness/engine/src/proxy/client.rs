//! An async client of the Toxiproxy HTTP API: what the harness uses to set up proxies and
//! inject toxics, against the embedded server or a real Toxiproxy.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::EngineError;

/// A proxy as the API reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ProxyInfo {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct ToxiproxyClient {
    base: String,
    http: reqwest::Client,
}

impl ToxiproxyClient {
    pub fn new(base: &str) -> ToxiproxyClient {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("reqwest client builds");
        ToxiproxyClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, EngineError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| EngineError::Proxy(format!("{method} {url}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| EngineError::Proxy(format!("{method} {url}: reading body: {e}")))?;
        if !status.is_success() {
            return Err(EngineError::Proxy(format!(
                "{method} {url}: {status}: {}",
                text.trim()
            )));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| EngineError::Proxy(format!("{method} {url}: bad JSON: {e}")))
    }

    pub async fn version(&self) -> Result<Value, EngineError> {
        self.call(reqwest::Method::GET, "/version", None).await
    }

    pub async fn create_proxy(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> Result<ProxyInfo, EngineError> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/proxies",
                Some(json!({ "name": name, "listen": listen, "upstream": upstream, "enabled": true })),
            )
            .await?;
        serde_json::from_value(v)
            .map_err(|e| EngineError::Proxy(format!("create proxy {name}: {e}")))
    }

    pub async fn proxy(&self, name: &str) -> Result<ProxyInfo, EngineError> {
        let v = self
            .call(reqwest::Method::GET, &format!("/proxies/{name}"), None)
            .await?;
        serde_json::from_value(v).map_err(|e| EngineError::Proxy(format!("proxy {name}: {e}")))
    }

    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), EngineError> {
        self.call(
            reqwest::Method::POST,
            &format!("/proxies/{name}"),
            Some(json!({ "enabled": enabled })),
        )
        .await
        .map(drop)
    }

    /// Add a toxic given in Toxiproxy's JSON shape; returns the toxic as created.
    pub async fn add_toxic(&self, proxy: &str, toxic: Value) -> Result<Value, EngineError> {
        self.call(
            reqwest::Method::POST,
            &format!("/proxies/{proxy}/toxics"),
            Some(toxic),
        )
        .await
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), EngineError> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/proxies/{proxy}/toxics/{toxic}"),
            None,
        )
        .await
        .map(drop)
    }

    pub async fn reset(&self) -> Result<(), EngineError> {
        self.call(reqwest::Method::POST, "/reset", None)
            .await
            .map(drop)
    }
}
