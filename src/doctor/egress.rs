//! The public address mail servers see: from `--public-ip`, or asked of
//! the operator's `--public-ip-url` through the guarded outbound HTTP
//! client. Never guessed, never asked of a built-in service.

use std::net::IpAddr;

use super::{Row, printable};
use crate::outbound::Outbound;
use crate::secret::ExposeSecret;
use crate::settings::DoctorFlags;
use crate::verify::dns::DnsSettings;
use crate::verify::guard::forbidden_target;

const CHECK: &str = "public address";
/// The most of the URL's answer that is read: an address and a newline.
const MAX_ANSWER_BYTES: usize = 256;
const ADVICE_UNKNOWN: &str = "give it with --public-ip, or --public-ip-url with a URL that answers \
                              the caller's address as plain text";

/// The address, if it can be known, and the row that says how.
pub(super) async fn public_address(
    flags: &DoctorFlags,
    dns: &DnsSettings,
    allow_private: bool,
) -> (Option<IpAddr>, Row) {
    let (ip, source) = match (&flags.public_ip, &flags.public_ip_url) {
        (Some(ip), _) => (*ip, "--public-ip".to_owned()),
        (None, Some(url)) => match fetch(url.expose_secret(), dns, allow_private).await {
            Ok(found) => found,
            Err(why) => {
                return (
                    None,
                    Row::warn(
                        CHECK,
                        format!(
                            "not learnt from --public-ip-url: {why}; reverse DNS and blocklists not checked"
                        ),
                        ADVICE_UNKNOWN,
                    ),
                );
            }
        },
        (None, None) => {
            return (
                None,
                Row::warn(
                    CHECK,
                    "unknown: reverse DNS and blocklists not checked",
                    ADVICE_UNKNOWN,
                ),
            );
        }
    };
    let row = match forbidden_target(ip) {
        Some(why) if !allow_private => Row::warn(
            CHECK,
            format!("{ip} (from {source}) is a {why} address, not the one mail servers see"),
            "give the public address of the NAT or gateway mail leaves through",
        ),
        _ => Row::pass(CHECK, format!("{ip} (from {source})")),
    };
    (Some(ip), row)
}

/// Asks the URL; the answer is its body, an address as text. Errors name
/// the host, never the URL, which may carry a token.
async fn fetch(
    url: &str,
    dns: &DnsSettings,
    allow_private: bool,
) -> Result<(IpAddr, String), String> {
    let host = url::Url::parse(url)
        .map_err(|err| format!("not a URL: {err}"))?
        .host_str()
        .map(str::to_owned)
        .unwrap_or_default();
    let client = Outbound::allowing_private_by(dns, allow_private, "--allow-private-targets")
        .map_err(|err| err.to_string())?;
    let request = client
        .request(reqwest::Method::GET, url)
        .map_err(|err| err.to_string())?;
    let mut response = client.send(request).await.map_err(|err| err.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{host} answered HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| format!("reading {host}'s answer: {}", err.without_url()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err(format!("{host}'s answer is longer than an address"));
        }
    }
    let text = String::from_utf8_lossy(&body);
    let ip = text.trim().parse::<IpAddr>().map_err(|_| {
        format!(
            "{host} answered `{}`, not an IP address",
            printable(text.trim(), 60)
        )
    })?;
    Ok((ip, format!("--public-ip-url, {host}")))
}
