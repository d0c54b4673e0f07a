//! Sender authentication of mail received by SMTP (`verify_sender_authentication`
//! of `[configuration.inbound]`): SPF of the MAIL FROM identity and of the
//! HELO name, DKIM (every signature, at most [`MAX_DKIM_SIGNATURES`]), ARC
//! (the chain, at most [`MAX_ARC_SETS`] sets) and DMARC (the From: domain's
//! policy, aligned with SPF and DKIM), asked of `dns_servers` with
//! mail-auth; the `Authentication-Results:` header saying what was found
//! (`results`); and the DMARC verdict the listener acts on.
//!
//! Owns its resolver (a `MessageAuthenticator` built with
//! `transfer::resolver_builder` from `dns_servers`, rebuilt when they
//! change; empty: the system's, as the other DNS checks), the bounds of the
//! work one message may cause, and the `SMTP.SPF.*`, `SMTP.DKIM.*`,
//! `SMTP.DMARC.*` and `SMTP.ARC.*` counters. Must not refuse, store or hold
//! anything itself: `listener` turns the verdict into a reply or a Held
//! reason, under `dmarc_policy`. DNS that does not answer is a `temperror`,
//! never a failure.

mod results;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_auth::common::crypto::HashAlgorithm;
use mail_auth::dkim::{Canonicalization, DkimError};
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DmarcResult, Error,
    MessageAuthenticator, SpfOutput, SpfResult,
};

pub(crate) use results::{ResultsHeader, remove_claims};

use crate::instance::lock;

/// The most DKIM signatures of one message verified (each costs a DNS
/// question and a signature check); the others are reported as one
/// `dkim=policy` result.
pub(crate) const MAX_DKIM_SIGNATURES: usize = 10;

/// The longest ARC chain verified (RFC 8617 allows 50 sets; each costs DNS
/// questions and signature checks). A longer one is `arc=fail`.
pub(crate) const MAX_ARC_SETS: usize = 10;

/// The longest one method (SPF of one identity, DKIM, ARC, DMARC) may take;
/// then it is a `temperror`.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// A DNS question's timeout (one attempt), as the other inbound checks'.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest the whole verification of one message may take; then every
/// method is a `temperror`.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(40);

/// Bodies larger than this are hashed on a blocking thread.
const INLINE_BODY: usize = 64 * 1024;

/// The session facts sender authentication reads.
pub(crate) struct Sender {
    pub ip: IpAddr,
    /// The HELO/EHLO name ("" when none was given).
    pub helo: String,
    /// The MAIL FROM address ("" for the null sender).
    pub mail_from: String,
}

/// What a domain's DMARC record asks for mail that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    None,
    Quarantine,
    Reject,
}

/// A DMARC failure: the From: domain and the policy it publishes (after
/// `t=y`'s testing mode lowered it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DmarcFailure {
    pub domain: String,
    pub policy: Asked,
}

/// What sender authentication found for one message.
#[derive(Debug)]
pub(crate) struct Verdict {
    /// The `Authentication-Results:` header, with its CRLF.
    pub header: String,
    /// DMARC failed (not a temperror, not none).
    pub dmarc_failure: Option<DmarcFailure>,
}

/// Sender authentication for the SMTP listeners of one server.
#[derive(Default)]
pub(crate) struct SenderAuth {
    resolver: Mutex<Option<(Vec<SocketAddr>, Arc<MessageAuthenticator>)>>,
    stats: Arc<AuthStats>,
}

