//! The SMTP reply parser and the classifier on arbitrary text: never panic,
//! and no 4xx reply is ever undeliverable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvet::smtp::SmtpReply;
use mailvet::verify::{Stage, classify_reply};
use mailvet::vocab::Status;

fuzz_target!(|input: &str| {
    if let Ok(reply) = SmtpReply::parse(input) {
        for stage in [Stage::Greeting, Stage::Ehlo, Stage::MailFrom, Stage::RcptTo] {
            let reason = classify_reply(stage, &reply);
            if reply.is_transient() || stage != Stage::RcptTo {
                assert_ne!(reason.status(), Status::Undeliverable, "{input:?} at {stage:?}");
            }
        }
    }
});
