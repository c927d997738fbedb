//! SOCKS5 egress (RFC 1928, with RFC 1929 username/password): a proxy
//! given as `socks5://[user:pass@]host:port`, asked to connect to an IP
//! address that mailvet resolved and guarded itself. The proxy is never
//! given a name to resolve, so the SSRF guard and the resolver's trust hold
//! through it. Credentials never reach `Display`, `Debug` or an error.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_socks::tcp::Socks5Stream;

use crate::secret::{ExposeSecret, SecretString};

/// The port of a `socks5://` URL that names none (RFC 1928).
const DEFAULT_PORT: u16 = 1080;

/// One SOCKS5 proxy.
#[derive(Clone)]
pub struct Socks5Proxy {
    host: String,
    port: u16,
    credentials: Option<(String, SecretString)>,
}

/// Why a `--proxy` value was refused. It never repeats the value, which may
/// hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    #[error("it is not a URL (expected socks5://[user:pass@]host:port)")]
    NotAUrl,
    #[error(
        "the scheme must be socks5://; socks5h:// and others would let the proxy resolve names, \
         and mailvet resolves and checks mail hosts itself"
    )]
    Scheme,
    #[error("it names no host")]
    NoHost,
    #[error("a SOCKS5 proxy URL has no path, query or fragment")]
    Extra,
    #[error("a password needs a user name")]
    PasswordWithoutUser,
    #[error("the user name or the password is longer than 255 bytes (RFC 1929)")]
    CredentialsTooLong,
}

impl Socks5Proxy {
    /// Parses `socks5://[user:pass@]host[:port]`. User and password are
    /// percent-decoded.
    pub fn parse(raw: &str) -> Result<Self, ProxyUrlError> {
        let url = url::Url::parse(raw.trim()).map_err(|_| ProxyUrlError::NotAUrl)?;
        if url.scheme() != "socks5" {
            return Err(ProxyUrlError::Scheme);
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(ProxyUrlError::NoHost),
        };
        if host.is_empty() {
            return Err(ProxyUrlError::NoHost);
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(ProxyUrlError::Extra);
        }
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = decode(url.username());
        let password = url.password().map(decode);
        let credentials = match (user.is_empty(), password) {
            (true, None) => None,
            (true, Some(_)) => return Err(ProxyUrlError::PasswordWithoutUser),
            (false, password) => {
                let password = password.unwrap_or_default();
                if user.len() > 255 || password.len() > 255 {
                    return Err(ProxyUrlError::CredentialsTooLong);
                }
                Some((user, SecretString::from(password)))
            }
        };
        Ok(Socks5Proxy {
            host,
            port: url.port().unwrap_or(DEFAULT_PORT),
            credentials,
        })
    }

    /// Connects to `target` through the proxy: TCP to the proxy within
    /// `timeout`, then the SOCKS5 handshake and the proxy's own connection
    /// to the target within another `timeout`.
    pub async fn connect(
        &self,
        target: SocketAddr,
        timeout: Duration,
    ) -> Result<Socks5Stream<TcpStream>, ProxyError> {
        let socket = match tokio::time::timeout(
            timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        {
            Err(_) => return Err(ProxyError::Proxy("no answer within the timeout".into())),
            Ok(Err(err)) => return Err(ProxyError::Proxy(format!("connecting to it: {err}"))),
            Ok(Ok(socket)) => socket,
        };
        let _ = socket.set_nodelay(true);
        let handshake = async {
            match &self.credentials {
                None => Socks5Stream::connect_with_socket(socket, target).await,
                Some((user, password)) => {
                    Socks5Stream::connect_with_password_and_socket(
                        socket,
                        target,
                        user,
                        password.expose_secret(),
                    )
                    .await
                }
            }
        };
        match tokio::time::timeout(timeout, handshake).await {
            Err(_) => Err(ProxyError::Timeout),
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(err)) => Err(ProxyError::from_socks(err)),
        }
    }
}