impl SenderAuth {
    /// The authenticator asking `dns_servers`, rebuilt when they change.
    fn authenticator(&self, dns_servers: &[SocketAddr]) -> Option<Arc<MessageAuthenticator>> {
        let mut slot = lock(&self.resolver);
        if let Some((servers, a)) = slot.as_ref()
            && servers.as_slice() == dns_servers
        {
            return Some(a.clone());
        }
        let mut builder = transfer::resolver_builder(dns_servers)
            .map_err(|e| tracing::warn!("SMTP Server: no DNS resolver for SPF/DKIM/DMARC: {e}"))
            .ok()?;
        builder.options_mut().timeout = QUERY_TIMEOUT;
        builder.options_mut().attempts = 1;
        let resolver = builder
            .build()
            .map_err(|e| tracing::warn!("SMTP Server: no DNS resolver for SPF/DKIM/DMARC: {e}"))
            .ok()?;
        let a = Arc::new(MessageAuthenticator(resolver));
        *slot = Some((dns_servers.to_vec(), a.clone()));
        Some(a)
    }

    /// Every counter under its `show stat` name.
    pub(crate) fn stats(&self) -> Vec<(String, u64)> {
        self.stats.snapshot()
    }

    /// Counts a message held for its domain's `p=quarantine`.
    pub(crate) fn quarantined(&self) {
        self.stats.add("SMTP.DMARC.Quarantined");
    }

    /// Counts incoming `Authentication-Results:` fields removed because
    /// they claimed this server's authserv-id.
    pub(crate) fn removed(&self, n: usize) {
        if n > 0 {
            *lock(&self.stats.counters)
                .entry("SMTP.AuthenticationResults.Removed")
                .or_default() += n as u64;
        }
    }

    /// Verifies one message (as received, before anything is added to it)
    /// from `sender`; `authserv_id` is this server's host name. Runs as a
    /// task of its own: should a verifier panic on a stranger's message,
    /// the results are `temperror` and the session goes on.
    pub(crate) async fn verify(
        &self,
        dns_servers: &[SocketAddr],
        authserv_id: &str,
        sender: Sender,
        message: Arc<Vec<u8>>,
    ) -> Verdict {
        let unverified = |why: &str| {
            let mut header = ResultsHeader::new(authserv_id);
            for method in ["spf", "dkim", "arc", "dmarc"] {
                header.result(method, "temperror", Some(why), &[]);
            }
            Verdict {
                header: header.finish(),
                dmarc_failure: None,
            }
        };
        let Some(auth) = self.authenticator(dns_servers) else {
            return unverified("no DNS resolver");
        };
        let stats = self.stats.clone();
        let id = authserv_id.to_owned();
        let ip = sender.ip;
        let task = tokio::spawn(async move {
            tokio::time::timeout(TOTAL_TIMEOUT, check(&auth, &stats, &id, &sender, &message)).await
        });
        match task.await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(_)) => unverified("DNS did not answer in time"),
            Err(e) => {
                tracing::error!(
                    "SMTP Server: sender authentication of a message from {ip} failed: {e}"
                );
                unverified("verification failed")
            }
        }
    }
}

