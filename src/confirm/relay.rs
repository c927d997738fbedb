//! The operator's mail relay, which confirmation messages are sent
//! through: `smtp://[user:pass@]host[:port]` (port 587 by default; STARTTLS
//! when the relay offers it, and required before credentials go to a relay
//! that is not on loopback) or `smtps://…` (implicit TLS, port 465 by
//! default). Certificates are checked against the Web PKI roots, and the
//! operator's own CA (`--relay-ca-file`) when given.
//!
//! The URL's password is a secret: errors name the relay by host and port
//! only.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::secret::{ExposeSecret, SecretString};

/// A relay URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--relay-url: {0}")]
pub struct RelayUrlError(String);

/// Where confirmation messages go.
#[derive(Clone)]
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port`, for logs and errors.
    name: String,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("name", &self.name).finish()
    }
}

/// Why the relay did not take a message.
#[derive(Debug, thiserror::Error)]
#[error("the relay {relay} did not take the message: {cause}")]
pub struct RelayError {
    relay: String,
    cause: String,
}

impl Relay {
    /// The relay that `url` names, introducing itself as `helo_name`, each
    /// step bounded by `timeout`, its certificate also trusted when issued
    /// by `ca` (PEM).
    pub fn new(
        url: &SecretString,
        helo_name: &str,
        timeout: Duration,
        ca: Option<&[u8]>,
    ) -> Result<Self, RelayUrlError> {
        let parsed = url::Url::parse(url.expose_secret())
            .map_err(|_| RelayUrlError("not a URL: use smtp://user:pass@host:587".into()))?;
        let implicit_tls = match parsed.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(RelayUrlError(format!(
                    "the scheme `{other}` is not smtp:// or smtps://"
                )));
            }
        };
        let host = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| RelayUrlError("the URL names no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed
            .port()
            .unwrap_or(if implicit_tls { 465 } else { 587 });
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| RelayUrlError("the user or password is not UTF-8".into()))
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, password) => Some(Credentials::new(
                decode(user)?,
                decode(password.unwrap_or_default())?,
            )),
        };
        let mut parameters = TlsParameters::builder(host.clone());
        if let Some(pem) = ca {
            let certificate = Certificate::from_pem(pem)
                .map_err(|_| RelayUrlError("--relay-ca-file holds no PEM certificate".into()))?;
            parameters = parameters.add_root_certificate(certificate);
        }
        let parameters = parameters
            .build_rustls()
            .map_err(|_| RelayUrlError(format!("TLS cannot be set up for `{host}`")))?;
        let on_loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let tls = if implicit_tls {
            Tls::Wrapper(parameters)
        } else if credentials.is_some() && !on_loopback {
            // A password never crosses a network in the clear: a relay
            // that does not offer STARTTLS is refused.
            Tls::Required(parameters)
        } else {
            Tls::Opportunistic(parameters)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(helo_name.to_owned()));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        Ok(Relay {
            transport: builder.build(),
            name: format!("{host}:{port}"),
        })
    }

    /// `host:port`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one message; its envelope comes from its `From` and `To`.
    pub async fn send(&self, message: Message) -> Result<(), RelayError> {
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|err| RelayError {
                relay: self.name.clone(),
                cause: describe(&err),
            })
    }
}

/// What went wrong, in words that hold nothing of the relay URL: lettre's
/// errors carry the relay's reply or the I/O failure, never the credentials.
fn describe(err: &lettre::transport::smtp::Error) -> String {
    crate::error::error_chain(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(url: &str) -> Result<Relay, RelayUrlError> {
        Relay::new(
            &SecretString::from(url),
            "mailvet.test",
            Duration::from_secs(5),
            None,
        )
    }

    #[test]
    fn relay_urls_name_host_and_port_and_default_the_port() {
        assert_eq!(
            relay("smtp://relay.test").expect("a relay").name(),
            "relay.test:587"
        );
        assert_eq!(
            relay("smtps://u:p@relay.test").expect("a relay").name(),
            "relay.test:465"
        );
        assert_eq!(
            relay("smtp://u:p@127.0.0.1:2525").expect("a relay").name(),
            "127.0.0.1:2525"
        );
    }

    #[test]
    fn a_bad_relay_url_is_refused_without_showing_its_password() {
        for bad in [
            "http://u:hunter2@relay.test",
            "smtp://u:hunter2@",
            "hunter2",
        ] {
            let err = relay(bad).expect_err(bad).to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
        let good = relay("smtp://u:hunter2@relay.test").expect("a relay");
        assert!(!format!("{good:?}").contains("hunter2"));
    }
}
