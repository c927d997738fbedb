//! A private Postfix instance on a loopback port: a real MTA for end-to-end
//! tests, configured with a virtual mailbox table and delivering nothing.
//! Needs Debian's postfix package and root (Postfix's master runs as root);
//! see README.md, "Running the tests".

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Postfix {
    pub port: u16,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

const POSTFIX: &str = "/usr/sbin/postfix";

fn require_postfix() {
    assert!(
        Path::new(POSTFIX).exists(),
        "\n\nThe end-to-end tests need Postfix ({POSTFIX}), and it is not installed.\n\
         On Debian/Ubuntu, without starting a system mail service:\n  \
         echo 'postfix postfix/main_mailer_type select No configuration' | sudo debconf-set-selections\n  \
         sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix\n"
    );
    let uid = Command::new("id").arg("-u").output().expect("run id");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the Postfix end-to-end tests run Postfix's master, which needs root"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

impl Postfix {
    /// Starts Postfix hosting `domain` with these mailboxes (`@domain` makes
    /// every address a mailbox: a catch-all), and access-map lines
    /// (`full@example.test 552 5.2.2 Mailbox full`).
    pub fn start(domain: &str, mailboxes: &[&str], access: &[&str]) -> Self {
        Self::start_with(domain, mailboxes, access, &[])
    }

    /// Like [`Postfix::start`], with more `main.cf` lines
    /// (`smtpd_recipient_limit = 30`).
    pub fn start_with(domain: &str, mailboxes: &[&str], access: &[&str], main_cf: &[&str]) -> Self {
        Self::start_inner(domain, mailboxes, access, main_cf, false)
    }

    /// Like [`Postfix::start`], but delivering: a message accepted for a
    /// mailbox is written to its Maildir, which [`Postfix::delivered`]
    /// reads. Nothing is relayed anywhere else.
    pub fn start_delivering(domain: &str, mailboxes: &[&str], access: &[&str]) -> Self {
        Self::start_inner(domain, mailboxes, access, &[], true)
    }

    /// Like [`Postfix::start_delivering`], with more `main.cf` lines
    /// (`smtpd_tls_security_level = may` and its certificate).
    pub fn start_delivering_with(domain: &str, mailboxes: &[&str], main_cf: &[&str]) -> Self {
        Self::start_inner(domain, mailboxes, &[], main_cf, true)
    }

    fn start_inner(
        domain: &str,
        mailboxes: &[&str],
        access: &[&str],
        main_cf: &[&str],
        deliver: bool,
    ) -> Self {
        require_postfix();
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let config = root.join("conf");
        for sub in ["conf", "spool", "data", "vmail"] {
            std::fs::create_dir_all(root.join(sub)).expect("create a Postfix directory");
        }
        // The queue belongs to root; the data directory to postfix.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let chown = Command::new("chown")
            .args(["postfix", &root.join("data").display().to_string()])
            .status()
            .expect("run chown");
        assert!(chown.success());
        if deliver {
            // The virtual delivery agent writes as the mailboxes' owner.
            let chown = Command::new("chown")
                .args(["65534:65534", &root.join("vmail").display().to_string()])
                .status()
                .expect("run chown");
            assert!(chown.success());
        }

        let port = free_port();
        let virtual_transport = if deliver {
            "virtual"
        } else {
            "discard:never delivers"
        };
        let t = root.display();
        let c = config.display();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {t}/spool\n\
             data_directory = {t}/data\n\
             maillog_file = {t}/maillog\n\
             maillog_file_prefixes = /var, /dev/stdout, {t}\n\
             myhostname = mx.{domain}\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             mydestination =\n\
             mynetworks =\n\
             smtpd_peername_lookup = no\n\
             smtp_dns_support_level = disabled\n\
             smtpd_banner = $myhostname ESMTP\n\
             virtual_mailbox_domains = {domain}\n\
             virtual_mailbox_maps = texthash:{c}/vmailbox\n\
             virtual_mailbox_base = {t}/vmail\n\
             virtual_uid_maps = static:65534\n\
             virtual_gid_maps = static:65534\n\
             local_transport = discard:never delivers\n\
             default_transport = discard:never delivers\n\
             virtual_transport = {virtual_transport}\n\
             relay_transport = discard:never delivers\n\
             {}\n",
            main_cf.join("\n")
        );
        let services = [
            "pickup    unix  n - n 60 1 pickup",
            "cleanup   unix  n - n - 0 cleanup",
            "qmgr      unix  n - n 300 1 qmgr",
            "rewrite   unix  - - n - - trivial-rewrite",
            "bounce    unix  - - n - 0 bounce",
            "defer     unix  - - n - 0 bounce",
            "trace     unix  - - n - 0 bounce",
            "verify    unix  - - n - 1 verify",
            "flush     unix  n - n 1000? 0 flush",
            "proxymap  unix  - - n - - proxymap",
            "proxywrite unix - - n - 1 proxymap",
            "showq     unix  n - n - - showq",
            "error     unix  - - n - - error",
            "retry     unix  - - n - - error",
            "discard   unix  - - n - - discard",
            "virtual   unix  - n n - - virtual",
            "tlsmgr    unix  - - n 1000? 1 tlsmgr",
            "anvil     unix  - - n - 1 anvil",
            "scache    unix  - - n - 1 scache",
            "postlog   unix-dgram n - n - 1 postlogd",
        ];
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n  \
             -o smtpd_relay_restrictions=check_recipient_access,texthash:{c}/access,reject_unlisted_recipient,reject_unauth_destination\n{}\n",
            services.join("\n")
        );
        // A value ending in `/` is a Maildir under virtual_mailbox_base.
        let vmailbox: String = mailboxes
            .iter()
            .map(|mailbox| format!("{mailbox} {}/\n", mailbox.replace('@', "_")))
            .collect();
        let access: String = access.iter().map(|line| format!("{line}\n")).collect();
        for (name, text) in [
            ("main.cf", main_cf),
            ("master.cf", master_cf),
            ("vmailbox", vmailbox),
            ("access", access),
        ] {
            std::fs::write(config.join(name), text).expect("write Postfix configuration");
        }
        let started = Command::new(POSTFIX)
            .args(["-c", &config.display().to_string(), "start"])
            .output()
            .expect("run postfix start");
        assert!(
            started.status.success(),
            "postfix start failed: {}{}",
            String::from_utf8_lossy(&started.stdout),
            String::from_utf8_lossy(&started.stderr)
        );
        let postfix = Postfix {
            port,
            config,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        postfix
    }
}

impl Postfix {
    /// The messages delivered to `mailbox` so far (started with
    /// [`Postfix::start_delivering`]), oldest first.
    pub fn delivered(&self, mailbox: &str) -> Vec<String> {
        let maildir = self
            ._dir
            .path()
            .join("vmail")
            .join(mailbox.replace('@', "_"))
            .join("new");
        let mut files: Vec<_> = std::fs::read_dir(&maildir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .collect()
            })
            .unwrap_or_default();
        // In the order they were delivered.
        files.sort_by_key(|path| {
            std::fs::metadata(path)
                .and_then(|meta| meta.modified())
                .ok()
        });
        files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect()
    }

    /// Waits until `mailbox` holds `count` messages (delivery runs behind
    /// the SMTP session), and returns them.
    pub fn wait_for_delivered(&self, mailbox: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let messages = self.delivered(mailbox);
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{mailbox} holds {} messages, not {count}; Postfix's log:\n{}",
                messages.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Postfix's log so far (`maillog_file`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(POSTFIX)
            .args(["-c", &self.config.display().to_string(), "stop"])
            .output();
    }
}
