//! ESP webhooks: Amazon SES (through SNS), SendGrid, Postmark, Mailgun.
