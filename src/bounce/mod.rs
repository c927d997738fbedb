//! Bounce reports: what a delivery failure says about a recipient.

crate::verify::snake_case_enum! {
    /// The class of a bounce report for one recipient.
    BounceKind, "bounce kind" {
        /// A permanent failure of the recipient: suppress at once.
        Hard => "hard",
        /// A temporary failure: counted, suppressed only when repeated.
        Soft => "soft",
        /// A spam complaint (ARF feedback report or an ESP complaint event).
        Complaint => "complaint",
        /// A failure that says nothing about the recipient (the sender was
        /// blocked, a policy rejection) or that could not be classified.
        Undetermined => "undetermined",
    }
}

crate::verify::snake_case_enum! {
    /// Where a bounce report came from.
    BounceOrigin, "bounce origin" {
        /// A JSON report posted to `POST /bounces`.
        Json => "json",
        /// A raw bounce message (RFC 3464 DSN or a plain-text bounce).
        Message => "message",
        Ses => "ses",
        Sendgrid => "sendgrid",
        Postmark => "postmark",
        Mailgun => "mailgun",
    }
}
