//! Raw bounce messages (DSN, ARF, human-readable) on arbitrary bytes: never
//! panic, and every recipient found can be classified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvet::bounce::{classify::classify, message};

fuzz_target!(|input: &[u8]| {
    if let Ok(parsed) = message::parse(input) {
        for recipient in &parsed.recipients {
            let _ = classify(recipient);
        }
    }
});
