//! `mailvet doctor`'s own flags: how the public egress address is learnt,
//! which blocklists are asked about it, and which providers' mail hosts
//! are tried.

use std::net::IpAddr;

use clap::Args;

use super::blank;
use crate::secret::{ExposeSecret, SecretString, parse_secret};

/// What `mailvet doctor` checks beyond the engine's own settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Doctor")]
pub struct DoctorFlags {
    /// The public address mail servers see this host's connections come
    /// from. Needed for the reverse DNS and blocklist checks.
    #[arg(long = "public-ip", env = "MAILVET_PUBLIC_IP", value_name = "IP")]
    pub public_ip: Option<IpAddr>,

    /// A URL that answers the caller's address as plain text (a service of
    /// your own, or one you choose), asked when --public-ip is not given.
    /// Nothing is asked by default. Kept secret: it may carry a token.
    #[arg(
        long = "public-ip-url",
        env = "MAILVET_PUBLIC_IP_URL",
        value_name = "URL",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub public_ip_url: Option<SecretString>,

    /// DNS blocklist zones the public address is looked up in, comma
    /// separated, queried through the resolver. `none` turns the check off.
    #[arg(
        long = "dnsbl-zones",
        env = "MAILVET_DNSBL_ZONES",
        value_name = "ZONES",
        value_delimiter = ',',
        default_value = "zen.spamhaus.org,bl.spamcop.net,b.barracudacentral.org"
    )]
    pub dnsbl_zones: Vec<String>,

    /// Domains whose first mail host is greeted over SMTP (EHLO, then QUIT:
    /// nothing is sent), comma separated.
    #[arg(
        long = "doctor-domains",
        env = "MAILVET_DOCTOR_DOMAINS",
        value_name = "DOMAINS",
        value_delimiter = ',',
        default_value = "gmail.com,outlook.com,yahoo.com"
    )]
    pub domains: Vec<String>,
}

impl DoctorFlags {
    pub(super) fn drop_empty_values(&mut self) {
        self.public_ip_url = self
            .public_ip_url
            .take()
            .filter(|url| !blank(url.expose_secret()));
    }

    /// The blocklist zones, lower case, each once; none for `none`.
    pub fn dnsbl_zones(&self) -> Vec<String> {
        names(&self.dnsbl_zones)
    }

    /// The domains whose mail hosts are tried, lower case, each once.
    pub fn domains(&self) -> Vec<String> {
        names(&self.domains)
    }
}

fn names(list: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(list.len());
    for name in list {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if !name.is_empty() && name != "none" && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}
