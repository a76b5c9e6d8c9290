//! A fault proxy for the tests: a TCP proxy between a service and the broker or a database that
//! makes the network misbehave in user space (this machine's kernel has no `netem`): latency
//! with jitter, connections cut and refused, and connections left open but silent (half-open).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the network between the two sides does now.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    /// Added to every chunk in each direction, plus or minus up to `jitter`; order is kept.
    latency: Duration,
    jitter: Duration,
    /// New connections are dropped at once (open ones were cut).
    refusing: bool,
}

/// One proxied connection.
struct Link {
    /// Set to leave the connection open but carry nothing more, either way.
    silent: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A proxy to `upstream` whose faults a test turns on and off.
pub struct FaultProxy {
    pub address: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    links: Arc<Mutex<Vec<Link>>>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("bound");
        let faults: Arc<Mutex<Faults>> = Arc::default();
        let links: Arc<Mutex<Vec<Link>>> = Arc::default();
        let (accept_faults, accept_links) = (faults.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accept_faults.lock().unwrap().refusing {
                    continue; // dropped: the connection is refused as far as the client can tell
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let silent = Arc::new(AtomicBool::new(false));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let tasks = vec![
                    carry(
                        client_read,
                        server_write,
                        accept_faults.clone(),
                        silent.clone(),
                    ),
                    carry(
                        server_read,
                        client_write,
                        accept_faults.clone(),
                        silent.clone(),
                    ),
                ];
                accept_links.lock().unwrap().push(Link { silent, tasks });
            }
        });
        Self {
            address,
            faults,
            links,
        }
    }

    /// `url` (of the machine's RabbitMQ or PostgreSQL) through this proxy.
    pub fn url(&self, url: &str, upstream: &str) -> String {
        url.replacen(upstream, &self.address.to_string(), 1)
    }

    /// Every chunk from now on waits `latency` ± `jitter`, in each direction.
    pub fn delay(&self, latency: Duration, jitter: Duration) {
        let mut faults = self.faults.lock().unwrap();
        faults.latency = latency;
        faults.jitter = jitter;
    }

    /// The link goes down: open connections are dropped, new ones refused.
    pub fn cut(&self) {
        self.faults.lock().unwrap().refusing = true;
        for link in self.links.lock().unwrap().drain(..) {
            for task in link.tasks {
                task.abort();
            }
        }
    }

    /// The link is back: new connections go through, without faults.
    pub fn restore(&self) {
        *self.faults.lock().unwrap() = Faults::default();
    }

    /// Open connections stay open but carry nothing more (a peer that vanished without closing,
    /// a NAT that forgot the flow); new connections go through.
    pub fn silence_open_connections(&self) {
        for link in self.links.lock().unwrap().iter() {
            link.silent.store(true, Ordering::SeqCst);
        }
    }
}

/// Copies `from` to `to` with the proxy's faults: each chunk is delivered at its time (read
/// time plus latency and jitter, never before the chunk ahead of it), or held for ever once the
/// link is silent.
fn carry(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: Arc<Mutex<Faults>>,
    silent: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (chunks, mut due) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer_silent = silent.clone();
    let writer = tokio::spawn(async move {
        let mut last = Instant::now();
        while let Some((at, chunk)) = due.recv().await {
            let at = at.max(last);
            tokio::time::sleep_until(at).await;
            last = at;
            if writer_silent.load(Ordering::SeqCst) {
                // Keep the socket open and say nothing, as a vanished peer would.
                std::future::pending::<()>().await;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if silent.load(Ordering::SeqCst) {
                continue; // swallowed
            }
            let now = *faults.lock().unwrap();
            let jitter = now.jitter.as_micros() as i128;
            let offset = if jitter == 0 {
                0
            } else {
                (uuid::Uuid::new_v4().as_u128() % (2 * jitter as u128 + 1)) as i128 - jitter
            };
            let wait = (now.latency.as_micros() as i128 + offset).max(0) as u64;
            let at = Instant::now() + Duration::from_micros(wait);
            if chunks.send((at, buffer[..read].to_vec())).is_err() {
                break;
            }
        }
        // Dropping `chunks` lets the writer finish what is due, then it ends.
        let _ = writer.await;
    })
}
