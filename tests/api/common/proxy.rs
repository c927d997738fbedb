//! A TCP forwarder on loopback that a test can slow down, cut and restore:
//! a database that "goes away" without stopping the shared server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

#[derive(Default)]
struct Shared {
    delay: Duration,
    jitter: Duration,
    held: bool,
    connections: JoinSet<()>,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    acceptor: Option<tokio::task::JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mut proxy = TcpProxy {
            addr,
            target,
            shared: Arc::default(),
            acceptor: None,
        };
        proxy.acceptor = Some(proxy.accept(listener));
        proxy
    }

    fn accept(&self, listener: TcpListener) -> tokio::task::JoinHandle<()> {
        let shared = self.shared.clone();
        let target = self.target;
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared_for_conn = shared.clone();
                let mut guard = shared.lock().expect("proxy state");
                guard.connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        forward(client, server, shared_for_conn).await;
                    }
                });
            }
        })
    }

    /// Adds `delay` to every round trip to the target.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().expect("proxy state").delay = delay;
    }

    /// Adds a random delay of up to `jitter` to every chunk the target
    /// sends back: concurrent transactions then finish in random order.
    pub fn set_jitter(&self, jitter: Duration) {
        self.shared.lock().expect("proxy state").jitter = jitter;
    }

    /// Holds back everything the target sends until [`TcpProxy::release`].
    pub fn hold(&self) {
        self.shared.lock().expect("proxy state").held = true;
    }

    pub fn release(&self) {
        self.shared.lock().expect("proxy state").held = false;
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
        }
        self.shared
            .lock()
            .expect("proxy state")
            .connections
            .abort_all();
    }

    /// Accepts connections again, on the same port.
    pub async fn up(&mut self) {
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(err) if attempts < 50 => {
                    attempts += 1;
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("rebind the proxy on {}: {err}", self.addr),
            }
        };
        self.acceptor = Some(self.accept(listener));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.down();
    }
}

async fn forward(client: TcpStream, server: TcpStream, shared: Arc<Mutex<Shared>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    // The target's replies are read as they come and delivered `delay`
    // later, like a slow network: each round trip costs `delay` once.
    let (chunks_tx, mut chunks_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared_for_writer = shared.clone();
    let reader = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    let due =
                        tokio::time::Instant::now() + shared.lock().expect("proxy state").delay;
                    if chunks_tx.send((due, buffer[..read].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = chunks_rx.recv().await {
            tokio::time::sleep_until(due).await;
            while shared_for_writer.lock().expect("proxy state").held {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if client_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    let downstream = async {
        tokio::join!(reader, writer);
    };
    tokio::join!(upstream, downstream);
}
