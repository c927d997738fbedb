//! `POST /bounces/{provider}`: the bounce and complaint webhooks of Amazon
//! SES (through SNS), SendGrid, Postmark and Mailgun.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::sns::{SnsError, is_sns_url};
use super::{ApiError, AppState, WebhookSigning};
use crate::bounce::ReportedRecipient;
use crate::bounce::signature;
use crate::bounce::webhooks::{self, SesNotice, WebhookError};
use crate::outbound::Outbound;
use crate::secret::ExposeSecret;
use crate::vocab::BounceOrigin;

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        ApiError::invalid(err.to_string())
    }
}

/// `POST /bounces/{provider}`.
pub async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_signature(&state, &provider, &headers, &body)?;
    if provider == "ses" {
        verify_sns(&state, &body).await?;
    }
    let (origin, recipients): (BounceOrigin, Vec<ReportedRecipient>) = match provider.as_str() {
        "ses" => match webhooks::parse_ses(&body)? {
            SesNotice::SubscriptionConfirmation {
                topic_arn,
                subscribe_url,
            } => {
                confirm_sns_subscription(&state.outbound, &topic_arn, &subscribe_url).await?;
                return Ok(Json(json!({"status": "subscription_confirmed"})).into_response());
            }
            SesNotice::Recipients(recipients) => (BounceOrigin::Ses, recipients),
            SesNotice::Ignored(what) => {
                tracing::debug!(what, "SES notification ignored");
                (BounceOrigin::Ses, Vec::new())
            }
        },
        "sendgrid" => (BounceOrigin::Sendgrid, webhooks::parse_sendgrid(&body)?),
        "postmark" => (BounceOrigin::Postmark, webhooks::parse_postmark(&body)?),
        "mailgun" => (BounceOrigin::Mailgun, webhooks::parse_mailgun(&body)?),
        other => {
            return Err(ApiError::not_found(format!(
                "no webhook for provider `{other}`: use ses, sendgrid, postmark or mailgun"
            )));
        }
    };
    let report = crate::bounce::intake::record(
        &state.suppressions,
        state.verifier.bounce_patterns(),
        origin,
        recipients,
    )
    .await?;
    Ok(Json(report).into_response())
}

/// Refuses an SNS message (a JSON object with a `Type`) that SNS did not
/// sign (401 `invalid_signature`), one for a topic not accepted (403), and
/// says so when the signing certificate cannot be fetched (502). Anything
/// else is left to the SES reader: a bare SES notification, or a body that
/// is not JSON, which it refuses with 422.
async fn verify_sns(state: &AppState, body: &[u8]) -> Result<(), ApiError> {
    let Ok(message) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    if message.get("Type").is_none() {
        return Ok(());
    }
    state.sns.verify(&message).await.map_err(|err| {
        tracing::warn!(error = %err, "SNS message refused");
        match err {
            SnsError::Invalid(why) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", why)
            }
            SnsError::TopicNotAllowed(why) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", why)
            }
            SnsError::Unavailable(why) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", why)
            }
        }
    })
}

/// With a signing key configured for the provider, refuses (401
/// `invalid_signature`) a webhook that is not signed with it.
fn check_signature(
    state: &AppState,
    provider: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let now = chrono::Utc::now();
    let checked = match (provider, &state.webhook_signing) {
        (
            "mailgun",
            WebhookSigning {
                mailgun: Some(key), ..
            },
        ) => signature::verify_mailgun(body, key.expose_secret(), now),
        (
            "sendgrid",
            WebhookSigning {
                sendgrid: Some(key),
                ..
            },
        ) => {
            let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
            signature::verify_sendgrid(
                body,
                header("x-twilio-email-event-webhook-signature"),
                header("x-twilio-email-event-webhook-timestamp"),
                key,
                now,
            )
        }
        _ => return Ok(()),
    };
    let refused = |why: String| {
        tracing::warn!(provider, error = %why, "webhook refused");
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", why)
    };
    checked.map_err(|err| refused(err.to_string()))?;
    if provider == "mailgun" && !first_use_of_mailgun_token(state, body) {
        return Err(refused(
            "this Mailgun signature was already used: a signature covers only its timestamp and \
             token, so a second event carrying it is a replay"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Mailgun signs only a timestamp and a token, not the event: a captured
/// signature could carry any event while its timestamp is fresh. Each
/// token is taken once within the window a timestamp is accepted.
fn first_use_of_mailgun_token(state: &AppState, body: &[u8]) -> bool {
    let token = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["signature"]["token"].as_str().map(str::to_owned));
    match token {
        Some(token) => state.mailgun_tokens.entry(token).or_insert(()).is_fresh(),
        None => true,
    }
}

/// Confirms an SNS subscription by fetching its `SubscribeURL`.
async fn confirm_sns_subscription(
    outbound: &Outbound,
    topic_arn: &str,
    subscribe_url: &str,
) -> Result<(), ApiError> {
    if !is_sns_url(subscribe_url) {
        return Err(ApiError::invalid(
            "the SubscribeURL is not an Amazon SNS address (https://sns.<region>.amazonaws.com/…); not fetched",
        ));
    }
    let request = outbound
        .request(reqwest::Method::GET, subscribe_url)
        .map_err(|err| ApiError::invalid(err.to_string()))?;
    let response = outbound.send(request).await.map_err(|err| {
        tracing::warn!(topic_arn, error = %err, "confirming the SNS subscription failed");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!("confirming the SNS subscription failed: {err}"),
        )
    })?;
    if !response.status().is_success() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!(
                "Amazon SNS answered {} to the confirmation",
                response.status()
            ),
        ));
    }
    tracing::info!(topic_arn, "SNS subscription confirmed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_amazon_sns_urls_are_fetched() {
        assert!(is_sns_url(
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=x"
        ));
        assert!(is_sns_url(
            "https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription"
        ));
        for forged in [
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com.evil.example/",
            "https://evil.example/sns.us-west-2.amazonaws.com",
            "https://169.254.169.254/latest/meta-data/",
            "https://sns.us-west-2.amazonaws.com:8443/",
            "https://user@127.0.0.1/",
            "not a url",
        ] {
            assert!(!is_sns_url(forged), "{forged}");
        }
    }
}
