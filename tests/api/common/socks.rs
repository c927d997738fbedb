//! A real SOCKS5 server on loopback: Debian's `microsocks`, started by the
//! test, with optional username/password and an outgoing bind address, so
//! that the mail server behind it sees the proxy's address, not mailvet's.
//! See README.md, "Running the tests".

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MICROSOCKS: &str = "/usr/bin/microsocks";

pub struct Socks5Server {
    pub addr: SocketAddr,
    child: Child,
}

/// A loopback port nothing listens on (bound, then let go).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind")
        .port()
}

impl Socks5Server {
    /// Starts microsocks on 127.0.0.1; its outgoing connections come from
    /// `bind` (for example `127.0.0.7`); `auth` is (user, password).
    pub fn start(bind: &str, auth: Option<(&str, &str)>) -> Self {
        assert!(
            Path::new(MICROSOCKS).exists(),
            "\n\nThe SOCKS5 egress tests need microsocks ({MICROSOCKS}), and it is not installed.\n\
             On Debian/Ubuntu: sudo apt-get install -y microsocks\n"
        );
        let port = closed_port();
        let mut command = Command::new(MICROSOCKS);
        command
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-b", bind])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((user, password)) = auth {
            command.args(["-u", user, "-P", password]);
        }
        let child = command.spawn().expect("start microsocks");
        let server = Socks5Server {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(server.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "microsocks did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `socks5://[user:pass@]127.0.0.1:port`.
    pub fn url(&self, auth: Option<(&str, &str)>) -> String {
        match auth {
            Some((user, password)) => format!("socks5://{user}:{password}@{}", self.addr),
            None => format!("socks5://{}", self.addr),
        }
    }
}

impl Drop for Socks5Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
