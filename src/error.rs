//! Error helpers shared by every layer.

/// An error and its causes on one line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Many errors print their source in their own message already.
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the database is unavailable")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chains_include_every_cause() {
        let err = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            error_chain(&err),
            "the database is unavailable: connection refused"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading failed: connection refused")]
        struct Echoing(#[source] std::io::Error);
        let err = Echoing(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&err), "reading failed: connection refused");
    }
}
