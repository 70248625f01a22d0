//! Conformance: `chaos proxy` in standalone mode, driven through `toxiproxy_rust`, the Rust
//! ecosystem's Toxiproxy client, exactly as a user of Toxiproxy would drive it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

/// `chaos proxy --api 127.0.0.1:0`, killed when dropped.
struct Standalone {
    child: Child,
    api: String,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn standalone() -> Standalone {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["proxy", "--api", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn chaos proxy");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let api = line
        .trim()
        .rsplit("http://")
        .next()
        .filter(|a| a.contains(':'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Standalone { child, api }
}

/// A one-connection-at-a-time echo server on a thread.
fn echo() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    addr
}

fn round_trip(listen: &str) -> Duration {
    let mut s = TcpStream::connect(listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    s.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    start.elapsed()
}

fn free_listen() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn toxiproxy_rust_drives_proxies_and_every_toxic_it_knows() {
    let server = standalone();
    let client = Client::new(server.api.as_str());
    assert!(client.is_running());
    assert!(client.version().unwrap().contains("version"));

    let upstream = echo();
    let listen = free_listen();
    let proxies = client
        .populate(vec![ProxyPack::new(
            "echo".into(),
            listen.clone(),
            upstream.clone(),
        )])
        .expect("populate");
    assert_eq!(proxies.len(), 1);
    assert!(client.all().unwrap().contains_key("echo"));
    assert!(round_trip(&listen) < Duration::from_millis(200));

    let proxy = client.find_and_reset_proxy("echo").unwrap();
    proxy.with_latency("downstream".into(), 150, 0, 1.0);
    let rtt = round_trip(&listen);
    assert!(
        rtt >= Duration::from_millis(150),
        "latency toxic not applied: {rtt:?}"
    );
    proxy.with_bandwidth("upstream".into(), 1000, 1.0);
    proxy.with_slow_close("downstream".into(), 10, 1.0);
    proxy.with_slicer("upstream".into(), 64, 8, 10, 1.0);
    proxy.with_limit_data("upstream".into(), 1 << 20, 1.0);
    let toxics = proxy.toxics().unwrap();
    let mut names: Vec<_> = toxics.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "bandwidth_upstream",
            "latency_downstream",
            "limit_data_upstream",
            "slicer_upstream",
            "slow_close_downstream"
        ]
    );
    let slicer = toxics.iter().find(|t| t.r#type == "slicer").unwrap();
    assert_eq!(slicer.attributes["average_size"], 64);
    assert_eq!(slicer.attributes["size_variation"], 8);
    assert_eq!(slicer.toxicity, 1.0);
    // Every toxic at once still delivers the bytes.
    assert!(round_trip(&listen) >= Duration::from_millis(150));

    proxy.apply(|| {}).unwrap();
    assert!(
        proxy.toxics().unwrap().is_empty(),
        "apply removes the toxics afterwards"
    );

    proxy.with_timeout("downstream".into(), 100, 1.0);
    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"lost").unwrap();
    let mut buf = [0u8; 4];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(
        n, 0,
        "a timeout toxic closes the connection without passing data"
    );
    proxy.delete_all_toxics().unwrap();

    proxy
        .with_down(|| {
            assert!(
                TcpStream::connect(&listen).is_err(),
                "a disabled proxy refuses connections"
            );
        })
        .unwrap();
    assert!(
        round_trip(&listen) < Duration::from_millis(200),
        "enabled again after with_down"
    );

    proxy.disable().unwrap();
    client.reset().unwrap();
    assert!(
        client.find_proxy("echo").unwrap().proxy_pack.enabled,
        "reset re-enables proxies"
    );

    client.find_proxy("echo").unwrap().delete().unwrap();
    assert!(
        client.find_proxy("echo").is_err(),
        "deleted proxies are gone"
    );
}
