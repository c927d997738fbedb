//! The largest domains of an upload, found while it streams in with a
//! fixed amount of memory (the Misra–Gries heavy-hitter summary).
//!
//! A domain's addresses are verified over at most `--per-host` sessions at
//! a time across the cluster, so a domain holding many addresses takes long
//! however many workers are free. Started last, it runs alone at the end
//! of the job; started first, it runs beside everything else. Jobs claim
//! these domains' addresses before the others'.

use std::collections::HashMap;

/// Domains counted at once: any domain holding more than 1/`TRACKED` of
/// the upload's addresses is among them at the end.
const TRACKED: usize = 1024;

/// Domains with at least this many addresses count as large: enough to
/// fill a session with recipients.
pub const LARGE_DOMAIN: u64 = 20;

/// Domains claimed first, at most: every domain counted.
pub const MAX_LARGE_DOMAINS: usize = TRACKED;

/// Counts of the domains that may be the upload's largest.
#[derive(Debug, Default)]
pub struct DomainTally {
    counts: HashMap<String, u64>,
}

impl DomainTally {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one address's domain. Each count is at most the domain's
    /// true number and falls short of it by at most 1/`TRACKED` of the
    /// addresses seen.
    pub fn add(&mut self, domain: &str) {
        if domain.is_empty() {
            return;
        }
        if let Some(count) = self.counts.get_mut(domain) {
            *count += 1;
        } else if self.counts.len() < TRACKED {
            self.counts.insert(domain.to_owned(), 1);
        } else {
            // Full: this address and one of every tracked domain cancel
            // out. Each removal is paid for by an earlier insertion.
            self.counts.retain(|_, count| {
                *count -= 1;
                *count > 0
            });
        }
    }

    /// The domains counted at least [`LARGE_DOMAIN`] times, largest first
    /// (ties by name), at most [`MAX_LARGE_DOMAINS`].
    pub fn large(&self) -> Vec<String> {
        let mut large: Vec<(&String, u64)> = self
            .counts
            .iter()
            .filter(|(_, count)| **count >= LARGE_DOMAIN)
            .map(|(domain, count)| (domain, *count))
            .collect();
        large.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        large
            .into_iter()
            .take(MAX_LARGE_DOMAINS)
            .map(|(domain, _)| domain.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(domains: impl IntoIterator<Item = (String, usize)>) -> DomainTally {
        let mut tally = DomainTally::new();
        // Interleaved, as a real list is: round-robin over the domains.
        let mut left: Vec<(String, usize)> = domains.into_iter().collect();
        while !left.is_empty() {
            for (domain, count) in &mut left {
                tally.add(domain);
                *count -= 1;
            }
            left.retain(|(_, count)| *count > 0);
        }
        tally
    }

    #[test]
    fn large_domains_come_largest_first() {
        let tally = tally([
            ("small.test".to_owned(), 5),
            ("big.test".to_owned(), 400),
            ("bigger.test".to_owned(), 900),
            ("medium.test".to_owned(), 19),
        ]);
        assert_eq!(tally.large(), ["bigger.test", "big.test"]);
    }

    #[test]
    fn large_domains_are_found_among_many_more_small_ones_than_are_tracked() {
        // 20,000 domains of 3 addresses each, and three large ones.
        let mut domains: Vec<(String, usize)> =
            (0..20_000).map(|i| (format!("d{i}.test"), 3)).collect();
        domains.push(("one.test".to_owned(), 1_100));
        domains.push(("two.test".to_owned(), 900));
        domains.push(("three.test".to_owned(), 700));
        let tally = tally(domains);
        assert_eq!(tally.large(), ["one.test", "two.test", "three.test"]);
        assert!(tally.counts.len() <= TRACKED);
    }

    #[test]
    fn addresses_without_a_domain_are_not_counted() {
        let mut tally = DomainTally::new();
        for _ in 0..500 {
            tally.add("");
        }
        assert!(tally.large().is_empty());
    }

    #[test]
    fn no_more_domains_are_named_than_are_counted() {
        let mut domains: Vec<(String, usize)> =
            (0..1_500).map(|i| (format!("d{i:04}.test"), 30)).collect();
        domains.push(("big.test".to_owned(), 5_000));
        let large = tally(domains).large();
        assert!(large.len() <= MAX_LARGE_DOMAINS, "{}", large.len());
        assert_eq!(large[0], "big.test");
    }
}
