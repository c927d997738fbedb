//! The command line and the typed settings it yields. Every flag has an
//! environment variable (the README's configuration table); secrets never reach `Debug`, logs or
//! `--help`.
//!
//! Flags come in groups ([`clap::Args`] structs, one help heading each),
//! and each subcommand takes the groups it uses: `serve` (the default) all
//! of them, `check` the database, the verification engine's and logging,
//! `doctor` the database, DNS, SMTP, logging and its own, `migrate` the
//! database's and logging. A component is built from the
//! groups it needs, never from the whole command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

mod confirm;
mod doctor;
mod engine;
mod service;

pub use confirm::ConfirmArgs;
pub use doctor::DoctorFlags;
pub use engine::{DatabaseArgs, DnsArgs, SmtpArgs, VerifyArgs};
pub use service::{ApiKeys, BounceArgs, HttpArgs, JobArgs, KeyArgs};

#[derive(Debug, Parser)]
#[command(
    name = "mailvet",
    version,
    about = "Email verification and bounce suppression service",
    long_about = "mailvet checks email addresses (syntax, DNS, an SMTP probe of the \
                  recipient's mail server) and keeps a suppression list of addresses \
                  that hard-bounced.\n\nEvery flag can also be set through the \
                  environment variable shown with it.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a subcommand mailvet serves, and takes `serve`'s flags.
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once, at start-up, and moved at most twice"
)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve(Settings),
    /// Apply pending database migrations and exit.
    Migrate(MigrateSettings),
    /// Verify addresses with the service's engine and settings, and print
    /// the verdicts.
    Check(CheckArgs),
    /// Check whether probing can work from here (database, resolver,
    /// outbound SMTP, HELO name and reverse DNS, blocklists), print what
    /// to fix, and exit 1 on any failure.
    Doctor(DoctorArgs),
}

/// `mailvet doctor`: how to print, its own flags, and the settings it
/// checks.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Print a JSON array of rows instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub smtp: SmtpArgs,
    #[command(flatten)]
    pub doctor: DoctorFlags,
    #[command(flatten)]
    pub log: LogArgs,
}

/// `mailvet check`: what to verify, how to print it, and the settings.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit status: 0 when every address was checked (and none has a \
                  --fail-on status); 1 on an error (the database, the file); 2 on a \
                  usage error; 3 when an address has a status named in --fail-on."
)]
pub struct CheckArgs {
    /// The addresses to verify.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub emails: Vec<String>,
    /// Verify the addresses of a CSV file: the column named `email` (or
    /// `E-mail`, `Email Address`…), or else the first column, whose first
    /// row is a header unless it holds an `@`. `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// With --file: where to write the results, as CSV with every
    /// VerifyResult field (JSON lines with --json); `-` or no value
    /// writes standard output.
    #[arg(long, value_name = "PATH", requires = "file")]
    pub output: Option<PathBuf>,
    /// Print JSON (one VerifyResult per line) instead of a table or CSV.
    #[arg(long)]
    pub json: bool,
    /// Skip cached verdicts.
    #[arg(long)]
    pub fresh: bool,
    /// Exit with status 3 when any address has one of these statuses,
    /// comma separated (`undeliverable,risky,unknown`); for scripts and CI
    /// pipelines. The results are printed in full either way.
    #[arg(long, value_delimiter = ',', value_name = "STATUSES")]
    pub fail_on: Vec<crate::vocab::Status>,

    #[command(flatten)]
    pub settings: CheckSettings,
}

/// Everything the service (`mailvet serve`) is configured with.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub smtp: SmtpArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub bounces: BounceArgs,
    #[command(flatten)]
    pub jobs: JobArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What `mailvet check` is configured with: the database, the verification
/// engine's groups and logging.
#[derive(Debug, Clone, Args)]
pub struct CheckSettings {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub smtp: SmtpArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What `mailvet migrate` is configured with.
#[derive(Debug, Clone, Args)]
pub struct MigrateSettings {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}
/// Log output.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format; the level comes from RUST_LOG (default: info).
    #[arg(long = "log-format", env = "MAILVET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

/// An empty value — `MAILVET_HELO_NAME=` in a compose file — counts as not
/// set.
pub(super) fn blank(value: &str) -> bool {
    value.trim().is_empty()
}

impl Cli {
    /// Parses the process's arguments and environment.
    pub fn parse_args() -> Self {
        Self::parse_args_from(std::env::args_os())
    }

