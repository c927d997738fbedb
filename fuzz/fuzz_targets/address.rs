//! The address parser on arbitrary text: never panics, and what it accepts
//! normalizes stably.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvet::address::EmailAddress;

fuzz_target!(|input: &str| {
    if let Ok(address) = EmailAddress::parse(input) {
        let normalized = address.normalized();
        assert!(normalized.len() <= 254, "{normalized}");
        assert!(!normalized.contains(['\r', '\n']), "{normalized:?}");
        let again = EmailAddress::parse(&normalized).expect("a normalized address parses");
        assert_eq!(again, address);
    }
});