/// SPF, DKIM, ARC and DMARC of one message, counted in `stats`.
async fn check(
    auth: &MessageAuthenticator,
    stats: &AuthStats,
    authserv_id: &str,
    sender: &Sender,
    message: &[u8],
) -> Verdict {
    let mut header = ResultsHeader::new(authserv_id);
    let helo = sender.helo.trim();
    let ip = sender.ip.to_canonical();

    // SPF: the MAIL FROM identity (postmaster@HELO for the null sender)
    // and the HELO name.
    let spf_from = step(
        auth.verify_spf(SpfParameters::verify_mail_from(
            ip,
            helo,
            authserv_id,
            &sender.mail_from,
        )),
        // The identity's domain stays, so DMARC sees a temperror it aligns with.
        || {
            let domain = sender.mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
            SpfOutput::new(domain.to_owned()).with_result(SpfResult::TempError)
        },
    )
    .await;
    let spf_helo = step(
        auth.verify_spf(SpfParameters::verify_ehlo(ip, helo, authserv_id)),
        || SpfOutput::new(helo.to_owned()).with_result(SpfResult::TempError),
    )
    .await;
    let mail_from = if sender.mail_from.is_empty() {
        format!("postmaster@{helo}")
    } else {
        sender.mail_from.to_owned()
    };
    spf_line(&mut header, &spf_from, ip, "smtp.mailfrom", &mail_from);
    spf_line(&mut header, &spf_helo, ip, "smtp.helo", helo);
    stats.add(spf_counter(spf_from.result()));

    // The header section is parsed as it is; the body is hashed apart
    // (off the runtime's threads when it is big), once per
    // canonicalization and algorithm the signatures ask for.
    let body_at = body_offset(message);
    let Some(mut parsed) = AuthenticatedMessage::parse(&message[..body_at]) else {
        header.result("dkim", "none", Some("no header"), &[]);
        header.result("arc", "none", None, &[]);
        header.result("dmarc", "none", None, &[]);
        stats.add("SMTP.DKIM.None");
        stats.add("SMTP.DMARC.None");
        stats.add("SMTP.ARC.None");
        return Verdict {
            header: header.finish(),
            dmarc_failure: None,
        };
    };
    let skipped = cap_dkim(&mut parsed);
    parsed.body_hashes = body_hashes(&parsed.body_hashes, &message[body_at..]).await;

    let dkim = tokio::time::timeout(STEP_TIMEOUT, auth.verify_dkim(&parsed))
        .await
        .ok();
    let from_domain = parsed
        .from
        .first()
        .and_then(|f| f.rsplit_once('@'))
        .map(|(_, d)| d.to_owned())
        .unwrap_or_default();
    match &dkim {
        Some(outputs) if outputs.is_empty() && skipped == 0 => {
            header.result("dkim", "none", None, &[]);
            stats.add("SMTP.DKIM.None");
        }
        Some(outputs) => {
            for output in outputs {
                let (result, comment) = dkim_result(output.result());
                stats.add(dkim_counter(result));
                let props = signature_props(output);
                let props: Vec<(&str, &str)> =
                    props.iter().map(|(n, v)| (*n, v.as_str())).collect();
                header.result("dkim", result, comment.as_deref(), &props);
            }
        }
        None => {
            header.result("dkim", "temperror", Some("DNS did not answer in time"), &[]);
            stats.add("SMTP.DKIM.TempError");
        }
    }
    if skipped > 0 {
        let comment =
            format!("{skipped} more signatures not verified: at most {MAX_DKIM_SIGNATURES} are");
        header.result("dkim", "policy", Some(&comment), &[]);
        stats.add("SMTP.DKIM.Policy");
    }

    // ARC: the chain of sets, when there is one.
    let sets = parsed.as_headers.len().max(parsed.ams_headers.len());
    let (arc, arc_comment) = if sets > MAX_ARC_SETS {
        (
            "fail",
            Some(format!(
                "a chain of {sets} sets: at most {MAX_ARC_SETS} are verified"
            )),
        )
    } else {
        match tokio::time::timeout(STEP_TIMEOUT, auth.verify_arc(&parsed)).await {
            Ok(output) => match output.result() {
                DkimResult::Pass => ("pass", Some(format!("i={}", output.sets().len()))),
                DkimResult::None => ("none", None),
                DkimResult::TempError(e) => ("fail", Some(format!("DNS: {e}"))),
                DkimResult::Fail(e) | DkimResult::Neutral(e) | DkimResult::PermError(e) => {
                    ("fail", Some(e.to_string()))
                }
            },
            Err(_) => ("fail", Some("DNS did not answer in time".to_owned())),
        }
    };
    header.result("arc", arc, arc_comment.as_deref(), &[]);
    stats.add(match arc {
        "pass" => "SMTP.ARC.Pass",
        "none" => "SMTP.ARC.None",
        _ => "SMTP.ARC.Fail",
    });

    // DMARC: the From: domain's policy, with SPF (MAIL FROM) and DKIM.
    let dmarc = match &dkim {
        Some(outputs) => {
            let params = DmarcParameters::new(&parsed, outputs, spf_from.domain(), &spf_from);
            tokio::time::timeout(STEP_TIMEOUT, auth.verify_dmarc(params))
                .await
                .ok()
        }
        // DKIM could not be verified: DMARC cannot fail for it.
        None => None,
    };
    let dmarc_failure = match &dmarc {
        Some(output) => {
            let (counter, failure) = dmarc_line(&mut header, output);
            stats.add(counter);
            failure
        }
        None => {
            let mut props = Vec::new();
            if !from_domain.is_empty() {
                props.push(("header.from", from_domain.as_str()));
            }
            header.result(
                "dmarc",
                "temperror",
                Some("DNS did not answer in time"),
                &props,
            );
            stats.add("SMTP.DMARC.TempError");
            None
        }
    };
    Verdict {
        header: header.finish(),
        dmarc_failure,
    }
}