impl fmt::Display for Socks5Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "socks5://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "socks5://{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Socks5Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socks5Proxy")
            .field("url", &self.to_string())
            .field("authenticated", &self.credentials.is_some())
            .finish()
    }
}

/// How connecting through a proxy failed, and whose fault it was.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The proxy could not be used: unreachable, refused our credentials,
    /// forbids the connection, or spoke something other than SOCKS5.
    #[error("{0}")]
    Proxy(String),
    /// The proxy works and could not reach the target (refused,
    /// unreachable): the mail server's side, as a direct connection would
    /// have found it.
    #[error("the proxy could not reach the mail server: {0}")]
    Target(io::Error),
    /// The proxy's handshake or its connection to the target took too long.
    #[error("no connection to the mail server through the proxy within the timeout")]
    Timeout,
}

impl ProxyError {
    fn from_socks(err: tokio_socks::Error) -> Self {
        use tokio_socks::Error as E;
        let target =
            |kind: io::ErrorKind, what: &str| ProxyError::Target(io::Error::new(kind, what));
        match err {
            E::ConnectionRefused => target(io::ErrorKind::ConnectionRefused, "connection refused"),
            E::HostUnreachable => target(io::ErrorKind::HostUnreachable, "host unreachable"),
            E::NetworkUnreachable => {
                target(io::ErrorKind::NetworkUnreachable, "network unreachable")
            }
            E::TtlExpired => target(io::ErrorKind::TimedOut, "TTL expired"),
            E::PasswordAuthFailure(_) | E::NoAcceptableAuthMethods => {
                ProxyError::Proxy("it refused our credentials (or asks for some)".into())
            }
            E::ConnectionNotAllowedByRuleset => {
                ProxyError::Proxy("its rules do not allow this connection".into())
            }
            E::Io(err) => ProxyError::Proxy(format!("I/O error during the handshake: {err}")),
            other => ProxyError::Proxy(format!("SOCKS5 handshake failed: {other}")),
        }
    }

    /// Whether the failure was the proxy's own (so it should be set aside),
    /// not the target's.
    pub fn is_proxy_fault(&self) -> bool {
        matches!(self, ProxyError::Proxy(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_and_without_credentials() {
        let proxy = Socks5Proxy::parse("socks5://alice:s%40c+ret@127.0.0.1:1081").expect("valid");
        assert_eq!(proxy.to_string(), "socks5://127.0.0.1:1081");
        let (user, password) = proxy.credentials.as_ref().expect("credentials");
        assert_eq!(user, "alice");
        assert_eq!(password.expose_secret(), "s@c+ret");

        let proxy = Socks5Proxy::parse("socks5://proxy.internal").expect("valid");
        assert_eq!(proxy.to_string(), "socks5://proxy.internal:1080");
        assert!(proxy.credentials.is_none());

        let proxy = Socks5Proxy::parse("socks5://[::1]:9050").expect("valid");
        assert_eq!(proxy.to_string(), "socks5://[::1]:9050");
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_them() {
        for (raw, expected) in [
            ("not a url", ProxyUrlError::NotAUrl),
            ("socks5h://u:hunter2@h:1", ProxyUrlError::Scheme),
            ("http://u:hunter2@h:1", ProxyUrlError::Scheme),
            ("socks5://u:hunter2@h:1/path", ProxyUrlError::Extra),
            ("socks5://:hunter2@h:1", ProxyUrlError::PasswordWithoutUser),
        ] {
            let err = Socks5Proxy::parse(raw).expect_err(raw);
            assert_eq!(err, expected, "{raw}");
            assert!(!err.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn credentials_stay_out_of_debug_and_display() {
        let proxy = Socks5Proxy::parse("socks5://bob:hunter2@10.0.0.1:1080").expect("valid");
        assert!(!format!("{proxy:?}").contains("hunter2"));
        assert!(!format!("{proxy:?}").contains("bob"));
        assert!(!proxy.to_string().contains("hunter2"));
    }
}
