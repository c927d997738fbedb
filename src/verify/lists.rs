//! Local checks that need no network: disposable domains, role accounts,
//! free providers, and "did you mean" suggestions for typos of big
//! providers' domains.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Domains of the big mailbox providers: free-provider flags and the
/// targets of typo suggestions.
const FREE_PROVIDERS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "yahoo.es",
    "yahoo.it",
    "yahoo.ca",
    "yahoo.com.br",
    "yahoo.co.in",
    "yahoo.co.jp",
    "ymail.com",
    "rocketmail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "hotmail.de",
    "hotmail.it",
    "hotmail.es",
    "outlook.com",
    "outlook.fr",
    "outlook.de",
    "live.com",
    "live.co.uk",
    "live.fr",
    "msn.com",
    "aol.com",
    "aim.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "mail.com",
    "email.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "gmx.at",
    "web.de",
    "t-online.de",
    "freenet.de",
    "yandex.ru",
    "yandex.com",
    "ya.ru",
    "mail.ru",
    "bk.ru",
    "inbox.ru",
    "list.ru",
    "rambler.ru",
    "protonmail.com",
    "proton.me",
    "pm.me",
    "tutanota.com",
    "tuta.io",
    "fastmail.com",
    "zoho.com",
    "zohomail.com",
    "hey.com",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "naver.com",
    "daum.net",
    "hanmail.net",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "laposte.net",
    "sfr.fr",
    "libero.it",
    "virgilio.it",
    "alice.it",
    "tiscali.it",
    "seznam.cz",
    "wp.pl",
    "o2.pl",
    "interia.pl",
    "onet.pl",
    "rediffmail.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "bellsouth.net",
    "cox.net",
    "charter.net",
    "btinternet.com",
    "sky.com",
    "virginmedia.com",
    "bigpond.com",
    "shaw.ca",
    "rogers.com",
    "uol.com.br",
    "bol.com.br",
    "terra.com.br",
];

/// Local parts that name a function rather than a person.
const ROLE_ACCOUNTS: &[&str] = &[
    "abuse",
    "accounting",
    "accounts",
    "admin",
    "administrator",
    "billing",
    "careers",
    "contact",
    "customerservice",
    "do-not-reply",
    "donotreply",
    "enquiries",
    "feedback",
    "finance",
    "help",
    "helpdesk",
    "hello",
    "hostmaster",
    "hr",
    "info",
    "inquiries",
    "jobs",
    "legal",
    "mail",
    "mailer-daemon",
    "marketing",
    "media",
    "news",
    "newsletter",
    "no-reply",
    "noreply",
    "office",
    "orders",
    "postmaster",
    "press",
    "privacy",
    "root",
    "sales",
    "security",
    "service",
    "support",
    "team",
    "webmaster",
];

fn disposable_domains() -> &'static HashSet<&'static str> {
    static DOMAINS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    DOMAINS.get_or_init(|| mailchecker::blacklist().into_iter().collect())
}

/// The domain and each of its parent domains (`a.b.c`, `b.c`, `c`).
fn suffixes(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(domain), |rest| {
        rest.split_once('.').map(|(_, parent)| parent)
    })
}

/// The lists, with the operator's own disposable domains added.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    extra_disposable: HashSet<String>,
}

impl Lists {
    pub fn new(extra_disposable: impl IntoIterator<Item = String>) -> Self {
        Lists {
            extra_disposable: extra_disposable
                .into_iter()
                .map(|domain| domain.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|domain| !domain.is_empty() && !domain.starts_with('#'))
                .collect(),
        }
    }

    /// Reads operator additions: one domain per line, `#` comments.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Self::new(text.lines().map(|line| {
            line.split('#').next().unwrap_or_default().to_owned()
        })))
    }

    /// Whether the domain (or a parent of it) is a disposable-mail service.
    pub fn is_disposable(&self, domain: &str) -> bool {
        suffixes(domain).any(|suffix| {
            disposable_domains().contains(suffix) || self.extra_disposable.contains(suffix)
        })
    }
}

