//! Free loopback ports for servers that cannot bind port 0 and report it.

use crate::error::EngineError;

/// A port that was free a moment ago. Servers started on it may still lose a race with
/// another process; their start-up then fails and is retried with a new port.
pub fn free_port() -> Result<u16, EngineError> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(EngineError::io("bind 127.0.0.1:0"))?;
    Ok(l.local_addr()
        .map_err(EngineError::io("local_addr"))?
        .port())
}