    /// Parses the given arguments (and the environment). An empty value —
    /// `MAILVET_HELO_NAME=` in a compose file — counts as not set.
    pub fn parse_args_from<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cli = Cli::parse_from(args);
        cli.settings.drop_empty_values();
        match &mut cli.command {
            Some(Command::Serve(settings)) => settings.drop_empty_values(),
            Some(Command::Check(check)) => check.settings.smtp.drop_empty_values(),
            Some(Command::Doctor(doctor)) => {
                doctor.smtp.drop_empty_values();
                doctor.doctor.drop_empty_values();
            }
            Some(Command::Migrate(_)) | None => {}
        }
        cli
    }

    /// What to run: the subcommand given, or else `serve` with the flags
    /// given without one.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.settings))
    }
}

impl Command {
    /// The log format the command was given.
    pub fn log_format(&self) -> LogFormat {
        match self {
            Command::Serve(settings) => settings.log.format,
            Command::Migrate(settings) => settings.log.format,
            Command::Check(check) => check.settings.log.format,
            Command::Doctor(doctor) => doctor.log.format,
        }
    }
}

impl Settings {
    /// Settings as if no flag was given (the environment still applies).
    pub fn defaults() -> Self {
        Cli::parse_args_from(["mailvet"]).settings
    }

    fn drop_empty_values(&mut self) {
        self.http.drop_empty_values();
        self.keys.drop_empty_values();
        self.smtp.drop_empty_values();
        self.confirm.drop_empty_values();
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use crate::secret::ExposeSecret;
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let cli = Cli::parse_from([
            "mailvet",
            "--database-url",
            "postgres://mailvet:hunter2@db/mailvet",
            "--secret-keys",
            "sk_live_abc,sk_live_def",
            "--public-keys",
            "pk_live_xyz",
            "--token-secret",
            "token_live_0123456789abcdef0123456789",
        ]);
        let shown = format!("{cli:?}");
        for secret in [
            "hunter2",
            "sk_live_abc",
            "sk_live_def",
            "pk_live_xyz",
            "token_live_0123456789",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert_eq!(cli.settings.keys.secret_keys.len(), 2);
        assert_eq!(
            cli.settings.keys.secret_keys[1].expose_secret(),
            "sk_live_def"
        );
        let signer = cli
            .settings
            .keys
            .token_signer()
            .expect("32 characters or more");
        assert!(!format!("{signer:?}").contains("token_live"));
    }

    #[test]
    fn each_subcommand_takes_its_own_flags() {
        let cli = Cli::parse_from(["mailvet", "migrate", "--database-url", "sqlite://x.db"]);
        let Some(Command::Migrate(settings)) = cli.command else {
            panic!("migrate: {:?}", cli.command);
        };
        assert_eq!(settings.database.url.expose_secret(), "sqlite://x.db");

        let cli = Cli::parse_from([
            "mailvet",
            "check",
            "a@b.example",
            "--dns-servers",
            "127.0.0.1:53",
        ]);
        let Some(Command::Check(check)) = cli.command else {
            panic!("check: {:?}", cli.command);
        };
        assert_eq!(check.emails, ["a@b.example"]);
        assert_eq!(
            check.settings.dns.servers,
            ["127.0.0.1:53".parse::<SocketAddr>().expect("an address")]
        );

        let cli = Cli::parse_from(["mailvet", "serve", "--listen", "127.0.0.1:0"]);
        let Command::Serve(settings) = cli.into_command() else {
            panic!("serve");
        };
        assert_eq!(settings.http.listen.port(), 0);
    }

    #[test]
    fn without_a_subcommand_mailvet_serves_with_the_flags_given() {
        let cli = Cli::parse_from([
            "mailvet",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite://x.db",
        ]);
        let Command::Serve(settings) = cli.into_command() else {
            panic!("serve is the default");
        };
        assert_eq!(settings.http.listen.port(), 0);
        assert_eq!(settings.database.url.expose_secret(), "sqlite://x.db");
        // Flags before a subcommand would be ignored by it: refused instead.
        let ignored = Cli::try_parse_from(["mailvet", "--listen", "127.0.0.1:0", "serve"]);
        assert!(ignored.is_err(), "flags go after the subcommand");
    }

    #[test]
    fn check_takes_only_the_flags_it_uses() {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("check")
            .expect("a check subcommand")
            .render_help()
            .to_string();
        for used in [
            "--dns-servers",
            "--database-url",
            "--smtp-port",
            "--log-format",
        ] {
            assert!(help.contains(used), "{used} missing from:\n{help}");
        }
        for unused in [
            "--listen",
            "--secret-keys",
            "--cors-origins",
            "--rate-limit-public",
            "--request-timeout",
            "--job-workers",
            "--soft-bounce-limit",
        ] {
            assert!(!help.contains(unused), "{unused} listed in:\n{help}");
        }
        let refused = Cli::try_parse_from(["mailvet", "check", "a@b.example", "--listen", "x"]);
        assert!(refused.is_err(), "check has no --listen");
    }

    #[test]
    fn doctor_takes_the_groups_it_checks_and_its_own_flags() {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("doctor")
            .expect("a doctor subcommand")
            .render_help()
            .to_string();
        for used in [
            "Doctor:",
            "--public-ip",
            "--public-ip-url",
            "--dnsbl-zones",
            "--doctor-domains",
            "--dns-servers",
            "--database-url",
            "--helo-name",
            "--json",
        ] {
            assert!(help.contains(used), "{used} missing from:\n{help}");
        }
        for unused in ["--listen", "--secret-keys", "--probe-budget-per-domain"] {
            assert!(!help.contains(unused), "{unused} listed in:\n{help}");
        }

        let cli = Cli::parse_args_from([
            "mailvet",
            "doctor",
            "--public-ip",
            "203.0.113.7",
            "--dnsbl-zones",
            "Zen.Spamhaus.org, bl.spamcop.net.,zen.spamhaus.org",
            "--public-ip-url",
            "",
        ]);
        let Command::Doctor(doctor) = cli.into_command() else {
            panic!("doctor");
        };
        assert_eq!(
            doctor.doctor.public_ip,
            Some("203.0.113.7".parse().expect("an IP"))
        );
        assert!(doctor.doctor.public_ip_url.is_none());
        assert_eq!(
            doctor.doctor.dnsbl_zones(),
            ["zen.spamhaus.org", "bl.spamcop.net"]
        );
        assert_eq!(
            doctor.doctor.domains(),
            ["gmail.com", "outlook.com", "yahoo.com"]
        );

        let cli = Cli::parse_args_from([
            "mailvet",
            "doctor",
            "--public-ip-url",
            "https://ip.example/?token=tok_hunter2",
        ]);
        assert!(!format!("{cli:?}").contains("tok_hunter2"), "{cli:?}");

        let cli = Cli::parse_args_from(["mailvet", "doctor", "--dnsbl-zones", "none"]);
        let Command::Doctor(doctor) = cli.into_command() else {
            panic!("doctor");
        };
        assert!(doctor.doctor.dnsbl_zones().is_empty());
    }

    #[test]
    fn help_shows_the_groups_as_headings() {
        let help = Cli::command().render_help().to_string();
        for heading in [
            "HTTP:",
            "Keys:",
            "Database:",
            "DNS:",
            "SMTP:",
            "Verification:",
            "Bounces:",
            "Bulk jobs:",
            "Logging:",
        ] {
            assert!(help.contains(heading), "{heading} missing from:\n{help}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let cli = Cli::parse_args_from([
            "mailvet",
            "--helo-name",
            "",
            "--mail-from",
            " ",
            "--public-keys",
            "",
            "--secret-keys",
            "sk_one,,",
            "--cors-origins",
            "",
        ]);
        let settings = cli.settings;
        assert_eq!(settings.smtp.helo_name, None);
        assert_eq!(settings.smtp.mail_from, None);
        assert!(settings.keys.public_keys.is_empty());
        assert_eq!(settings.keys.secret_keys.len(), 1);
        assert_eq!(settings.keys.secret_keys[0].expose_secret(), "sk_one");
        assert!(settings.http.cors_origins.is_empty());

        let cli = Cli::parse_args_from(["mailvet", "check", "a@b.example", "--helo-name", ""]);
        let Command::Check(check) = cli.into_command() else {
            panic!("check");
        };
        assert_eq!(check.settings.smtp.helo_name, None);
    }

    #[test]
    fn durations_and_lists_parse_from_flags() {
        let cli = Cli::parse_from([
            "mailvet",
            "--smtp-timeout",
            "2s 500ms",
            "--dns-servers",
            "127.0.0.1:5353,[::1]:53",
            "--allow-private-targets",
        ]);
        assert_eq!(cli.settings.smtp.timeout, Duration::from_millis(2500));
        assert_eq!(cli.settings.dns.servers.len(), 2);
        assert!(cli.settings.smtp.allow_private_targets);
    }

    #[test]
    fn trusted_proxies_take_ranges_and_single_addresses() {
        let cli = Cli::parse_from(["mailvet", "--trusted-proxies", "10.0.0.0/8,192.168.1.7"]);
        let proxies: Vec<String> = cli
            .settings
            .http
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32"]);
        assert!(Cli::try_parse_from(["mailvet", "--trusted-proxies", "10.0.0.0/33"]).is_err());
    }
}
