//! The overview's bounce patterns: rejections that many recipients at one
//! provider met with the same reply in the last 24 hours, sender-side
//! first — what `GET /stats` lists as `bounce_patterns`.

use maud::{Markup, html};

use super::layout::count;
use crate::http::patterns::BouncePattern;

pub(super) fn section(patterns: &[BouncePattern]) -> Markup {
    let sender_side = patterns.iter().filter(|p| p.sender_side).count();
    html! {
        section aria-labelledby="patterns" {
            h2 #patterns { "Bounce patterns" }
            p.hint {
                "Recipients at one provider refused with the same reply in the last 24 hours ("
                (crate::patterns::MIN_RECIPIENTS) " or more). A reply about the sender — a blocklist, "
                "authentication, policy, a rate limit — is a problem with your sending, not with the addresses."
            }
            @if patterns.is_empty() {
                p #no-patterns { "No pattern stands out." }
            } @else {
                @if sender_side > 0 {
                    p { span.badge.bad { "SENDER" } " " (sender_side) " pattern(s) about the sender" }
                }
                div.scroll {
                    table #bounce-patterns {
                        caption { "Bounce patterns, sender-side first" }
                        thead { tr {
                            th scope="col" { "Provider" } th scope="col" { "Reply" }
                            th scope="col" { "Recipients" } th scope="col" { "First seen" }
                            th scope="col" { "Last seen" } th scope="col" { "About" }
                        } }
                        tbody {
                            @for p in patterns {
                                tr {
                                    th scope="row" { (p.provider) }
                                    td {
                                        code { (p.pattern.code) @if let Some(enhanced) = &p.pattern.enhanced_code { " " (enhanced) } }
                                        " " (p.pattern.text)
                                    }
                                    td { (count(p.count)) }
                                    td { (crate::rfc3339::format(&p.first_seen)) }
                                    td { (crate::rfc3339::format(&p.last_seen)) }
                                    td { @if p.sender_side { span.badge.bad { "the sender" } } @else { "the recipients" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