/// A method's future with [`STEP_TIMEOUT`]; `late` is its result when it
/// takes longer.
async fn step<T>(f: impl Future<Output = T>, late: impl FnOnce() -> T) -> T {
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| late())
}

/// Where the body starts: after the empty line ending the header section
/// (the whole message when there is none).
fn body_offset(message: &[u8]) -> usize {
    let mut at = 0;
    while at < message.len() {
        let line_end = message[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(message.len(), |i| at + i + 1);
        let line = &message[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            return line_end;
        }
        at = line_end;
    }
    message.len()
}

/// Keeps the first [`MAX_DKIM_SIGNATURES`] signatures (unreadable ones
/// first, as they are reported first); returns how many were left out.
fn cap_dkim(parsed: &mut AuthenticatedMessage<'_>) -> usize {
    let unreadable = parsed
        .errors
        .iter()
        .filter(|e| matches!(e.header, Error::Dkim(_)))
        .count();
    let total = unreadable + parsed.dkim_headers.len();
    if total <= MAX_DKIM_SIGNATURES {
        return 0;
    }
    let mut room = MAX_DKIM_SIGNATURES;
    parsed.errors.retain(|e| {
        if !matches!(e.header, Error::Dkim(_)) {
            return true;
        }
        if room == 0 {
            return false;
        }
        room -= 1;
        true
    });
    parsed.dkim_headers.truncate(room);
    total - MAX_DKIM_SIGNATURES
}

/// The body hashes the signatures ask for, over the real body.
async fn body_hashes(
    wanted: &[(Canonicalization, HashAlgorithm, u64, Vec<u8>)],
    body: &[u8],
) -> Vec<(Canonicalization, HashAlgorithm, u64, Vec<u8>)> {
    let keys: Vec<(Canonicalization, HashAlgorithm, u64)> =
        wanted.iter().map(|(c, h, l, _)| (*c, *h, *l)).collect();
    let hash = move |body: &[u8]| -> Vec<(Canonicalization, HashAlgorithm, u64, Vec<u8>)> {
        keys.iter()
            .map(|(c, h, l)| {
                (
                    *c,
                    *h,
                    *l,
                    h.hash(c.canonical_body(body, *l)).as_ref().to_vec(),
                )
            })
            .collect()
    };
    if wanted.is_empty() {
        return Vec::new();
    }
    if body.len() <= INLINE_BODY {
        return hash(body);
    }
    let owned = body.to_vec();
    // Should hashing fail, the hashes of an empty body stay: the
    // signatures fail, nothing is taken for verified.
    tokio::task::spawn_blocking(move || hash(&owned))
        .await
        .unwrap_or_else(|_| wanted.to_vec())
}

/// An SPF result line.
fn spf_line(header: &mut ResultsHeader, spf: &SpfOutput, ip: IpAddr, prop: &str, identity: &str) {
    let domain = spf.domain();
    let (result, comment) = match spf.result() {
        SpfResult::Pass => (
            "pass",
            format!("domain of {domain} designates {ip} as permitted sender"),
        ),
        SpfResult::Fail => (
            "fail",
            format!("domain of {domain} does not designate {ip} as permitted sender"),
        ),
        SpfResult::SoftFail => (
            "softfail",
            format!("domain of {domain} reports soft fail for {ip}"),
        ),
        SpfResult::Neutral => (
            "neutral",
            format!("domain of {domain} reports neutral for {ip}"),
        ),
        SpfResult::TempError => ("temperror", "DNS did not answer".to_owned()),
        SpfResult::PermError => (
            "permerror",
            format!("the SPF record of {domain} cannot be used"),
        ),
        SpfResult::None => ("none", format!("no SPF record for {domain}")),
    };
    let comment = if domain.is_empty() && spf.result() != SpfResult::TempError {
        None
    } else {
        Some(comment)
    };
    let props: Vec<(&str, &str)> = if identity.is_empty() {
        Vec::new()
    } else {
        vec![(prop, identity)]
    };
    header.result("spf", result, comment.as_deref(), &props);
}

fn spf_counter(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "SMTP.SPF.Pass",
        SpfResult::Fail => "SMTP.SPF.Fail",
        SpfResult::SoftFail => "SMTP.SPF.SoftFail",
        SpfResult::Neutral => "SMTP.SPF.Neutral",
        SpfResult::TempError => "SMTP.SPF.TempError",
        SpfResult::PermError => "SMTP.SPF.PermError",
        SpfResult::None => "SMTP.SPF.None",
    }
}

