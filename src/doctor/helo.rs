//! The HELO name: a fully qualified domain name, that resolves, and —
//! when the public address is known — that the address's reverse DNS
//! names and that resolves back to it (forward-confirmed reverse DNS),
//! which large providers demand before they talk to a sender.

use std::net::IpAddr;

use super::Row;
use crate::address::helo_name_problem;
use crate::verify::dns::MailResolver;

const CHECK: &str = "helo name";
const CHECK_PTR: &str = "reverse dns";

/// A row for the name, and one for reverse DNS when the address is known
/// (even when the name is wrong: the PTR then says which name to use).
pub(super) async fn check(
    resolver: &MailResolver,
    helo_name: &str,
    public_ip: Option<IpAddr>,
) -> Vec<Row> {
    let name = helo_name.trim_end_matches('.').to_ascii_lowercase();
    let (name_row, forward) = match helo_name_problem(&name) {
        Some(problem) => (
            Row::fail(
                CHECK,
                format!("`{name}`: {problem}"),
                "set --helo-name to this host's fully qualified name, one with an A record \
                 and the PTR of the public address",
            ),
            Vec::new(),
        ),
        None => match resolver.host_addresses(&name).await {
            Ok(addrs) => {
                let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                (
                    Row::pass(CHECK, format!("`{name}` resolves to {}", shown.join(", "))),
                    addrs,
                )
            }
            Err(err) => (
                Row::fail(
                    CHECK,
                    format!("`{name}` does not resolve: {}", err.detail),
                    "publish an A (or AAAA) record for it, pointing at the public address",
                ),
                Vec::new(),
            ),
        },
    };
    let mut rows = vec![name_row];
    if let Some(ip) = public_ip {
        rows.push(reverse(resolver, &name, &forward, ip).await);
    }
    rows
}

/// The PTR of `ip` must name `name`, and `name` must resolve to `ip`.
async fn reverse(resolver: &MailResolver, name: &str, forward: &[IpAddr], ip: IpAddr) -> Row {
    let ask_provider = format!(
        "ask the hosting provider to set the PTR (reverse DNS) of {ip} to {name}, \
         and keep {name}'s A record pointing at {ip}"
    );
    let names = match resolver.reverse_names(ip).await {
        Ok(names) => names,
        Err(err) => {
            return Row::warn(
                CHECK_PTR,
                format!("the PTR of {ip} could not be looked up: {}", err.detail),
                "check --dns-servers; then run doctor again",
            );
        }
    };
    if names.is_empty() {
        return Row::warn(CHECK_PTR, format!("{ip} has no PTR record"), ask_provider);
    }
    if !names.iter().any(|ptr| ptr == name) {
        return Row::warn(
            CHECK_PTR,
            format!("the PTR of {ip} names {}, not `{name}`", names.join(", ")),
            format!(
                "set --helo-name {} (if it resolves to {ip}), or {ask_provider}",
                names[0]
            ),
        );
    }
    if !forward.contains(&ip) {
        return Row::warn(
            CHECK_PTR,
            format!("the PTR of {ip} names `{name}`, but `{name}` does not resolve to {ip}"),
            format!("point {name}'s A (or AAAA) record at {ip}"),
        );
    }
    Row::pass(
        CHECK_PTR,
        format!("the PTR of {ip} is `{name}`, which resolves back to {ip}"),
    )
}
