//! Free loopback ports for servers that cannot bind port 0 and report it.
//!
//! A port handed out here is bound later by another process (and bound again after a
//! restart), so it must not be taken in between. Ports from the kernel's ephemeral range
//! can be: every outgoing connection on the machine takes its source port from there. So
//! ports are drawn from below that range, where only explicit binds land, and never twice
//! from one process.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

use crate::error::EngineError;

/// Lowest port handed out: above the well-known and most registered service ports.
const FLOOR: u16 = 15_000;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port that was free a moment ago, outside the ephemeral range.
pub fn free_port() -> Result<u16, EngineError> {
    let ceiling = ephemeral_low().unwrap_or(32_768);
    if ceiling <= FLOOR + 1_000 {
        // The ephemeral range reaches down here: fall back to the kernel's choice.
        return kernel_port();
    }
    let span = u32::from(ceiling - FLOOR);
    // Different processes start at different places, so concurrent runs rarely probe the
    // same ports. This is placement, not part of any experiment: it needs no seed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = (std::process::id().wrapping_mul(2_654_435_761) ^ nanos) % span;
    let mut handed = HANDED_OUT.lock().expect("port set lock poisoned");
    for i in 0..span {
        let port = FLOOR + ((start + i) % span) as u16;
        if !handed.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.insert(port);
            return Ok(port);
        }
    }
    kernel_port()
}

fn kernel_port() -> Result<u16, EngineError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(EngineError::io("bind 127.0.0.1:0"))?;
    Ok(l.local_addr()
        .map_err(EngineError::io("local_addr"))?
        .port())
}

/// The low end of `net.ipv4.ip_local_port_range`.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let low = ephemeral_low().unwrap_or(32_768);
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        if low > FLOOR + 1_000 {
            assert!(
                ports.iter().all(|&p| (FLOOR..low).contains(&p)),
                "{ports:?}"
            );
        }
        for p in ports {
            TcpListener::bind(("127.0.0.1", p)).expect("a handed-out port is bindable");
        }
    }
}