/// A DKIM result's word and comment. A body that does not match its
/// signature's body hash is a `fail` (RFC 6376 §6.1.3), not mail-auth's
/// `neutral`.
fn dkim_result(result: &DkimResult) -> (&'static str, Option<String>) {
    match result {
        DkimResult::Pass => ("pass", None),
        DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            ("fail", Some("body hash did not verify".to_owned()))
        }
        DkimResult::Fail(e) => ("fail", Some(e.to_string())),
        DkimResult::Neutral(e) => ("neutral", Some(e.to_string())),
        DkimResult::PermError(e) => ("permerror", Some(e.to_string())),
        DkimResult::TempError(e) => ("temperror", Some(e.to_string())),
        DkimResult::None => ("none", None),
    }
}

fn dkim_counter(result: &str) -> &'static str {
    match result {
        "pass" => "SMTP.DKIM.Pass",
        "fail" => "SMTP.DKIM.Fail",
        "neutral" => "SMTP.DKIM.Neutral",
        "permerror" => "SMTP.DKIM.PermError",
        "temperror" => "SMTP.DKIM.TempError",
        _ => "SMTP.DKIM.None",
    }
}

/// `header.d`, `header.s`, `header.a` and `header.b` (the signature's
/// first 8 characters, RFC 6008) of a signature that could be read.
fn signature_props(output: &DkimOutput<'_>) -> Vec<(&'static str, String)> {
    let Some(signature) = output.signature() else {
        return Vec::new();
    };
    let b = base64_prefix(&signature.b);
    let mut props = vec![
        ("header.d", signature.d.clone()),
        ("header.s", signature.s.clone()),
        (
            "header.a",
            match signature.a {
                mail_auth::common::crypto::Algorithm::RsaSha256 => "rsa-sha256",
                mail_auth::common::crypto::Algorithm::RsaSha1 => "rsa-sha1",
                mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
            }
            .to_owned(),
        ),
    ];
    if !b.is_empty() {
        props.push(("header.b", b));
    }
    props
}

/// The first 8 base64 characters of a signature.
fn base64_prefix(b: &[u8]) -> String {
    use base64::Engine as _;
    let head = &b[..b.len().min(6)];
    base64::engine::general_purpose::STANDARD.encode(head)
}