/// Whether the local part is a role account (`info@`, `support+x@`).
pub fn is_role_account(local_part: &str) -> bool {
    let local = local_part.to_lowercase();
    let base = local.split('+').next().unwrap_or_default();
    ROLE_ACCOUNTS.contains(&base)
}

/// Whether the domain belongs to a free mailbox provider.
pub fn is_free_provider(domain: &str) -> bool {
    FREE_PROVIDERS.contains(&domain)
}

/// A corrected domain for a likely typo of a big provider's domain
/// (`gmial.com` → `gmail.com`, `icloud.cmo` → `icloud.com`), or `None`. A
/// domain that is itself a known provider gets no suggestion. Other
/// domains get one only from DNS facts (`suggest.rs`).
pub fn suggest_domain(domain: &str) -> Option<String> {
    if FREE_PROVIDERS.contains(&domain) {
        return None;
    }
    // Allow one edit in short names, two in longer ones.
    let allowed = if domain.len() <= 8 { 1 } else { 2 };
    FREE_PROVIDERS
        .iter()
        .map(|known| (strsim::damerau_levenshtein(domain, known), *known))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_typos_get_the_intended_domain() {
        for (typo, fixed) in [
            ("gmial.com", "gmail.com"),
            ("gmai.com", "gmail.com"),
            ("gmail.con", "gmail.com"),
            ("hotmial.com", "hotmail.com"),
            ("yaho.com", "yahoo.com"),
            ("outlok.com", "outlook.com"),
            ("icloud.cmo", "icloud.com"),
        ] {
            assert_eq!(suggest_domain(typo).as_deref(), Some(fixed), "{typo}");
        }
    }

    #[test]
    fn listed_and_unrelated_domains_get_no_suggestion() {
        for domain in [
            "gmail.com",
            "yahoo.co.uk",
            "ymail.com",
            "example.com",
            "mailvet.dev",
            "example.cm",
            // Slips of the TLD alone are for DNS to confirm (`suggest.rs`).
            "example.cmo",
            "example.ogr",
        ] {
            assert_eq!(suggest_domain(domain), None, "{domain}");
        }
    }

    #[test]
    fn disposable_domains_and_their_subdomains_are_recognised() {
        let lists = Lists::new(["burner.example".to_owned()]);
        assert!(lists.is_disposable("mailinator.com"));
        assert!(lists.is_disposable("10minutemail.com"));
        assert!(lists.is_disposable("x.33mail.com"));
        assert!(lists.is_disposable("burner.example"));
        assert!(lists.is_disposable("sub.burner.example"));
        assert!(!lists.is_disposable("gmail.com"));
        assert!(!lists.is_disposable("example.com"));
    }

    #[test]
    fn operator_additions_are_read_from_a_file_with_comments() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("disposable.txt");
        std::fs::write(
            &path,
            "# our own list\nBurner.Example.\n\nthrowaway.test # added in May\n",
        )
        .expect("write the list");
        let lists = Lists::from_file(&path).expect("read the list");
        assert!(lists.is_disposable("burner.example"));
        assert!(lists.is_disposable("x.throwaway.test"));
        assert!(!lists.is_disposable("example.com"));
        assert!(Lists::from_file(&dir.path().join("missing.txt")).is_err());
    }

    #[test]
    fn role_accounts_ignore_case_and_tags() {
        assert!(is_role_account("Info"));
        assert!(is_role_account("support+billing"));
        assert!(is_role_account("no-reply"));
        assert!(!is_role_account("alice"));
        assert!(!is_role_account("information"));
    }

    #[test]
    fn free_providers_are_flagged() {
        assert!(is_free_provider("gmail.com"));
        assert!(!is_free_provider("example.com"));
    }
}
