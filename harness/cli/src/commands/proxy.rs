//! `chaos proxy --api ADDR`: only the Toxiproxy-compatible proxy server, until Ctrl-C.

use chaos_engine::proxy::ProxyServer;

use super::runtime;
use crate::exit;

pub fn run(api: &str, seed: u64) -> anyhow::Result<u8> {
    use std::net::ToSocketAddrs;
    if let Err(e) = api.to_socket_addrs() {
        eprintln!("chaos: --api {api:?}: not an address to listen on ({e})");
        return Ok(exit::USAGE);
    }
    let rt = runtime()?;
    rt.block_on(async {
        let mut server = match ProxyServer::start(api, seed).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("chaos: {e}");
                return Ok(exit::ENVIRONMENT);
            }
        };
        println!("toxiproxy API listening on {}", server.url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            () = server.serve_forever() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok(exit::VALID)
    })
}
