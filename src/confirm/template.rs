//! The confirmation message: subject, plain text and HTML, compiled in,
//! each replaceable by a file in `--confirm-template-dir` (`subject.txt`,
//! `body.txt`, `body.html`). Placeholders, written `{{name}}`:
//!
//! | placeholder | value |
//! |---|---|
//! | `{{email}}` | the address being confirmed |
//! | `{{link}}` | the confirmation link |
//! | `{{expires_at}}` | when the link stops working (RFC 3339, UTC) |
//! | `{{expires_in}}` | how long the link works, in hours (`48 hours`) |
//!
//! Values are HTML-escaped in `body.html`. Each body must hold `{{link}}`.

use std::path::Path;

const SUBJECT: &str = "Please confirm your email address";

const TEXT: &str = "Hello,

Someone, hopefully you, signed up with this email address ({{email}}).
To confirm that it is yours, please open this link:

{{link}}

The link works for {{expires_in}}, until {{expires_at}}.

If you did not sign up, you can ignore this message: the address will
not be confirmed.

Thank you.
";

const HTML: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>Please confirm your email address</title></head>
<body style=\"font-family: sans-serif; line-height: 1.5; max-width: 36em;\">
<p>Hello,</p>
<p>Someone, hopefully you, signed up with this email address ({{email}}).
To confirm that it is yours, please follow this link:</p>
<p><a href=\"{{link}}\">Confirm my email address</a></p>
<p>The link works for {{expires_in}}, until {{expires_at}}. If it does
not open, copy this address into your browser:<br>{{link}}</p>
<p>If you did not sign up, you can ignore this message: the address will
not be confirmed.</p>
<p>Thank you.</p>
</body>
</html>
";

/// The values of one message's placeholders.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    pub email: &'a str,
    pub link: &'a str,
    pub expires_at: &'a str,
    pub expires_in: &'a str,
}

/// One message, filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The three templates.
#[derive(Debug, Clone)]
pub struct Templates {
    subject: String,
    text: String,
    html: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            subject: SUBJECT.to_owned(),
            text: TEXT.to_owned(),
            html: HTML.to_owned(),
        }
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fill(template: &str, values: &Values<'_>, escape: fn(&str) -> String) -> String {
    template
        .replace("{{email}}", &escape(values.email))
        .replace("{{link}}", &escape(values.link))
        .replace("{{expires_at}}", &escape(values.expires_at))
        .replace("{{expires_in}}", &escape(values.expires_in))
}

impl Templates {
    /// The defaults, with those of `subject.txt`, `body.txt` and
    /// `body.html` that `dir` holds in their place.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let mut templates = Templates::default();
        let invalid =
            |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
        for (name, slot) in [
            ("subject.txt", &mut templates.subject),
            ("body.txt", &mut templates.text),
            ("body.html", &mut templates.html),
        ] {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => *slot = text,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(std::io::Error::new(
                        err.kind(),
                        format!("reading the template {}: {err}", path.display()),
                    ));
                }
            }
        }
        templates.subject = templates.subject.trim().replace(['\r', '\n'], " ");
        for (name, body) in [
            ("body.txt", &templates.text),
            ("body.html", &templates.html),
        ] {
            if !body.contains("{{link}}") {
                return Err(invalid(format!(
                    "the template {name} in {} has no {{{{link}}}}: the message would not \
                     let anyone confirm",
                    dir.display()
                )));
            }
        }
        Ok(templates)
    }

    pub fn render(&self, values: &Values<'_>) -> Rendered {
        Rendered {
            subject: fill(&self.subject, values, str::to_owned),
            text: fill(&self.text, values, str::to_owned),
            html: fill(&self.html, values, escape_html),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            email: "o'neil@example.test",
            link: "https://mailvet.example/confirm/c1.a.b",
            expires_at: "2026-12-03T10:00:00Z",
            expires_in: "48 hours",
        }
    }

    #[test]
    fn the_default_message_holds_the_link_and_the_address() {
        let message = Templates::default().render(&values());
        assert_eq!(message.subject, "Please confirm your email address");
        assert!(
            message
                .text
                .contains("https://mailvet.example/confirm/c1.a.b")
        );
        assert!(message.text.contains("o'neil@example.test"));
        assert!(
            message
                .html
                .contains("href=\"https://mailvet.example/confirm/c1.a.b\"")
        );
        assert!(message.html.contains("o&#39;neil@example.test"));
        assert!(!message.text.contains("{{"));
    }

    #[test]
    fn template_files_replace_the_defaults_and_need_the_link() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("subject.txt"), "Confirm {{email}}\n").expect("write");
        std::fs::write(dir.path().join("body.txt"), "Go to {{link}}").expect("write");
        let templates = Templates::load(dir.path()).expect("templates");
        let message = templates.render(&values());
        assert_eq!(message.subject, "Confirm o'neil@example.test");
        assert_eq!(message.text, "Go to https://mailvet.example/confirm/c1.a.b");
        // body.html was not given: the default stays.
        assert!(message.html.contains("Confirm my email address"));

        std::fs::write(dir.path().join("body.html"), "<p>hello</p>").expect("write");
        let err = Templates::load(dir.path()).expect_err("no link");
        assert!(err.to_string().contains("body.html"), "{err}");
    }
}
