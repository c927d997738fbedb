//! Address syntax: RFC 5321 mailboxes (the form that goes into `RCPT TO`),
//! with RFC 6531 UTF-8 local parts and IDNA domains, without obsolete forms,
//! comments or folding white space.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Longest local part, in octets (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_OCTETS: usize = 64;
/// Longest address, in octets: the 256-octet path less its angle brackets
/// (RFC 5321 §4.5.3.1.3, RFC 3696 erratum 1690).
const MAX_ADDRESS_OCTETS: usize = 254;

/// A syntactically valid, normalized email address. Its fields are private:
/// holding one means the address has been parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    /// The local part, its case and quoting kept as given.
    local: String,
    /// The domain in lower case ASCII (IDNA A-labels).
    domain: String,
}

/// Why a string is not an address. The message is for the person who
/// typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("the address is empty")]
    Empty,
    #[error("the address has no @")]
    MissingAt,
    #[error("the part before the @ is empty")]
    EmptyLocalPart,
    #[error("the part before the @ is longer than 64 bytes")]
    LocalPartTooLong,
    #[error("the part before the @ has a character that is not allowed: {0:?}")]
    InvalidLocalCharacter(char),
    #[error("the part before the @ has a misplaced dot")]
    MisplacedDot,
    #[error("the quoted part before the @ is not closed or has an invalid escape")]
    BadQuoting,
    #[error("the domain is empty")]
    EmptyDomain,
    #[error("IP address literals are not accepted as a domain")]
    AddressLiteral,
    #[error("the domain is not a valid domain name")]
    InvalidDomain,
    #[error("the domain has no dot: mail needs a fully qualified domain")]
    DotlessDomain,
    #[error("the domain ends in a number, which no top-level domain does")]
    NumericTopLevelDomain,
    #[error("the address is longer than 254 bytes")]
    TooLong,
}

impl EmailAddress {
    /// Parses and normalizes an address: trims white space, splits at the
    /// last `@`, checks the local part (dot-atom or quoted string, UTF-8
    /// allowed), converts the domain to lower-case ASCII with IDNA, and
    /// checks the length limits.
    pub fn parse(input: &str) -> Result<Self, SyntaxError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(SyntaxError::Empty);
        }
        let (local, domain) = input.rsplit_once('@').ok_or(SyntaxError::MissingAt)?;
        check_local_part(local)?;
        let domain = normalize_domain(domain)?;
        if local.len() + 1 + domain.len() > MAX_ADDRESS_OCTETS {
            return Err(SyntaxError::TooLong);
        }
        Ok(EmailAddress {
            local: local.to_owned(),
            domain,
        })
    }

    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain as lower-case ASCII.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The normalized address: the local part as given, `@`, the ASCII domain.
    pub fn normalized(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    /// The key under which mailvet stores and matches this address: the
    /// normalized address with the local part lower-cased as well. Mailbox
    /// providers treat local parts without regard to case, so a suppression
    /// of `Alice@x.test` also covers `alice@x.test`.
    pub fn key(&self) -> String {
        let mut key = String::with_capacity(self.local.len() + 1 + self.domain.len());
        if self.local.is_ascii() {
            key.extend(self.local.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            key.push_str(&self.local.to_lowercase());
        }
        key.push('@');
        key.push_str(&self.domain);
        key
    }

    /// Whether delivering to this address needs the SMTPUTF8 extension
    /// (a non-ASCII local part; the domain is always ASCII here).
    pub fn needs_smtputf8(&self) -> bool {
        !self.local.is_ascii()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// `atext` of RFC 5322 §3.2.3, extended with all non-ASCII characters by
/// RFC 6531 §3.3.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn check_local_part(local: &str) -> Result<(), SyntaxError> {
    if local.is_empty() {
        return Err(SyntaxError::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL_OCTETS {
        return Err(SyntaxError::LocalPartTooLong);
    }
    if local.starts_with('"') {
        return check_quoted_string(local);
    }
    // Dot-atom: atoms of atext joined by single dots.
    if local.split('.').any(str::is_empty) {
        return Err(SyntaxError::MisplacedDot);
    }
    match local.chars().find(|&c| c != '.' && !is_atext(c)) {
        Some(bad) => Err(SyntaxError::InvalidLocalCharacter(bad)),
        None if local.chars().any(char::is_control) => Err(SyntaxError::InvalidLocalCharacter(
            local.chars().find(|c| c.is_control()).unwrap_or('\0'),
        )),
        None => Ok(()),
    }
}

/// `Quoted-string` of RFC 5321 §4.1.2: `"` (qtextSMTP / quoted-pairSMTP)* `"`,
/// where qtextSMTP is printable ASCII but `"` and `\` (and any non-ASCII
/// character, RFC 6531) and quoted-pairSMTP is `\` then a printable ASCII
/// character or space.
fn check_quoted_string(local: &str) -> Result<(), SyntaxError> {
    let inner = local
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|_| local.len() >= 2)
        .ok_or(SyntaxError::BadQuoting)?;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) if (' '..='~').contains(&escaped) => {}
                _ => return Err(SyntaxError::BadQuoting),
            },
            '"' => return Err(SyntaxError::BadQuoting),
            ' '..='~' => {}
            c if !c.is_ascii() && !c.is_control() => {}
            other => return Err(SyntaxError::InvalidLocalCharacter(other)),
        }
    }
    Ok(())
}

