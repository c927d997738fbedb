//! The frame of every dashboard page: head, navigation, sign-out, and the
//! small helpers pages share (numbers for people, the CSRF field), and the
//! error page.

use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::{Session, UiError};

/// The pages in the navigation, in order: `(path, label)`. A new page is a
/// line here and its routes in `ui::router`.
pub const NAV: &[(&str, &str)] = &[
    ("/ui/", "Overview"),
    ("/ui/verify", "Verify"),
    ("/ui/jobs", "Jobs"),
    ("/ui/suppressions", "Suppressions"),
    ("/ui/signup", "Signup form"),
];

/// A whole page: `active` is the path of its navigation entry.
pub fn page(title: &str, active: Option<&str>, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mailvet" }
                link rel="icon" type="image/svg+xml" href=(super::assets::url("favicon.svg"));
                link rel="stylesheet" href=(super::assets::url("ui.css"));
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "mailvet" }
                    nav aria-label="Dashboard" {
                        ul {
                            @for (path, label) in NAV {
                                li {
                                    @if active == Some(*path) {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(session) = session {
                        form.logout method="post" action="/ui/logout" {
                            (csrf_field(session))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// A count as people read it: `12,345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A share as a percentage with one decimal: `2.5 %`.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// A span of seconds as people read it: `45 s`, `3 min 20 s`, `2 h 5 min`.
pub fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, (seconds % 3600) / 60),
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body = html! {
            h1 { (self.title) }
            p.notice.error role="alert" { (self.message) }
            p { a href="/ui/" { "Back to the overview" } }
        };
        let page = page(self.title, None, self.session.as_ref(), body);
        (self.status, page).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(12_345), "12,345");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(4.4), "4 s");
        assert_eq!(duration(200.0), "3 min 20 s");
        assert_eq!(duration(7500.0), "2 h 5 min");
    }
}