/// The DMARC line; its counter, and the failure when DMARC failed.
fn dmarc_line(
    header: &mut ResultsHeader,
    output: &DmarcOutput,
) -> (&'static str, Option<DmarcFailure>) {
    let policy = output.policy();
    let policy_word = match policy {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    };
    let (result, comment, failed) = match output.result() {
        DmarcResult::Pass => ("pass", None, false),
        DmarcResult::Fail(e) => ("fail", Some(dmarc_reason(&e, output)), true),
        DmarcResult::TempError(_) => ("temperror", Some("DNS did not answer".to_owned()), false),
        DmarcResult::PermError(e) => ("permerror", Some(e.to_string()), false),
        DmarcResult::None => ("none", None, false),
    };
    let counter = match result {
        "pass" => "SMTP.DMARC.Pass",
        "fail" => "SMTP.DMARC.Fail",
        "temperror" => "SMTP.DMARC.TempError",
        "permerror" => "SMTP.DMARC.PermError",
        _ => "SMTP.DMARC.None",
    };
    let mut props = Vec::new();
    if !output.domain().is_empty() {
        props.push(("header.from", output.domain()));
    }
    if output.dmarc_record().is_some() {
        props.push(("policy.dmarc", policy_word));
    }
    header.result("dmarc", result, comment.as_deref(), &props);
    let failure = failed.then(|| DmarcFailure {
        domain: output.domain().to_owned(),
        policy: match policy {
            Policy::Reject => Asked::Reject,
            Policy::Quarantine => Asked::Quarantine,
            Policy::None | Policy::Unspecified => Asked::None,
        },
    });
    (counter, failure)
}

/// Why DMARC failed, in words.
fn dmarc_reason(e: &Error, output: &DmarcOutput) -> String {
    match e {
        Error::NotAligned => {
            let spf = matches!(output.spf_result(), DmarcResult::Fail(_));
            let dkim = matches!(output.dkim_result(), DmarcResult::Fail(_));
            match (spf, dkim) {
                (true, true) => "SPF and DKIM pass for other domains, not aligned".to_owned(),
                (true, false) => {
                    "SPF passes for another domain, not aligned; no DKIM pass".to_owned()
                }
                (false, true) => {
                    "DKIM passes for another domain, not aligned; no SPF pass".to_owned()
                }
                (false, false) => "neither SPF nor DKIM passes for the From: domain".to_owned(),
            }
        }
        other => other.to_string(),
    }
}

/// The counters of sender authentication, every name listed from the start
/// so `show stat` shows zeros too.
struct AuthStats {
    counters: Mutex<BTreeMap<&'static str, u64>>,
}

/// Every counter's name.
const COUNTERS: &[&str] = &[
    "SMTP.SPF.Pass",
    "SMTP.SPF.Fail",
    "SMTP.SPF.SoftFail",
    "SMTP.SPF.Neutral",
    "SMTP.SPF.None",
    "SMTP.SPF.TempError",
    "SMTP.SPF.PermError",
    "SMTP.DKIM.Pass",
    "SMTP.DKIM.Fail",
    "SMTP.DKIM.Neutral",
    "SMTP.DKIM.Policy",
    "SMTP.DKIM.None",
    "SMTP.DKIM.TempError",
    "SMTP.DKIM.PermError",
    "SMTP.DMARC.Pass",
    "SMTP.DMARC.Fail",
    "SMTP.DMARC.None",
    "SMTP.DMARC.TempError",
    "SMTP.DMARC.PermError",
    "SMTP.DMARC.Quarantined",
    "SMTP.ARC.Pass",
    "SMTP.ARC.Fail",
    "SMTP.ARC.None",
    "SMTP.AuthenticationResults.Removed",
];

impl Default for AuthStats {
    fn default() -> Self {
        AuthStats {
            counters: Mutex::new(COUNTERS.iter().map(|n| (*n, 0)).collect()),
        }
    }
}

impl AuthStats {
    fn add(&self, name: &'static str) {
        *lock(&self.counters).entry(name).or_default() += 1;
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        lock(&self.counters)
            .iter()
            .map(|(n, v)| ((*n).to_owned(), *v))
            .collect()
    }
}