fn normalize_domain(domain: &str) -> Result<String, SyntaxError> {
    if domain.is_empty() {
        return Err(SyntaxError::EmptyDomain);
    }
    if domain.starts_with('[') {
        return Err(SyntaxError::AddressLiteral);
    }
    // UTS 46 non-transitional processing (IDNA 2008 compatible): maps case
    // and width, checks STD3 rules and label lengths, emits A-labels.
    let ascii = Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Verify,
        )
        .map_err(|_| SyntaxError::InvalidDomain)?;
    if ascii.split('.').any(str::is_empty) {
        return Err(SyntaxError::InvalidDomain);
    }
    let Some((_, top)) = ascii.rsplit_once('.') else {
        return Err(SyntaxError::DotlessDomain);
    };
    if top.chars().all(|c| c.is_ascii_digit()) {
        return Err(SyntaxError::NumericTopLevelDomain);
    }
    Ok(ascii.into_owned())
}

/// Why `name` is not a fully qualified domain name fit to give in `EHLO`,
/// or `None` if it is. Receiving servers check the name a client introduces
/// itself with: a bare host name (a container id), `localhost` or an
/// address literal gets probes refused or scored as spam.
pub fn helo_name_problem(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.parse::<std::net::IpAddr>().is_ok() || name.starts_with('[') {
        return Some("it is an IP address, not a name");
    }
    let lowered = name.to_ascii_lowercase();
    if lowered == "localhost" || lowered.ends_with(".localhost") {
        return Some("it is localhost");
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Some("it has no dot: a bare host name, not a fully qualified domain name");
    }
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !labels.iter().all(valid_label) {
        return Some(
            "it is not a valid host name (letters, digits and hyphens in dot-separated labels)",
        );
    }
    let top = labels.last().copied().unwrap_or_default();
    if top.chars().all(|c| c.is_ascii_digit()) {
        return Some("its top-level label is numeric");
    }
    let lowered_top = top.to_ascii_lowercase();
    if matches!(
        lowered_top.as_str(),
        "local" | "localdomain" | "internal" | "lan" | "home" | "invalid"
    ) {
        return Some("it is under a private top-level name that does not resolve on the internet");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &str) -> EmailAddress {
        EmailAddress::parse(input).unwrap_or_else(|err| panic!("{input:?}: {err}"))
    }

    #[test]
    fn the_domain_is_lowercased_and_idna_encoded_and_the_local_case_kept() {
        let address = parsed("  Alice@Bücher.TEST ");
        assert_eq!(address.normalized(), "Alice@xn--bcher-kva.test");
        assert_eq!(address.key(), "alice@xn--bcher-kva.test");
        assert!(!address.needs_smtputf8());
    }

    #[test]
    fn utf8_local_parts_need_smtputf8() {
        let address = parsed("用户@例子.广告");
        assert!(address.needs_smtputf8());
        assert_eq!(address.domain(), "xn--fsqu00a.xn--4rr70v");
    }

    #[test]
    fn valid_addresses() {
        for input in [
            "simple@example.com",
            "very.common@example.com",
            "x@example.com",
            "long.email-address-with-hyphens@and.subdomains.example.com",
            "user.name+tag+sorting@example.com",
            "name/surname@example.com",
            "\"john..doe\"@example.org",
            "\"very.(),:;<>[]\\\".VERY.\\\"very@\\\\ \\\"very\\\".unusual\"@strange.example.com",
            "\" \"@example.org",
            "mailhost!username@example.org",
            "user%example.com@example.org",
            "user-@example.org",
            "#!$%&'*+-/=?^_`{}|~@example.org",
            "Pelé@example.com",
            "δοκιμή@παράδειγμα.δοκιμή",
            "我買@屋企.香港",
            "postmaster@xn--bcher-kva.test",
            "a@b.co",
        ] {
            parsed(input);
        }
    }

    #[test]
    fn invalid_addresses_say_why() {
        let local64 = "a".repeat(64);
        let local65 = "a".repeat(65);
        let label63 = "b".repeat(63);
        let long_domain = format!("{label63}.{label63}.{label63}.com");
        for (input, expected) in [
            ("", SyntaxError::Empty),
            ("   ", SyntaxError::Empty),
            ("Abc.example.com", SyntaxError::MissingAt),
            ("@example.com", SyntaxError::EmptyLocalPart),
            ("user@", SyntaxError::EmptyDomain),
            ("A@b@c@example.com", SyntaxError::InvalidLocalCharacter('@')),
            (
                "a\"b(c)d,e:f;g<h>i[j\\k]l@example.com",
                SyntaxError::InvalidLocalCharacter('"'),
            ),
            (
                "just\"not\"right@example.com",
                SyntaxError::InvalidLocalCharacter('"'),
            ),
            (
                "this is\"not\\allowed@example.com",
                SyntaxError::InvalidLocalCharacter(' '),
            ),
            (".user@example.com", SyntaxError::MisplacedDot),
            ("user.@example.com", SyntaxError::MisplacedDot),
            ("john..doe@example.com", SyntaxError::MisplacedDot),
            ("\"unclosed@example.com", SyntaxError::BadQuoting),
            ("\"bad\\\u{7}escape\"@example.com", SyntaxError::BadQuoting),
            (
                &format!("{local65}@example.com"),
                SyntaxError::LocalPartTooLong,
            ),
            ("user@[192.168.0.1]", SyntaxError::AddressLiteral),
            ("user@[IPv6:2001:db8::1]", SyntaxError::AddressLiteral),
            ("user@localhost", SyntaxError::DotlessDomain),
            ("user@example..com", SyntaxError::InvalidDomain),
            ("user@.example.com", SyntaxError::InvalidDomain),
            ("user@example.com.", SyntaxError::InvalidDomain),
            ("user@-example.com", SyntaxError::InvalidDomain),
            ("user@example-.com", SyntaxError::InvalidDomain),
            ("user@exa_mple.com", SyntaxError::InvalidDomain),
            ("user@exa mple.com", SyntaxError::InvalidDomain),
            (
                &format!("user@{}.com", "c".repeat(64)),
                SyntaxError::InvalidDomain,
            ),
            ("user@192.168.0.1", SyntaxError::NumericTopLevelDomain),
            (&format!("{local64}@{long_domain}"), SyntaxError::TooLong),
        ] {
            assert_eq!(
                EmailAddress::parse(input),
                Err(expected.clone()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn the_length_limits_are_counted_in_octets() {
        // 32 two-octet characters make a 64-octet local part: allowed.
        let at_limit = format!("{}@example.com", "é".repeat(32));
        parsed(&at_limit);
        let over = format!("{}@example.com", "é".repeat(33));
        assert_eq!(
            EmailAddress::parse(&over),
            Err(SyntaxError::LocalPartTooLong)
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A dot-atom local part of 1 to 64 octets.
    fn local_part() -> impl Strategy<Value = String> {
        proptest::string::string_regex(
            "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}){0,2}",
        )
        .expect("a valid regex")
    }

    /// A domain of two to four LDH labels with an alphabetic top label.
    fn domain() -> impl Strategy<Value = String> {
        let label = proptest::string::string_regex("[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?")
            .expect("a valid regex");
        let top = proptest::string::string_regex("[A-Za-z]{2,6}").expect("a valid regex");
        (proptest::collection::vec(label, 1..4), top)
            .prop_map(|(labels, top)| format!("{}.{top}", labels.join(".")))
            // `xn--` labels are Punycode, whose content IDNA checks.
            .prop_filter("no A-labels", |domain| {
                !domain
                    .split('.')
                    .any(|label| label.to_ascii_lowercase().starts_with("xn--"))
            })
    }

    proptest! {
        #[test]
        fn parsing_never_panics(input in any::<String>()) {
            let _ = EmailAddress::parse(&input);
        }

        #[test]
        fn parsing_never_panics_near_the_syntax(input in "[a-zA-Z0-9.@\"\\\\ ()<>\\[\\]:;,é-]{0,80}") {
            let _ = EmailAddress::parse(&input);
        }

        #[test]
        fn well_formed_addresses_parse_and_normalize_stably(local in local_part(), domain in domain()) {
            let input = format!("{local}@{domain}");
            let address = EmailAddress::parse(&input).expect("a well-formed address parses");
            prop_assert_eq!(address.local_part(), local.as_str());
            prop_assert_eq!(address.domain(), domain.to_ascii_lowercase());
            // Normalizing is idempotent, and the key ignores case.
            let again = EmailAddress::parse(&address.normalized()).expect("reparse");
            prop_assert_eq!(&again, &address);
            prop_assert_eq!(address.key(), address.normalized().to_lowercase());
            let shouted = EmailAddress::parse(&input.to_uppercase()).expect("upper case parses");
            prop_assert_eq!(shouted.key(), address.key());
        }

        #[test]
        fn parsed_addresses_respect_the_length_limits(input in "[a-z]{1,70}@[a-z]{1,63}\\.[a-z]{1,63}\\.[a-z]{1,63}\\.[a-z]{2,63}") {
            if let Ok(address) = EmailAddress::parse(&input) {
                prop_assert!(address.local_part().len() <= 64);
                prop_assert!(address.normalized().len() <= 254);
            }
        }

        #[test]
        fn parsed_addresses_never_hold_line_breaks(input in "[a-z\\r\\n\"\\\\]{1,10}@example\\.com") {
            if let Ok(address) = EmailAddress::parse(&input) {
                prop_assert!(!address.normalized().contains(['\r', '\n']));
            }
        }
    }

    #[test]
    fn helo_names_must_be_fully_qualified() {
        for good in ["mx1.example.com", "probe.example.co.uk.", "a-b.example.org"] {
            assert_eq!(helo_name_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "3f2a9c1b7d4e",
            "localhost",
            "box.localhost",
            "192.0.2.1",
            "[192.0.2.1]",
            "host.local",
            "my_host.example.com",
            "-x.example.com",
            "example.123",
            "a..example.com",
        ] {
            assert!(helo_name_problem(bad).is_some(), "{bad:?} passed");
        }
    }
}
