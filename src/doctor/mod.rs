//! `mailvet doctor`: whether probing can work from here. Each check is a
//! function that returns rows (the check, pass / warn / fail, what was
//! found, and what to do); `run` gathers them in a fixed order and
//! `output.rs` prints them.
//!
//! Every name is looked up through mailvet's own resolver
//! (`--dns-servers`, without a cache, so answers are current). Doctor
//! contacts nothing beyond what is configured: the database, the resolver,
//! the first mail host of each `--doctor-domains` domain (greeting,
//! `EHLO`, `QUIT`: nothing is sent), the DNSBL zones (through the
//! resolver), and `--public-ip-url` when it is given. It writes nothing:
//! a schema that is missing is reported, not migrated (a SQLite file that
//! does not exist is created empty, as every command's opening does).

mod database;
mod dnsbl;
mod egress;
mod helo;
pub mod output;
mod resolver;
mod smtp;

use serde::Serialize;

use crate::settings::DoctorArgs;
use crate::verify::dns::MailResolver;

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    /// Probing works, but less well than it could, or a check could not
    /// be made.
    Warn,
    /// Probing cannot work (or cannot be trusted) until this is fixed.
    Fail,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// What was checked (`smtp gmail.com (direct)`).
    pub check: String,
    pub result: Outcome,
    /// What was found.
    pub detail: String,
    /// What to do about a warning or a failure.
    pub advice: Option<String>,
}

impl Row {
    /// A failure turned into a warning, saying why it matters less.
    fn only_a_warning(mut self, why: &str) -> Self {
        if self.result == Outcome::Fail {
            self.result = Outcome::Warn;
            self.detail = format!("{} ({why})", self.detail);
        }
        self
    }

    fn pass(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Row {
            check: check.into(),
            result: Outcome::Pass,
            detail: detail.into(),
            advice: None,
        }
    }

    fn warn(
        check: impl Into<String>,
        detail: impl Into<String>,
        advice: impl Into<String>,
    ) -> Self {
        Self::advising(Outcome::Warn, check, detail, advice)
    }

    fn fail(
        check: impl Into<String>,
        detail: impl Into<String>,
        advice: impl Into<String>,
    ) -> Self {
        Self::advising(Outcome::Fail, check, detail, advice)
    }

    fn advising(
        result: Outcome,
        check: impl Into<String>,
        detail: impl Into<String>,
        advice: impl Into<String>,
    ) -> Self {
        Row {
            check: check.into(),
            result,
            detail: detail.into(),
            advice: Some(advice.into()),
        }
    }
}

/// Runs every check and returns the rows: the database, the resolver,
/// the public address, the HELO name and reverse DNS, outbound SMTP, the
/// blocklists.
pub async fn run(args: &DoctorArgs) -> Vec<Row> {
    let dns = args.dns.resolver();
    let resolver = match MailResolver::uncached(&dns) {
        Ok(resolver) => resolver,
        Err(err) => {
            // Without a resolver nothing but the database can be checked.
            let mut rows = database::check(&args.database).await;
            rows.push(Row::fail(
                "resolver",
                format!("cannot set up the resolver: {}", err.detail),
                "give the DNS servers to use with --dns-servers ip:port,…",
            ));
            return rows;
        }
    };
    let domains = args.doctor.domains();
    let allow_private = args.smtp.allow_private_targets;
    let helo_name = args.smtp.helo_name();
    let zones = args.doctor.dnsbl_zones();
    let addressed = async {
        let (public_ip, egress_row) =
            egress::public_address(&args.doctor, &dns, allow_private).await;
        let (helo_rows, dnsbl_rows) = tokio::join!(
            helo::check(&resolver, &helo_name, public_ip),
            dnsbl::check(&resolver, public_ip, &zones),
        );
        (egress_row, helo_rows, dnsbl_rows)
    };
    let (database_rows, resolver_rows, smtp_rows, (egress_row, helo_rows, dnsbl_rows)) = tokio::join!(
        database::check(&args.database),
        resolver::check(&resolver, &dns, &domains),
        smtp::check(&resolver, &args.smtp, &domains),
        addressed,
    );
    let mut rows = database_rows;
    rows.extend(resolver_rows);
    rows.push(egress_row);
    rows.extend(helo_rows);
    rows.extend(smtp_rows);
    rows.extend(dnsbl_rows);
    rows
}

/// Whether any row failed: `mailvet doctor` then exits 1.
pub fn any_failed(rows: &[Row]) -> bool {
    rows.iter().any(|row| row.result == Outcome::Fail)
}

/// Text from the network made fit for a terminal: control characters
/// (escape sequences, line breaks) shown as spaces, at most `max`
/// characters.
fn printable(text: &str, max: usize) -> String {
    let mut shown: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_text_loses_control_characters_and_is_bounded() {
        assert_eq!(printable("550 no\x1b[31m red", 100), "550 no [31m red");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("a\r\nb", 10), "a  b");
    }
}
