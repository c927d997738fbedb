//! The ESP webhook parsers on arbitrary bytes: never panic, never more
//! recipients than the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvet::bounce::webhooks::{self, MAX_RECIPIENTS, SesNotice};

fuzz_target!(|input: &[u8]| {
    if let Ok(SesNotice::Recipients(recipients)) = webhooks::parse_ses(input) {
        assert!(recipients.len() <= MAX_RECIPIENTS);
    }
    for parse in [webhooks::parse_sendgrid, webhooks::parse_postmark, webhooks::parse_mailgun] {
        if let Ok(recipients) = parse(input) {
            assert!(recipients.len() <= MAX_RECIPIENTS);
        }
    }
});
