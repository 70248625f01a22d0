//! The toxic proxies: an embedded server speaking Toxiproxy's HTTP API, and the client the
//! harness uses to control it (or a real Toxiproxy server).

mod api;
mod client;
mod forward;
mod link;
mod registry;
mod toxic;

pub use api::{ProxyServer, router};
pub use client::{ProxyInfo, ToxiproxyClient};
pub use registry::{ProxyError, Registry};
pub use toxic::{Toxic, ToxicKind};
