//! A corpus of REAL SMTP replies, as sent by real mail servers, and the verdict
//! the reply classifier must give for each.
//!
//! Every row is a reply copied from a public source (provider documentation, a
//! mail server's own docs or source, a published bounce or session log), named
//! in the `// source:` comment above it. Personal addresses are replaced by
//! example ones; everything else is kept as the source shows it, including
//! placeholders the source itself put in (`x.xx.xx.xx`, `[#]`). Where the
//! source shows a multi-line reply flattened onto one line (a Postfix bounce
//! report), the CRLF line breaks are restored at the `NNN-` markers.
//!
//! The stage is where a verifier meets the reply. A few sources show a reply
//! after DATA; those rows say so, and are tested at RCPT TO because the text
//! must be read the same way wherever it arrives.
//!
//! The non-negotiable rule, tested over the whole table: a temporary (4xx)
//! reply, or a refusal about the sender or the connection, never makes an
//! address undeliverable.

use mailvet::smtp::SmtpReply;
use mailvet::verify::{Stage, classify_reply};
use mailvet::vocab::{Reason, Status};

type Row = (Stage, &'static str, Reason);

/// The corpus, grouped by the verdict a careful postmaster would give.
fn corpus() -> Vec<Row> {
    vec![
        // ------------------------------------------------------------------
        // Accepted: RCPT TO answered 2xx.
        // ------------------------------------------------------------------
        // source: Gmail session transcript in github.com/ransford/mailverify README.md
        (
            Stage::RcptTo,
            "250 2.1.5 OK r88si6832467pfa.128 - gsmtp",
            Reason::Accepted,
        ),
        // source: learn.microsoft.com/exchange/mail-flow/test-smtp-with-telnet (Exchange Server, RCPT TO success)
        (Stage::RcptTo, "250 2.1.5 Recipient OK", Reason::Accepted),
        // source: Postfix session in github.com/584F525F/584F525F.github.io docs/Cyber_Offensive/Services/SMTP.md
        (Stage::RcptTo, "250 2.1.5 Ok", Reason::Accepted),
        // source: RFC 5321 Appendix D.1 (typical SMTP transaction scenario)
        (Stage::RcptTo, "250 OK", Reason::Accepted),
        // ------------------------------------------------------------------
        // MailboxNotFound: the recipient does not exist.
        // ------------------------------------------------------------------
        // source: smtpfieldmanual.com, github.com/ActiveCampaign/smtp-field-manual data/codes/550.json (Gmail 5.1.1)
        (
            Stage::RcptTo,
            "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser - gsmtp",
            Reason::MailboxNotFound,
        ),
        // source: spamresource.com/2023/09/microsoft-multiple-types-of-invalid.html (Office 365)
        (
            Stage::RcptTo,
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient user@example.com not found by SMTP address lookup",
            Reason::MailboxNotFound,
        ),
        // source: github.com/zone-eu/zone-mta pull #214 ("seen in the wild"); Directory Based Edge Blocking,
        // listed as "The recipient's address doesn't exist" in learn.microsoft.com "Email non-delivery reports
        // and SMTP errors in Exchange Online"
        (
            Stage::RcptTo,
            "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [PR2FRA01FT009.eop-fra01.prod.protection.outlook.com]",
            Reason::MailboxNotFound,
        ),
        // source: pastebin.com/32NXKByX (Exchange Online NDR, older DBEB wording)
        (
            Stage::RcptTo,
            "550 5.4.1 [user@example.com]: Recipient address rejected: Access denied [CY1GCC01FT007.eop-gcc01.prod.protection.outlook.com]",
            Reason::MailboxNotFound,
        ),
        // source: spamresource.com/2023/09/microsoft-multiple-types-of-invalid.html (Outlook.com consumer; the
        // "mailbox unavailable" text is RFC 5321's, and Microsoft documents it as "similar to 550 5.1.10")
        (
            Stage::RcptTo,
            "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [HE1EUR01FT020.eop-EUR01.prod.protection.outlook.com 2023-09-19T15:05:34.324Z 08DBB71928CA8F8E]",
            Reason::MailboxNotFound,
        ),
        // source: learn.microsoft.com/exchange/mail-flow/test-smtp-with-telnet (Exchange Server, RCPT TO failure)
        (
            Stage::RcptTo,
            "550 5.1.1 User unknown",
            Reason::MailboxNotFound,
        ),
        // source: github.com/gregkh/usbutils issue #145 (Exim front end relaying an Exchange
        // RESOLVER reply from a recipient callout; line breaks restored from the Postfix report)
        (
            Stage::RcptTo,
            "550-Callout verification failed:\r\n550-550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP\r\n550 address lookup",
            Reason::MailboxNotFound,
        ),
        // source: senders.yahooinc.com/smtp-error-codes (sample failure notice; archived in
        // github.com/azumakuniyuki/feb-2024-no-auth-no-entry). The sample shows it after the message was sent.
        (
            Stage::RcptTo,
            "554 delivery error: dd This user doesn't have a yahoo.com account (testing123@yahoo.com) [-5] - mta123.mail.mud.yahoo.com",
            Reason::MailboxNotFound,
        ),
        // source: github.com/sisimai/go-sisimai rhost/for-apple.go (iCloud)
        (
            Stage::RcptTo,
            "550 5.1.1 unknown or illegal alias: user@icloud.com",
            Reason::MailboxNotFound,
        ),
        // source: smtp-field-manual data/codes/550.json (iCloud)
        (
            Stage::RcptTo,
            "550 5.1.1 <example@icloud.com>: user does not exist",
            Reason::MailboxNotFound,
        ),
        // source: /work/shared/POSTFIX.md (Postfix 3.7, virtual_mailbox_maps)
        (
            Stage::RcptTo,
            "550 5.1.1 <x@example.test>: Recipient address rejected: User unknown in virtual mailbox table",
            Reason::MailboxNotFound,
        ),
        // source: github.com/docker-mailserver/docker-mailserver issue #1310 (Postfix log)
        (
            Stage::RcptTo,
            "550 5.1.1 <test@example.com>: Recipient address rejected: User unknown in local recipient table",
            Reason::MailboxNotFound,
        ),
        // source: LKML, Russell King, patch removing nbd@openwrt.org from MAINTAINERS (Exim bounce
        // "SMTP error from remote mail server after RCPT TO", host util-01.infra.openwrt.org)
        (
            Stage::RcptTo,
            "550 Unrouteable address",
            Reason::MailboxNotFound,
        ),
        // source: RFC 5321 Appendix D.1; the same text is cPanel Exim's ("550 - No Such User Here",
        // clients.paymonthlyhosting.co.uk knowledgebase "I cannot send or receive emails")
        (
            Stage::RcptTo,
            "550 No such user here",
            Reason::MailboxNotFound,
        ),
        // source: linux-media mailing list, Jacopo Mondi, "[PATCH 00/25] media: ov5647: Support RaspberryPi
        // Camera Module v1", 23 Jun 2020 (Sendmail-style bounce quoted in the cover letter)
        (
            Stage::RcptTo,
            "550 5.1.1 <user@example.com>... User unknown",
            Reason::MailboxNotFound,
        ),
        // source: LKML, David Woodhouse, Exim reject log of lists.infradead.org, 19 Nov 2006
        // (qmail + chkuser answering a RCPT TO callout)
        (
            Stage::RcptTo,
            "511 sorry, no mailbox here by that name (#5.1.1 - chkuser)",
            Reason::MailboxNotFound,
        ),
        // source: smtp-field-manual data/codes/550.json (Barracuda)
        (
            Stage::RcptTo,
            "550 cuda_nsu 5.1.1 <email@example.com>... User unknown",
            Reason::MailboxNotFound,
        ),
        // source: smtp-field-manual data/codes/550.json (Proofpoint)
        (
            Stage::RcptTo,
            "550 5.1.1 <email@example>: Recipient address rejected: User unknown",
            Reason::MailboxNotFound,
        ),
        // source: smtp-field-manual data/codes/550.json (Symantec Email Security.cloud)
        (
            Stage::RcptTo,
            "550 Invalid recipient <email@example.com> (#5.1.1)",
            Reason::MailboxNotFound,
        ),
        // source: github.com/OpenSMTPD/OpenSMTPD issue #658 (session transcript)
        (
            Stage::RcptTo,
            "550 Invalid recipient",
            Reason::MailboxNotFound,
        ),
        // source: github.com/sendgrid/docs source/Classroom/Track/Bounces/common_smtp_server_bounce_responses.md;
        // RFC 5321 §4.2.2's canonical 550 text, the one generic 5xx that still means "no such mailbox"
        (
            Stage::RcptTo,
            "550 Requested action not taken: mailbox unavailable",
            Reason::MailboxNotFound,
        ),
        // source: smtp-field-manual data/codes/550.json (AT&T). 5.2.1 would say "disabled", but the
        // text says the addressee is unknown, which is the stronger evidence.
        (
            Stage::RcptTo,
            "550 5.2.1 <EXAMPLE@PRODIGY.NET>... Addressee unknown, relay=[x.xx.xx.xx]",
            Reason::MailboxNotFound,
        ),
        // source: smtp-field-manual data/codes/552.json (Verizon Media / Yahoo). 552 usually means storage,
        // but the text says the mailbox was not found.
        (
            Stage::RcptTo,
            "552 1 Requested mail action aborted, mailbox not found",
            Reason::MailboxNotFound,
        ),
        // ------------------------------------------------------------------
        // MailboxDisabled: the mailbox exists but is disabled or inactive.
        // ------------------------------------------------------------------
        // source: smtp-field-manual data/codes/550.json (Gmail 5.2.1)
        (
            Stage::RcptTo,
            "550 5.2.1 The email account that you tried to reach is disabled. Learn more at https://support.google.com/mail/?p=DisabledUser - gsmtp",
            Reason::MailboxDisabled,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2026-02-15 in github.com/azumakuniyuki/feb-2024-no-auth-no-entry)
        (
            Stage::RcptTo,
            "550 5.2.1 The email account that you tried to reach is inactive. For more information, go to https://support.google.com/mail/?p=DisabledUser",
            Reason::MailboxDisabled,
        ),
        // source: smtp-field-manual data/codes/554.json (Verizon Media / Yahoo, 554.30)
        (
            Stage::RcptTo,
            "554 delivery error: dd Sorry, your message to example@example.com cannot be delivered. This mailbox is disabled (554.30). - example.yahoo.com",
            Reason::MailboxDisabled,
        ),
        // source: github.com/sisimai/go-sisimai rhost/for-yahooinc.go (AOL Japan, 554.30)
        (
            Stage::RcptTo,
            "554 30 Sorry, your message to user@aol.jp cannot be delivered. This mailbox is disabled (554.30)",
            Reason::MailboxDisabled,
        ),
        // source: smtp-field-manual data/codes/550.json (Mail.ru). "invalid mailbox" is generic; the
        // specific cause given is a disabled account.
        (
            Stage::RcptTo,
            "550 Message was not accepted -- invalid mailbox. Local mailbox example@mail.ru is unavailable: account is disabled",
            Reason::MailboxDisabled,
        ),
        // source: github.com/sisimai/go-sisimai rhost/for-apple.go (iCloud). Judgement call: the code is
        // 5.1.1 but the text says the address is inactive, i.e. it exists and is switched off.
        (
            Stage::RcptTo,
            "550 5.1.1 <user@icloud.com>: inactive email address",
            Reason::MailboxDisabled,
        ),
        // ------------------------------------------------------------------
        // MailboxFull: the recipient's own storage is exhausted.
        // ------------------------------------------------------------------
        // source: smtp-field-manual data/codes/552.json (Gmail 5.2.2)
        (
            Stage::RcptTo,
            "552 5.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaPerm - gsmtp",
            Reason::MailboxFull,
        ),
        // source: smtp-field-manual data/codes/452.json (Gmail 4.2.2)
        (
            Stage::RcptTo,
            "452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp",
            Reason::MailboxFull,
        ),
        // source: github.com/mailcow/mailcow-dockerized issue #6486 (Gmail, "in reply to RCPT TO";
        // line breaks restored from the Postfix log)
        (
            Stage::RcptTo,
            "452-4.2.2 The recipient's inbox is out of storage space. Please direct the\r\n452-4.2.2 recipient to\r\n452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp ffacd0b85a97d-39eae95fd4dsi5128733f8f.130 - gsmtp",
            Reason::MailboxFull,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2026-02-15). Judgement call: full AND
        // inactive; 5.2.2 and "out of storage" lead, and Risky is the cautious verdict.
        (
            Stage::RcptTo,
            "552 5.2.2 The recipient's inbox is out of storage space and inactive. Please direct the recipient to Manage files in your Google Drive storage.",
            Reason::MailboxFull,
        ),
        // source: smtp-field-manual data/codes/552.json (iCloud)
        (
            Stage::RcptTo,
            "552 5.2.2 <example@icloud.com>: user is overquota",
            Reason::MailboxFull,
        ),
        // source: /work/shared/POSTFIX.md (Postfix access-map reply)
        (
            Stage::RcptTo,
            "552 5.2.2 <full@example.test>: Recipient address rejected: Mailbox full",
            Reason::MailboxFull,
        ),
        // source: smtp-field-manual data/codes/554.json (Free.fr). 554, yet plainly a full mailbox.
        (
            Stage::RcptTo,
            "554 5.2.2 <example@free.fr>: Recipient address rejected: Quota exceeded (mailbox for user is full)",
            Reason::MailboxFull,
        ),
        // source: smtp-field-manual data/codes/552.json (Yandex)
        (
            Stage::RcptTo,
            "552 5.2.2 Mailbox size limit exceeded",
            Reason::MailboxFull,
        ),
        // source: smtp-field-manual data/codes/552.json (GMX; postmaster.gmx.net/en/error-messages)
        (
            Stage::RcptTo,
            "552 Requested mail action aborted: exceeded storage allocation Quota exceeded.",
            Reason::MailboxFull,
        ),
        // source: smtp-field-manual data/codes/552.json (Orange). 5.1.1 in the code, but the text (French
        // and English) says the recipient's box is full: not evidence that it is missing.
        (
            Stage::RcptTo,
            "552 5.1.1 Boite du destinataire pleine. Recipient overquota. OFR_417 [417]",
            Reason::MailboxFull,
        ),
        // source: github.com/sendgrid/docs common_smtp_server_bounce_responses.md (452 examples)
        (Stage::RcptTo, "452 4.2.2 Over Quota", Reason::MailboxFull),
        // source: github.com/sendgrid/docs common_smtp_server_bounce_responses.md (552 example). Judgement
        // call: "too large OR mailbox full"; at RCPT TO no message has been sent, so the mailbox is the cause.
        (
            Stage::RcptTo,
            "552 5.2.2 This message is larger than the current system limit or the recipient's mailbox is full. Create a shorter message body or remove attachments and try sending it again.",
            Reason::MailboxFull,
        ),
        // ------------------------------------------------------------------
        // Blocked: about the sender, our IP, our identity or our content.
        // Never evidence about the mailbox, whatever the code.
        // ------------------------------------------------------------------
        // source: smtp-field-manual data/codes/550.json (Gmail, low domain reputation)
        (
            Stage::RcptTo,
            "550 5.7.1 [x.xx.xx.xx] Our system has detected that this message is likely suspicious due to the very low reputation of the sending domain. To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/188131 for more information. - gsmtp",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/550.json (Gmail, DMARC)
        (
            Stage::RcptTo,
            "550 5.7.1 Unauthenticated email from example.com is not accepted due to domain's DMARC policy. Please contact the administrator of example.com domain if this was a legitimate mail. Please visit https://support.google.com/mail/answer/2451690 to learn about the DMARC initiative. - gsmtp",
            Reason::Blocked,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2023-03-06)
        (
            Stage::RcptTo,
            "550 5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked. For more information, visit Why has Gmail blocked my messages?",
            Reason::Blocked,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2023-03-06)
        (
            Stage::RcptTo,
            "550 5.7.1 The IP you're using to send mail is not authorized to send email directly to our servers. Please use the SMTP relay at your service provider instead. For more information, visit 'The IP you're using to send email is not authorized...'.",
            Reason::Blocked,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2026-02-15, PTR requirement)
        (
            Stage::RcptTo,
            "550 5.7.25 This message was blocked because the sending IP address doesn't have a PTR record, or the forwarding DNS entry doesn't reference the sending IP address. Gmail requires that sending IP addresses have a PTR record.",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/421.json (Gmail, temporary reputation block)
        (
            Stage::RcptTo,
            "421 4.7.0 [x.xx.xx.xx] Our system has detected that this message is suspicious due to the very low reputation of the sending domain. To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/188131 for more information. - gsmtp",
            Reason::Blocked,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2023-03-06). Judgement call: "unusual
        // rate" but the action is a temporary block for unsolicited mail, a reputation verdict.
        (
            Stage::RcptTo,
            "421 4.7.0 Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily blocked. For more information, visit Prevent mail to Gmail users from being blocked or sent to spam.",
            Reason::Blocked,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2023-03-06). A complaint about our HELO.
        (
            Stage::Ehlo,
            "501 5.5.4 HELO/EHLO argument is invalid. For more information, visit HELO/EHLO email error.",
            Reason::Blocked,
        ),
        // source: pastebin.com/JxYau839 (Exim bounce, "SMTP error from remote mail server after RCPT TO",
        // Exchange Online 5.7.606-649 banned sending IP)
        (
            Stage::RcptTo,
            "550 5.7.606 Access denied, banned sending IP [199.250.222.182]. To request removal from this list please visit https://sender.office.com/ and follow the directions. For more information please go to http://go.microsoft.com/fwlink/?LinkID=526655 (AS16012609)",
            Reason::Blocked,
        ),
        // source: pastebin.com/rwzHX08U (Outlook.com, "in reply to MAIL FROM command")
        (
            Stage::MailFrom,
            "550 5.7.1 Unfortunately, messages from [204.11.58.44] weren't sent. Please contact your Internet service provider since part of their network is on our block list (AS3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [BY2NAM01FT030.eop-nam01.prod.protection.outlook.com]",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/550.json (Outlook, Spamhaus-listed MAIL FROM domain)
        (
            Stage::MailFrom,
            "550 5.7.1 Service unavailable, MailFrom domain is listed in Spamhaus. To request removal from this list see https://www.spamhaus.org/query/lookup/ (S8002) [#.eop-nam02.prod.protection.outlook.com]",
            Reason::Blocked,
        ),
        // source: learn.microsoft.com "Fix email delivery issues for error code 550 5.4.1 in Exchange Online"
        // (shown there as "#550 5.4.1 Relay Access Denied ##"; the NDR's # markers are dropped). Same
        // 5.4.1 as DBEB above, but a relay refusal says nothing about the mailbox.
        (
            Stage::RcptTo,
            "550 5.4.1 Relay Access Denied",
            Reason::Blocked,
        ),
        // source: learn.microsoft.com/exchange/mail-flow/test-smtp-with-telnet (Exchange Server, MAIL FROM failure)
        (
            Stage::MailFrom,
            "530 5.7.1 Client was not authenticated",
            Reason::Blocked,
        ),
        // source: learn.microsoft.com/exchange/mail-flow/test-smtp-with-telnet (Exchange Server, EHLO failure).
        // A complaint about our HELO name.
        (
            Stage::Ehlo,
            "501 5.5.4 Invalid domain name",
            Reason::Blocked,
        ),
        // source: github.com/sisimai/go-sisimai rhost/for-yahooinc.go (Yahoo BL21, Spamhaus)
        (
            Stage::RcptTo,
            "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.25, because the ip is in Spamhaus's list; see http://postmaster.yahoo.com/550-bl23.html",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/550.json (Verizon)
        (
            Stage::RcptTo,
            "550 relaying denied for <example@example.com>",
            Reason::Blocked,
        ),
        // source: github.com/minosiants/pencil issue #57 (iCloud CS01; shown after DATA in
        // github.com/chatmail/relay issue #446)
        (
            Stage::RcptTo,
            "554 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/554.json (iCloud)
        (
            Stage::RcptTo,
            "554 5.7.1 <example@icloud.com>: Relay access denied",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/550.json (iCloud, Spamhaus DBL)
        (
            Stage::RcptTo,
            "550 5.7.1 Your email was rejected due to having a domain present in the Spamhaus DBL -- see https://www.spamhaus.org/dbl/",
            Reason::Blocked,
        ),
        // source: github.com/zone-eu/zone-mta issue #301 (iCloud MX behind Proofpoint, "Invalid greeting")
        (
            Stage::Greeting,
            "554 5.7.0 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=1.1.1.1",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/550.json (Proofpoint)
        (Stage::RcptTo, "550 5.7.1 Relaying denied", Reason::Blocked),
        // source: /work/shared/POSTFIX.md (Postfix, domain it does not host)
        (
            Stage::RcptTo,
            "554 5.7.1 <x@other.test>: Relay access denied",
            Reason::Blocked,
        ),
        // source: github.com/sisimai/rb-sisimai issue #97 (Postfix 3.1, reject_unknown_client, "in reply to RCPT TO")
        (
            Stage::RcptTo,
            "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.22]",
            Reason::Blocked,
        ),
        // source: github.com/omega8cc/boa issue #532 (Postfix, "in reply to RCPT TO")
        (
            Stage::RcptTo,
            "550 5.7.1 Client host rejected: cannot find your hostname, [111.11.111.11]",
            Reason::Blocked,
        ),
        // source: pastebin.com/HxJ9vMwM (Postfix check_client_access)
        (
            Stage::RcptTo,
            "554 5.7.1 <lust.macedomachado.com.br[192.168.1.254]>: Client host rejected: Access denied",
            Reason::Blocked,
        ),
        // source: github.com/sisimai/go-sisimai rhost/for-apple.go (Postfix reject_unknown_sender_domain)
        (
            Stage::RcptTo,
            "450 4.1.8 <kijitora@example.jp>: Sender address rejected: Domain not found",
            Reason::Blocked,
        ),
        // source: pastebin.com/q07qm310 (Postfix check_sender_access)
        (
            Stage::RcptTo,
            "554 5.7.1 <sender@example.com>: Sender address rejected: Access denied",
            Reason::Blocked,
        ),
        // source: github.com/Foundry376/Mailspring issue #1054 (Postfix, answered to RCPT TO)
        (
            Stage::RcptTo,
            "504 5.5.2 <Styx>: Helo command rejected: need fully-qualified hostname",
            Reason::Blocked,
        ),
        // source: github.com/MailScanner/v5 issue #634 (Postfix reject_rbl_client, "in reply to RCPT TO")
        (
            Stage::RcptTo,
            "554 5.7.1 Service unavailable; Client host [37.x.y.z] blocked using zen.spamhaus.org; Error: open resolver; https://www.spamhaus.org/returnc/pub/44.192.176.0",
            Reason::Blocked,
        ),
        // source: github.com/getconversio/email-deep-validator issue #9 (RBL rejection at RCPT TO)
        (
            Stage::RcptTo,
            "550-\"JunkMail rejected - ec2-54-74-157-229.eu-west-1.compute.amazonaws.com\r\n550-(allid.com.sg) [54.74.157.229]:34032 is in an RBL, see\r\n550 https://www.spamhaus.org/query/ip/54.74.157.229\"",
            Reason::Blocked,
        ),
        // source: github.com/zone-eu/zone-mta config/bounces.txt (Spamhaus). The code says 5.2.1
        // "mailbox disabled", the text says our IP is blacklisted: the text wins.
        (
            Stage::RcptTo,
            "550 5.2.1 Mailbox unavailable. Your IP address 11.22.33.44 is blacklisted using SPAMHAUS-XBL. Details: https://www.spamhaus.org/query/ip/11.22.33.44.",
            Reason::Blocked,
        ),
        // source: github.com/zone-eu/zone-mta config/bounces.txt (Sendmail dnsbl feature)
        (
            Stage::RcptTo,
            "550 5.7.1 <recipient@example.com>... Rejected: 11.22.33.44 listed at zen.spamhaus.org.",
            Reason::Blocked,
        ),
        // source: github.com/zone-eu/zone-mta config/bounces.txt (Sendmail, 5.3.0 but a Spamhaus listing)
        (
            Stage::RcptTo,
            "553 5.3.0 <recipient@example.com>... Mail from 11.22.33.44 rejected,see http://www.spamhaus.org/lookup/",
            Reason::Blocked,
        ),
        // source: github.com/zone-eu/zone-mta config/bounces.txt (SORBS)
        (
            Stage::RcptTo,
            "454 4.7.1 Service unavailable; Client host [1.2.3.4] blocked using dnsbl.sorbs.net; Currently Sending Spam See: http://www.sorbs.net/lookup.shtml?1.2.3.4",
            Reason::Blocked,
        ),
        // source: github.com/zone-eu/zone-mta config/bounces.txt (SORBS)
        (
            Stage::RcptTo,
            "554 5.7.1 SORBS DNSBL Entry - see <http://www.us.sorbs.net/lookup.shtml?1.2.3.4>",
            Reason::Blocked,
        ),
        // source: knowledge.3essentials.com article 232, "Customer receives: 554 IP found in Spamcop Black
        // List" (the server drops the connection)
        (
            Stage::Greeting,
            "554 IP found in Spamcop Black List. Visit spamcop.net for more information",
            Reason::Blocked,
        ),
        // source: github.com/zone-eu/zone-mta config/bounces.txt (Barracuda)
        (
            Stage::RcptTo,
            "550 permanent failure for one or more recipients (user@example.com:blocked)",
            Reason::Blocked,
        ),
        // source: github.com/getconversio/email-deep-validator pull #20 (Barracuda Reputation, multi-line)
        (
            Stage::RcptTo,
            "554-Service unavailable; Client host [bl11-253-215.dsl.telepac.pt] blocked using\r\n554-Barracuda Reputation;\r\n554 http://www.barracudanetworks.com/reputation/?r=1&ip=85.244.xxx.yyy",
            Reason::Blocked,
        ),
        // source: luxsci.com/blog/?p=16857 (Barracuda Reputation; shown after DATA there)
        (
            Stage::RcptTo,
            "554 Service unavailable; Client host [server1.mail.com] blocked using Barracuda Reputation; http://bbl.barracudacentral.com/q.cgi?ip=192.168.1.1",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/450.json (Barracuda policy rejection, temporary)
        (
            Stage::RcptTo,
            "450 cuda_nsu 4.7.1 <email@example.com>: Recipient address rejected: Policy Rejection- Abuse. Go away.",
            Reason::Blocked,
        ),
        // source: github.com/mysociety/writetothem issue #364 (Mimecast, "after RCPT TO"). Mimecast's
        // "envelope blocked" is its Blocked Senders policy, so unlike the bare Exim text below it names the sender.
        (
            Stage::RcptTo,
            "550 Administrative prohibition - envelope blocked - https://community.mimecast.com/docs/DOC-1369#550",
            Reason::Blocked,
        ),
        // source: github.com/mysociety/fixmystreet issue #1651 (Mimecast; header-based, so after DATA in practice)
        (
            Stage::RcptTo,
            "550 Rejected by header based Anti-Spoofing policy",
            Reason::Blocked,
        ),
        // source: github.com/zone-eu/zone-mta config/bounces.txt (Mimecast)
        (
            Stage::RcptTo,
            "550 csi.mimecast.org Poor Reputation Sender. - https://community.mimecast.com/docs/DOC-1369#550 [vH7Ns8biNg-p6EfZ0QaVMQ.us149]",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/451.json (Mimecast, temporary)
        (
            Stage::RcptTo,
            "451 Open relay not allowed - https://community.mimecast.com/docs/DOC-1369#451 [#]",
            Reason::Blocked,
        ),
        // source: postmaster.gmx.com/en/error-messages (GMX's own example of a connection refused for a block list)
        (
            Stage::Greeting,
            "554-gmx.net (mxgmx104) Nemesis ESMTP Service not available\r\n554-No SMTP service\r\n554-IP address is block listed.\r\n554 For explanation visit https://postmaster.gmx.net/en/case?c=r0201&i=ip&v=198.51.100.42&r=1MNcgj-1ue23t3pyV-00S2YR",
            Reason::Blocked,
        ),
        // source: github.com/ActiveCampaign/smtp-field-manual pull #60 (Orange, Postfix: "refused to talk to me")
        (
            Stage::Greeting,
            "550 mwinf5c14 ME Adresse IP source bloquee pour incident de spam. Client host blocked for spamming issues. OFR006_102 Ref http://csi.cloudmark.com/reset-request/?ip=xxx.xxx.xxx.xxx [102]",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/550.json (Comcast). 5.2.0 is a mailbox-class code, but
        // the reason is our DMARC result.
        (
            Stage::RcptTo,
            "550 5.2.0 Message rejected due to DMARC. Please see http://postmaster.comcast.net/smtp-error-codes.php#DM000001",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/550.json (AT&T, reverse DNS)
        (
            Stage::RcptTo,
            "550 5.7.1 Connections not accepted from servers without a valid sender example.com. Fix reverse DNS for x.xx.xx.xx",
            Reason::Blocked,
        ),
        // source: techjourney.net/?p=4273 (Exim sender callout verification, cPanel)
        (Stage::RcptTo, "550 Sender verify failed", Reason::Blocked),
        // source: LKML, David Woodhouse, "Re: Delivery reports about your email [FAILED(1)]", 20 May 2001
        // (Exim rejecting an ORBS-listed open relay)
        (
            Stage::RcptTo,
            "550-Open relay - see http://www.orbs.org/verify.php3?address=212.153.111.69\r\n550 mail from 212.153.111.69 rejected: administrative prohibition (host is blacklisted)",
            Reason::Blocked,
        ),
        // source: github.com/mjl-/mox issue #352 (MXroute)
        (
            Stage::RcptTo,
            "550 Unauthenticated mail not allowed from this range",
            Reason::Blocked,
        ),
        // source: github.com/sendgrid/docs common_smtp_server_bounce_responses.md (qmail rcpthosts)
        (
            Stage::RcptTo,
            "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
            Reason::Blocked,
        ),
        // source: github.com/sendgrid/docs common_smtp_server_bounce_responses.md (554 examples)
        (
            Stage::RcptTo,
            "554 5.7.1 [P4] Message blocked due to spam content in the message.",
            Reason::Blocked,
        ),
        // source: smtp-field-manual data/codes/553.json (Symantec Email Security.cloud)
        (
            Stage::RcptTo,
            "553 you are trying to use me [xx.messagelabs.com] as a relay, but I have not been configured to let you [x.xx.xx.xx, example.com] do this. Please visit www.symanteccloud.com/troubleshooting for more details about this error message and instructions to resolve this issue. (#5.7.1)",
            Reason::Blocked,
        ),
        // source: pastebin.com/jhdNMiyp (Postfix bounce, "in reply to RCPT TO")
        (
            Stage::RcptTo,
            "550 #5.7.1 Your access to submit messages to this e-mail system has been rejected.",
            Reason::Blocked,
        ),
        // ------------------------------------------------------------------
        // RateLimited: throttling of us or of traffic to the recipient.
        // ------------------------------------------------------------------
        // source: smtp-field-manual data/codes/450.json (Gmail 4.2.1)
        (
            Stage::RcptTo,
            "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. Please resend your message at a later time. If the user is able to receive mail at that time, your message will be delivered. For more information, please visit https://support.google.com/mail/?p=ReceivingRate - gsmtp",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/550.json (Gmail). 5.2.1 usually means "disabled"; here the
        // text is a receiving-rate limit, so the mailbox is alive.
        (
            Stage::RcptTo,
            "550 5.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. For more information, please visit https://support.google.com/mail/?p=ReceivingRatePerm - gsmtp",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/421.json (Gmail 4.7.28, "temporarily rate limited")
        (
            Stage::RcptTo,
            "421 4.7.28 [x.xx.xx.xx] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. - gsmtp",
            Reason::RateLimited,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2023-03-06: "usually indicates a Denial of
        // Service (DoS) for the SMTP relay at the HELO stage")
        (
            Stage::Ehlo,
            "421 4.7.0 Try again later, closing connection.",
            Reason::RateLimited,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2023-03-06)
        (
            Stage::RcptTo,
            "452 4.5.3 Your message has too many recipients. For more information regarding Google's sending limits, visit Limits for sending & getting mail.",
            Reason::RateLimited,
        ),
        // source: gitlab.com/lightmeter/controlcenter issue #319 (Exchange Online 4.7.500 throttling; shown
        // after DATA there), see learn.microsoft.com "Fix email delivery issues for error code 451 4.7.500-699 (ASxxx)"
        (
            Stage::RcptTo,
            "451 4.7.500 Server busy. Please try again later from [134.119.1.64]. (S77719) [FR2DEU01FT008.eop-deu01.prod.protection.outlook.com]",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/554.json (Outlook 5.2.122, per-hour receive limit). A 554 and
        // a 5.2.x, yet the mailbox is alive and merely busy.
        (
            Stage::RcptTo,
            "554 5.2.122 The recipient has exceeded their limit for the number of messages they can receive per hour. For more information go to http://go.microsoft.com/fwlink/?LinkId=526653. (#) [outlook.com]",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/421.json (Exchange Online)
        (
            Stage::RcptTo,
            "421 4.3.2 The maximum number of concurrent connections per resource forest has exceeded a limit, closing transmission channel. example.com. PRX8 [example.com]",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/450.json (Outlook)
        (
            Stage::RcptTo,
            "450 4.7.3 Organization queue quota exceeded. [outlook.com]",
            Reason::RateLimited,
        ),
        // source: github.com/sisimai/go-sisimai rhost/for-yahooinc.go (Yahoo TSS04, "in reply to MAIL FROM command")
        (
            Stage::MailFrom,
            "421 4.7.0 [TSS04] Messages from 192.0.2.25 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
            Reason::RateLimited,
        ),
        // source: mail.python.org/pipermail/mailman-users/2012-June/073611.html (Yahoo TS01,
        // "refused to talk to me", i.e. the greeting)
        (
            Stage::Greeting,
            "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints -; see http://postmaster.yahoo.com/421-ts01.html",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/450.json (Verizon Media / Yahoo)
        (
            Stage::RcptTo,
            "450 User is receiving mail too quickly",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/421.json (Verizon Media / Yahoo)
        (
            Stage::RcptTo,
            "421 Max message per connection reached, closing transmission channel",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/421.json (iCloud)
        (
            Stage::RcptTo,
            "421 4.7.1 Messages to example@icloud.com deferred due to excessive volume. Try again later - https://support.apple.com/en-us/HT204137",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/450.json (Yandex)
        (
            Stage::RcptTo,
            "450 4.2.1 The recipient has exceeded message rate limit. Try again later.",
            Reason::RateLimited,
        ),
        // source: support.mailprotector.com "Common Email Bouncebacks" (421, "in reply to MAIL FROM command")
        (
            Stage::MailFrom,
            "421 4.4.2 Message submission rate for this client has exceeded the configured limit",
            Reason::RateLimited,
        ),
        // source: smtp-field-manual data/codes/421.json (iCloud; Postfix's smtpd_hard_error_limit, see
        // /work/shared/POSTFIX.md). Judgement call: a limit on how many errors our session may cause.
        (
            Stage::RcptTo,
            "421 4.7.0 me.com Error: too many errors",
            Reason::RateLimited,
        ),
        // ------------------------------------------------------------------
        // Greylisted: temporary deferral of the recipient, by a greylister
        // or naming no cause.
        // ------------------------------------------------------------------
        // source: github.com/schweikert/postgrey issue #84 (Exim bounce "after RCPT TO")
        (
            Stage::RcptTo,
            "450 4.2.0 <user@aful.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/aful.org.html",
            Reason::Greylisted,
        ),
        // source: smtp-field-manual data/codes/451.json (Barracuda)
        (
            Stage::RcptTo,
            "451 4.7.1 <email@example.com>: Recipient address rejected: Greylisted for 5 minutes",
            Reason::Greylisted,
        ),
        // source: smtp-field-manual data/codes/450.json (ZeroSpam)
        (
            Stage::RcptTo,
            "450 4.2.0 <email@example.com>: Recipient address rejected: example.com greylisted for 60 seconds by ZEROSPAM",
            Reason::Greylisted,
        ),
        // source: dwlistore.dwli.org knowledgebase 444 "Emails Not Sending to Mimecast Recipients" (Mimecast
        // greylisting of a new sender/recipient/IP triplet, at RCPT TO)
        (
            Stage::RcptTo,
            "451 Internal resource is temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451 [Aj3QXapeMpqZYaeFwWhjzw.us32]",
            Reason::Greylisted,
        ),
        // source: LKML, David Woodhouse, Exim reject log of lists.infradead.org, 19 Nov 2006 (RCPT TO callout
        // to mail.brightbrown.com; the classic greylister wording)
        (
            Stage::RcptTo,
            "451 4.7.1 Please try again later",
            Reason::Greylisted,
        ),
        // source: major.io, "Plesk and qmail: 421 temporary envelope failure (#4.3.0)", 2007 (qmail greylisting)
        (
            Stage::RcptTo,
            "421 temporary envelope failure (#4.3.0)",
            Reason::Greylisted,
        ),
        // source: github.com/zone-eu/zone-mta config/bounces.txt. "blocked using grey.rbl", but the text
        // itself says greylisting is in action.
        (
            Stage::RcptTo,
            "421 4.7.1 Service unavailable; Client host [1.2.3.4] blocked using grey.rbl - Rechazo temporal, intentelo mas tarde por favor...Greylisting in action, please try again later",
            Reason::Greylisted,
        ),
        // source: smtp-field-manual data/codes/421.json (Proofpoint; Postfix reject_unverified_recipient).
        // 4.1.1 looks like "unknown user", but the probe is still in progress.
        (
            Stage::RcptTo,
            "421 4.1.1 <email@example.com>: Recipient address rejected: unverified address: Address verification in progress",
            Reason::Greylisted,
        ),
        // source: smtp-field-manual data/codes/450.json (Comcast)
        (
            Stage::RcptTo,
            "450 4.2.0 <example@comcast.net> - Recipient temporarily unavailable",
            Reason::Greylisted,
        ),
        // source: smtp-field-manual data/codes/451.json (Mimecast). Mimecast's default for an unknown
        // internal user is a 451 deferral so the admin can sync the directory (mimecastsupport.zendesk.com
        // "Emails To Unknown Internal Users"). Judgement call: temporary, so not evidence yet.
        (
            Stage::RcptTo,
            "451 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#451 [#]",
            Reason::Greylisted,
        ),
        // source: github.com/OpenSMTPD/OpenSMTPD issue #546 (answer to RCPT TO of a missing user on a
        // misconfigured server). Judgement call: a deferral that names no cause.
        (Stage::RcptTo, "451 Temporary failure", Reason::Greylisted),
        // ------------------------------------------------------------------
        // SmtpError: the server's own trouble, or a refusal that says
        // nothing about either the mailbox or the sender.
        // ------------------------------------------------------------------
        // source: jpmens.net/2010/02/04/domino-smtp-5xx-vs-4xx/ (Sendmail 8.14 below MinFreeBlocks, answer to MAIL FROM)
        (
            Stage::MailFrom,
            "452 4.4.5 Insufficient disk space; try again later",
            Reason::SmtpError,
        ),
        // source: github.com/mailcow/mailcow-dockerized issue #1450 (Postfix queue_minfree, "reject: MAIL from")
        (
            Stage::MailFrom,
            "452 4.3.1 Insufficient system storage",
            Reason::SmtpError,
        ),
        // source: github.com/sendgrid/docs common_smtp_server_bounce_responses.md (Exim's local-error text)
        (
            Stage::RcptTo,
            "451 Temporary local problem - please try later",
            Reason::SmtpError,
        ),
        // source: smtp-field-manual data/codes/452.json (Microsoft)
        (
            Stage::RcptTo,
            "452 4.3.1 Insufficient system resources (TSTE) [outlook.com]",
            Reason::SmtpError,
        ),
        // source: smtp-field-manual data/codes/451.json (Office 365)
        (
            Stage::RcptTo,
            "451 4.7.0 Temporary server error. Please try again later. PRX4 NextHop: example.com [example.com]",
            Reason::SmtpError,
        ),
        // source: RFC 5321 §4.2.2 (reply code 554). Says nothing about mailbox or sender.
        (Stage::RcptTo, "554 Transaction failed", Reason::SmtpError),
        // source: Alaveteli documentation, "Installing the MTA" (Exim answers RCPT TO for an address in its
        // recipient-reject file with this); also Exim's default deny text. Nothing says mailbox or sender.
        (
            Stage::RcptTo,
            "550 Administrative prohibition",
            Reason::SmtpError,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2026-02-15)
        (
            Stage::RcptTo,
            "421 4.3.0 Temporary System Problem. Try again later. For more information, go to About SMTP error messages.",
            Reason::SmtpError,
        ),
        // source: smtp-field-manual data/codes/451.json (Gmail). Judgement call: 4.3.x is the mail system's
        // own status, not a greylist of the recipient.
        (
            Stage::RcptTo,
            "451 4.3.0 Mail server temporarily rejected message. - gsmtp",
            Reason::SmtpError,
        ),
        // source: support.google.com/a/answer/3726730 (snapshot 2023-03-06). Judgement call: a busy server,
        // not a limit placed on us.
        (
            Stage::RcptTo,
            "421 4.4.5 Server busy, try again later.",
            Reason::SmtpError,
        ),
        // source: github.com/sendgrid/docs common_smtp_server_bounce_responses.md (Yahoo "Resources temporarily
        // unavailable": the Yahoo servers were busy, per senders.yahooinc.com/smtp-error-codes)
        (
            Stage::RcptTo,
            "451 mta1012.mail.gq1.yahoo.com Resources temporarily unavailable. Please try again later [#4.16.1].",
            Reason::SmtpError,
        ),
        // source: smtp-field-manual data/codes/421.json (Outlook)
        (
            Stage::Greeting,
            "421 4.3.2 Service not available [outlook.com]",
            Reason::SmtpError,
        ),
        // source: smtp-field-manual data/codes/421.json (Verizon Media / Yahoo)
        (
            Stage::Greeting,
            "421 Service not available, closing transmission channel",
            Reason::SmtpError,
        ),
        // ------------------------------------------------------------------
        // Replies whose words must beat their class or code. Rows marked
        // "set-of-emails" are the Diagnostic-Code of a real bounce collected by
        // the Sisimai project (github.com/sisimai/set-of-emails, maildir/bsd;
        // the same files are tests/fixtures/bounces/sisimai/maildir).
        // ------------------------------------------------------------------
        // source: set-of-emails lhost-postfix-59.eml (Gmail; the multi-line reply as Postfix folds it into
        // one line). A per-recipient rate limit under a permanent code: the mailbox is alive.
        (
            Stage::RcptTo,
            "550-5.2.1 The user you are trying to contact is receiving mail at a\r\n550-5.2.1 rate that prevents additional messages from being delivered. For\r\n550-5.2.1 more information, please visit\r\n550 5.2.1 https://support.google.com/mail/?p=ReceivingRatePerm p131si8414989oif.118 - gsmtp",
            Reason::RateLimited,
        ),
        // source: set-of-emails rhost-godaddy-03.eml (GoDaddy: our IP sent to too many recipients, under 5.1.1)
        (
            Stage::RcptTo,
            "550 5.1.1 <kijitora@example.com>  - 198.51.100.225 has sent to too many recipients this hour. IB607  <http://x.co/rlbounce>",
            Reason::RateLimited,
        ),
        // source: set-of-emails lhost-amazonses-19.eml. Locked for now, "try again later": not permanent.
        (
            Stage::RcptTo,
            "550 5.7.1 <kijitora@example.com>: Recipient address rejected: User kijitora@example.com temporary locked. Please try again later!",
            Reason::Greylisted,
        ),
        // source: set-of-emails rhost-facebook-03.eml (Facebook RCP-P2). The mailbox refuses us.
        (
            Stage::RcptTo,
            "550 5.1.1 RCP-P2 http://postmaster.facebook.com/response_codes?ip=192.0.2.135#rcp Refused due to recipient preferences",
            Reason::Blocked,
        ),
        // source: set-of-emails lhost-messagingserver-03.eml (Sun/Oracle Messaging Server relaying the remote reply)
        (
            Stage::RcptTo,
            "550 5.7.1 550 User Unknown: sabineko@example.org",
            Reason::MailboxNotFound,
        ),
        // source: set-of-emails lhost-sendmail-48.eml (SFR)
        (
            Stage::RcptTo,
            "550 5.7.1 <pseudo-local-part-kijitora-nyaan@sfr.fr>: Recipient address rejected: User unknown",
            Reason::MailboxNotFound,
        ),
        // source: set-of-emails rfc3464-51.eml and rhost-gsuite-01.eml (the status in the text)
        (
            Stage::RcptTo,
            "550 #5.1.0 Address rejected.",
            Reason::MailboxNotFound,
        ),
        // source: Yandex's SMTP front end (nwsmtp, black_box_client_rcpt.cpp: "User not found"); listed as
        // "No such user" in yandex.com/support/mail/bounces/yandex.html
        (
            Stage::RcptTo,
            "550 5.7.1 No such user!",
            Reason::MailboxNotFound,
        ),
        // source: set-of-emails lhost-sendmail-41.eml (Yahoo under a bare 554)
        (
            Stage::RcptTo,
            "554 delivery error: dd This user doesn't have a yahoo.com account (this-local-part-does-not-exist@yahoo.com) [0] - mta1061.mail.ne1.yahoo.com",
            Reason::MailboxNotFound,
        ),
        // source: set-of-emails lhost-postfix-16.eml and rhost-apple-01.eml (5.1.6, "destination mailbox has moved")
        (
            Stage::RcptTo,
            "550 5.1.6 recipient no longer on server: kijitora@example.go.jp",
            Reason::MailboxNotFound,
        ),
        // source: set-of-emails lhost-sendmail-22.eml (qmail-style "551 not our customer")
        (
            Stage::RcptTo,
            "551 not our customer",
            Reason::MailboxNotFound,
        ),
        // source: set-of-emails lhost-imailserver-03.eml (Ipswitch IMail)
        (
            Stage::RcptTo,
            "550 Invalid final delivery userid: kijitora@neko.example.co.jp",
            Reason::MailboxNotFound,
        ),
        // source: set-of-emails lhost-sendmail-35.eml (sendmail, RFC 5248 X.7.13 "User Account Disabled")
        (
            Stage::RcptTo,
            "525 5.7.13 Disabled recipient address",
            Reason::MailboxDisabled,
        ),
        // source: set-of-emails rhost-franceptt-05.eml (La Poste, French and English)
        (
            Stage::RcptTo,
            "550 5.5.0 Le compte du destinataire est bloque. The recipient account is blocked. LPN007_426",
            Reason::MailboxDisabled,
        ),
        // source: set-of-emails rhost-iua-01.eml and lhost-postfix-61.eml (i.ua, Ukraine)
        (
            Stage::RcptTo,
            "550 Mailbox is frozen. See http://mail.i.ua/err/3/",
            Reason::MailboxDisabled,
        ),
        // source: set-of-emails rhost-google-07.eml (Gmail, "DisabledUser")
        (
            Stage::RcptTo,
            "550-5.2.1 The email account that you tried to reach is inactive. For more\r\n550-5.2.1 information, go to\r\n550 5.2.1  https://support.google.com/mail/?p=DisabledUser neko-1578",
            Reason::MailboxDisabled,
        ),
        // source: set-of-emails lhost-postfix-52.eml (Yahoo! JAPAN)
        (
            Stage::RcptTo,
            "554 delivery error: dd Sorry your message to kijitora@example.co.jp cannot be delivered. This account has been disabled or discontinued [#102]. - mta222.mail.neko.example.co.jp",
            Reason::MailboxDisabled,
        ),
        // source: Yandex's nwsmtp black_box_client_rcpt.cpp ("User blocked"); yandex.com/support/mail/bounces/yandex/
        // policy-rejection-on-the-target-address.html: "your message recipient's account has been blocked"
        (
            Stage::RcptTo,
            "550 5.7.1 Policy rejection on the target address",
            Reason::MailboxDisabled,
        ),
        // source: qmail badrcptto patch (qmail-smtpd's reply, listed in Sisimai's UserUnknown patterns as
        // "this recipient is in my badrecipientto list"); an address the administrator has shut
        (
            Stage::RcptTo,
            "553 sorry, this recipient is in my badrecipientto list (#5.7.1)",
            Reason::MailboxDisabled,
        ),
        // source: set-of-emails lhost-qmail-10.eml (vpopmail's vdelivermail)
        (
            Stage::RcptTo,
            "550 vdelivermail: account is locked email bounced",
            Reason::MailboxDisabled,
        ),
        // source: set-of-emails rhost-mimecast-01.eml (Mimecast: our network is not allowed)
        (
            Stage::RcptTo,
            "554 Host network not allowed - https://community.mimecast.com/docs/DOC-1369#554 [z7qZw5BPd1zlDYHka4589ru.us222]",
            Reason::Blocked,
        ),
        // source: set-of-emails rhost-messagelabs-01.eml (Symantec MessageLabs)
        (
            Stage::RcptTo,
            "550-Please turn on SMTP Authentication in your mail client.\r\n550-mail0.bemta0.messagelabs.com [198.51.100.21]:22222 is not permitted to\r\n550 relay through this server without authentication.",
            Reason::Blocked,
        ),
        // source: set-of-emails lhost-exchange2007-04.eml (Exchange: authentication required)
        (
            Stage::RcptTo,
            "550 5.7.1 RESOLVER.RST.AuthRequired; authentication required",
            Reason::Blocked,
        ),
        // source: set-of-emails rhost-zoho-04.eml (Zoho)
        (
            Stage::RcptTo,
            "541 5.4.1 Mail rejected by destination domain",
            Reason::Blocked,
        ),
        // source: set-of-emails lhost-postfix-44.eml (a relay that will not relay for us)
        (
            Stage::RcptTo,
            "501 Rcpt-To validation failed: RCPT TO not accepted: 5.7.1 This system is not configured to relay mail (r) from <nekonyaans@p2.example.com> to <kijitora@example.jp> for 127.0.0.1",
            Reason::Blocked,
        ),
        // source: set-of-emails lhost-v5sendmail-06.eml ("Remote protocol error" at RCPT TO, nothing more said)
        (
            Stage::RcptTo,
            "554 <kijitora@example.edu>... Remote protocol error",
            Reason::Blocked,
        ),
        // source: set-of-emails lhost-v5sendmail-06.eml (a refusal of relaying through an insecure host)
        (Stage::RcptTo, "550 Insecure Mail Relay", Reason::Blocked),
        // source: mailout.ru/2015/09 (Mail.ru: the *sending* account is barred, "message sending for this
        // account is disabled"): about us, not the recipient
        (
            Stage::RcptTo,
            "550 message sending for this account is disabled",
            Reason::Blocked,
        ),
        // source: set-of-emails lhost-sendmail-04.eml (our envelope sender's domain does not exist)
        (
            Stage::RcptTo,
            "553 5.1.8 <httpd@host1.mx.example.jp>... Domain of sender address httpd@host1.mx.example.jp does not exist",
            Reason::Blocked,
        ),
        // source: set-of-emails lhost-postfix-80.eml (Vade: our sender domain listed at Spamhaus, under 5.1.0)
        (
            Stage::RcptTo,
            "550-5.1.0 MXIN506 MailFrom domain is listed in Spamhaus. To request removal from this list see https:\r\n550 5.1.0 //www.spamhaus.org/query/lookup/",
            Reason::Blocked,
        ),
        // source: set-of-emails lhost-mailru-05.eml and lhost-messagingserver-10.eml (a null MX, RFC 7505, as the
        // sending MTA reports it)
        (
            Stage::RcptTo,
            "550 5.1.10 host/domain does not accept mail",
            Reason::NoMailServer,
        ),
        // source: set-of-emails lhost-amazonses-18.eml (X.4.4, no route to the domain)
        (
            Stage::RcptTo,
            "550 5.4.4 Invalid domain",
            Reason::NoSuchDomain,
        ),
        // source: set-of-emails lhost-opensmtpd-10.eml (OpenSMTPD's own explanation)
        (
            Stage::RcptTo,
            "550 Domain does not exist",
            Reason::NoSuchDomain,
        ),
        // source: set-of-emails lhost-postfix-17.eml. The sending side's resolver failed: no verdict on the domain.
        (
            Stage::RcptTo,
            "550 5.4.4 Name service error for name=example.org type=MX: Malformed or unexpected name server reply",
            Reason::SmtpError,
        ),
        // source: set-of-emails lhost-googlegroups-02.eml (Google Groups: a guess, not a fact)
        (
            Stage::RcptTo,
            "550 The group you tried to contact (libsisimai) may not exist, or you may not have permission to post messages to the group.",
            Reason::SmtpError,
        ),
    ]
}

#[test]
fn real_replies_get_the_verdict_a_postmaster_would_give() {
    let rows = corpus();
    let total = rows.len();
    let mut mismatches = Vec::new();
    for (index, (stage, raw, expected)) in rows.into_iter().enumerate() {
        let Ok(reply) = SmtpReply::parse(raw) else {
            mismatches.push(format!(
                "row {index}: {raw:?}\n    expected {expected:?}, but the reply did not parse"
            ));
            continue;
        };
        let got = classify_reply(stage, &reply);
        if got != expected {
            mismatches.push(format!(
                "row {index}: {raw:?}\n    expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {total} real replies got the wrong verdict:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn a_deferral_or_a_sender_side_refusal_never_makes_an_address_undeliverable() {
    let mut violations = Vec::new();
    for (index, (stage, raw, expected)) in corpus().into_iter().enumerate() {
        let temporary = raw.starts_with('4');
        let about_the_sender = matches!(
            expected,
            Reason::Blocked | Reason::RateLimited | Reason::Greylisted
        );
        if !temporary && !about_the_sender {
            continue;
        }
        let Ok(reply) = SmtpReply::parse(raw) else {
            violations.push(format!("row {index}: {raw:?} did not parse"));
            continue;
        };
        let got = classify_reply(stage, &reply);
        if got.status() == Status::Undeliverable {
            violations.push(format!(
                "row {index}: {raw:?}\n    classified {got:?} ({:?}); expected {expected:?}",
                got.status()
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "temporary or sender-side replies were taken as proof the mailbox is dead:\n{}",
        violations.join("\n")
    );
}
