//! The transferer: walks a destination's levels and hosts in order (load
//! balanced within a level), delivers a batch to the first host that takes
//! it, reuses cached connections, and reports per recipient. Does not touch
//! the store and does not decide routing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::balance::Balancer;
use crate::client::{Session, SessionError, Timeouts};
use crate::config::{TlsMode, TransferConfig};
use crate::error::{PlanError, TransferError};
use crate::native::NativeTarget;
use crate::outcome::{
    Attempt, Batch, Destination, RecipientResult, Target, TlsState, TransferReport,
};
use crate::pool::{DEFAULT_IDLE, DEFAULT_PER_TARGET, Pool};
use crate::resolve::{Candidate, Failure, Lookup, Unresolved};
use crate::tls::TlsClient;

/// How long idle connections are kept, and how many per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCache {
    /// Idle time before QUIT; zero keeps no connection.
    pub idle: Duration,
    pub per_target: usize,
}

impl Default for ConnectionCache {
    fn default() -> Self {
        Self {
            idle: DEFAULT_IDLE,
            per_target: DEFAULT_PER_TARGET,
        }
    }
}

/// Outbound SMTP for one server. Cheap to clone: clones share the resolver,
/// the connection cache and the load-balancing state.
#[derive(Clone)]
pub struct Transferer {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: TransferConfig,
    client_debug: AtomicBool,
    lookup: Lookup,
    tls: Option<TlsClient>,
    pool: Pool,
    balancer: Balancer,
}

/// A host that did not take the batch, and how far TLS got with it.
struct HostFailure {
    error: SessionError,
    tls: TlsState,
}

impl Transferer {
    pub fn new(cfg: TransferConfig) -> Result<Self, TransferError> {
        Self::with_cache(cfg, ConnectionCache::default())
    }

    pub fn with_cache(cfg: TransferConfig, cache: ConnectionCache) -> Result<Self, TransferError> {
        let lookup = Lookup::new(&cfg)?;
        let tls = match cfg.tls {
            TlsMode::Opportunistic => Some(TlsClient::new()?),
            TlsMode::Off => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client_debug: AtomicBool::new(cfg.client_debug),
                cfg,
                lookup,
                tls,
                pool: Pool::new(cache.idle, cache.per_target),
                balancer: Balancer::default(),
            }),
        })
    }

    /// `set config SMTPClientDebug=N` at run time.
    pub fn set_client_debug(&self, on: bool) {
        self.inner.client_debug.store(on, Ordering::Relaxed);
    }

    /// Deliver one batch to one destination. Never returns an error for
    /// per-host failures: they are in the report.
    pub async fn send(&self, dest: &Destination, batch: &Batch) -> TransferReport {
        let inner = &self.inner;
        if batch.recipients.is_empty() {
            return TransferReport::default();
        }
        let mut levels = match inner.lookup.levels(dest, inner.cfg.outbound_port).await {
            Ok(levels) => levels,
            Err(error) => return settle_all(batch, &error, Vec::new()),
        };
        let domain = match dest {
            Destination::Mx(domain) => domain.as_str(),
            Destination::Relay(_) => batch.recipients[0]
                .rsplit_once('@')
                .map_or("", |(_, domain)| domain),
        };
        let mut run = Run::default();
        for level in &mut levels {
            let key = level
                .iter()
                .map(Candidate::label)
                .collect::<Vec<_>>()
                .join(",");
            inner.balancer.order(key, level);
            for candidate in level.iter() {
                for hop in inner.lookup.expand(candidate).await {
                    let target = match hop {
                        Ok(target) => target,
                        Err(unresolved) => {
                            run.unresolved(unresolved);
                            continue;
                        }
                    };
                    tracing::info!(
                        target: "transfer",
                        "Router: Transferring mail to domain {domain} (host {}) via SMTP",
                        target.host
                    );
                    match self.deliver(&target, batch).await {
                        Ok((results, tls)) => return run.delivered(batch, target, results, tls),
                        // The message may have arrived: another host now would
                        // make a second copy. Retry later instead.
                        Err(failure) if failure.error.is_uncertain() => {
                            return run.uncertain(batch, target, failure);
                        }
                        Err(failure) => run.host_failed(target, failure),
                    }
                }
            }
        }
        run.all_failed(dest, batch)
    }

    /// Hands one batch to the next server of the domain over the native
    /// protocol (a cached connection first, else a new one). The batch's
    /// data starts with its routing items line ([`crate::Items::line`]).
    /// A connection that fails before the content went is a transient
    /// failure of every recipient; after it went, an uncertain one (the
    /// receiver recognises the resend by its items).
    pub async fn send_native(&self, target: &NativeTarget, batch: &Batch) -> TransferReport {
        if batch.recipients.is_empty() {
            return TransferReport::default();
        }
        let inner = &self.inner;
        let debug = inner.client_debug.load(Ordering::Relaxed);
        let hop = Target {
            host: target.server.clone(),
            addr: target.addr,
        };
        let mut run = Run::default();
        if let Some(mut session) = inner.pool.take(&hop) {
            session.debug = debug;
            match session.send(batch, true).await {
                Ok(results) => {
                    inner.pool.put(session);
                    return run.delivered(batch, hop, results, TlsState::Verified);
                }
                Err(error) if error.is_uncertain() => {
                    let failure = HostFailure {
                        error,
                        tls: TlsState::Verified,
                    };
                    return run.uncertain_via(batch, hop, failure, "NRPC");
                }
                Err(error) => tracing::debug!(
                    target: "transfer",
                    "NRPC: cached connection to {} failed ({error}); retrying on a new one",
                    target.server
                ),
            }
        }
        let timeouts = Timeouts::from(&inner.cfg);
        let connector = tokio_rustls::TlsConnector::from(target.tls.clone());
        let opened = Session::open_native(
            &hop,
            &inner.cfg.helo_name,
            timeouts,
            debug,
            &connector,
            target.name.clone(),
        )
        .await;
        let mut session = match opened {
            Ok(session) => session,
            Err(error) => {
                run.host_failed_via(
                    hop,
                    HostFailure {
                        error,
                        tls: TlsState::Plain,
                    },
                    "NRPC",
                );
                return run.all_transient(batch);
            }
        };
        match session.send(batch, false).await {
            Ok(results) => {
                inner.pool.put(session);
                run.delivered(batch, hop, results, TlsState::Verified)
            }
            Err(error) => {
                tokio::spawn(session.quit());
                let failure = HostFailure {
                    error,
                    tls: TlsState::Verified,
                };
                if failure.error.is_uncertain() {
                    run.uncertain_via(batch, hop, failure, "NRPC")
                } else {
                    run.host_failed_via(hop, failure, "NRPC");
                    run.all_transient(batch)
                }
            }
        }
    }

    /// `trace SERVER`: opens a native session to `target` (TLS handshake
    /// with both certificates, greeting, EHLO) and says QUIT; nothing is sent.
    pub async fn probe_native(&self, target: &NativeTarget) -> Result<(), String> {
        let inner = &self.inner;
        let hop = Target {
            host: target.server.clone(),
            addr: target.addr,
        };
        let connector = tokio_rustls::TlsConnector::from(target.tls.clone());
        let session = Session::open_native(
            &hop,
            &inner.cfg.helo_name,
            Timeouts::from(&inner.cfg),
            false,
            &connector,
            target.name.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        session.quit().await;
        Ok(())
    }

    /// The host list the router would try, in order, for `trace` (no SMTP
    /// sent; DNS is queried). Levels in configured order, before balancing.
    pub async fn plan(&self, dest: &Destination) -> Result<Vec<Vec<Target>>, PlanError> {
        let inner = &self.inner;
        let levels = inner.lookup.levels(dest, inner.cfg.outbound_port).await?;
        let mut planned = Vec::new();
        let mut unresolved = Vec::new();
        for level in &levels {
            let mut targets = Vec::new();
            for candidate in level {
                for hop in inner.lookup.expand(candidate).await {
                    match hop {
                        Ok(target) => targets.push(target),
                        Err(failed) => unresolved.push(failed),
                    }
                }
            }
            if !targets.is_empty() {
                planned.push(targets);
            }
        }
        if planned.is_empty() {
            return Err(unresolved_error(dest, &unresolved));
        }
        Ok(planned)
    }

    /// One host: a cached connection first (RSET; if it fails, once more on
    /// a fresh connection), else a new one.
    async fn deliver(
        &self,
        target: &Target,
        batch: &Batch,
    ) -> Result<(Vec<RecipientResult>, TlsState), HostFailure> {
        let inner = &self.inner;
        let debug = inner.client_debug.load(Ordering::Relaxed);
        if let Some(mut session) = inner.pool.take(target) {
            session.debug = debug;
            let tls = session.tls();
            let reused = session.send(batch, true).await;
            match reused {
                Ok(results) => {
                    inner.pool.put(session);
                    return Ok((results, tls));
                }
                Err(error) if error.is_uncertain() => {
                    return Err(HostFailure { error, tls });
                }
                Err(error) => tracing::debug!(
                    target: "transfer",
                    "SMTPClient: cached connection to {} failed ({error}); retrying on a new one",
                    target.host
                ),
            }
        }
        let mut session = self.open(target, debug).await?;
        let tls = session.tls();
        match session.send(batch, false).await {
            Ok(results) => {
                inner.pool.put(session);
                Ok((results, tls))
            }
            Err(error) => {
                tokio::spawn(session.quit());
                Err(HostFailure { error, tls })
            }
        }
    }

    /// A new session; a failed TLS handshake is retried once without TLS.
    async fn open(&self, target: &Target, debug: bool) -> Result<Session, HostFailure> {
        let inner = &self.inner;
        let timeouts = Timeouts::from(&inner.cfg);
        let helo = inner.cfg.helo_name.as_str();
        let first = Session::open(target, helo, timeouts, debug, inner.tls.as_ref()).await;
        let session = match first {
            Err(SessionError::Tls(e)) => {
                tracing::info!(
                    target: "transfer",
                    "SMTPClient: TLS negotiation with {} failed ({e}); retrying without TLS",
                    target.host
                );
                Session::open(target, helo, timeouts, debug, None).await
            }
            other => other,
        };
        session.map_err(|error| HostFailure {
            error,
            tls: TlsState::Plain,
        })
    }
}

/// What one `send` has tried so far.
#[derive(Default)]
struct Run {
    attempts: Vec<Attempt>,
    last_error: Option<String>,
    unresolved: Vec<Unresolved>,
    /// Some host was reached (or refused the connection): not only DNS failed.
    host_failed: bool,
}

impl Run {
    fn unresolved(&mut self, unresolved: Unresolved) {
        let reason = unresolved.reason();
        log_failure(&unresolved.host, &unresolved.host, &reason, "SMTP");
        self.attempts.push(Attempt {
            host: unresolved.host.clone(),
            addr: None,
            outcome: reason.clone(),
            tls: TlsState::Plain,
        });
        self.last_error = Some(reason);
        self.unresolved.push(unresolved);
    }

    fn host_failed(&mut self, target: Target, failure: HostFailure) {
        self.host_failed_via(target, failure, "SMTP");
    }

    fn host_failed_via(&mut self, target: Target, failure: HostFailure, via: &str) {
        let reason = failure.error.to_string();
        let addr = if via == "SMTP" {
            target.addr.ip().to_string()
        } else {
            target.addr.to_string()
        };
        log_failure(&target.host, &addr, &reason, via);
        self.attempts.push(Attempt {
            host: target.host,
            addr: Some(target.addr),
            outcome: reason.clone(),
            tls: failure.tls,
        });
        self.last_error = Some(reason);
        self.host_failed = true;
    }

    fn delivered(
        mut self,
        batch: &Batch,
        target: Target,
        results: Vec<RecipientResult>,
        tls: TlsState,
    ) -> TransferReport {
        let outcome = results
            .iter()
            .find_map(|result| match result {
                RecipientResult::Delivered { reply, .. } => Some(reply),
                _ => None,
            })
            .or_else(|| {
                results.iter().find_map(|result| match result {
                    RecipientResult::Permanent { reply, .. } => Some(reply),
                    RecipientResult::Transient { reason } => Some(reason),
                    RecipientResult::Delivered { .. } => None,
                })
            })
            .cloned()
            .unwrap_or_default();
        self.attempts.push(Attempt {
            host: target.host,
            addr: Some(target.addr),
            outcome,
            tls,
        });
        TransferReport {
            results: batch.recipients.iter().cloned().zip(results).collect(),
            attempts: self.attempts,
            waiting_for_dns: false,
            last_error: self.last_error,
        }
    }

    /// The content went to `target` and no final reply came: every
    /// recipient is a transient failure (a retry), no other host is tried.
    fn uncertain(self, batch: &Batch, target: Target, failure: HostFailure) -> TransferReport {
        self.uncertain_via(batch, target, failure, "SMTP")
    }

    fn uncertain_via(
        mut self,
        batch: &Batch,
        target: Target,
        failure: HostFailure,
        via: &str,
    ) -> TransferReport {
        let reason = format!(
            "{}; the message may have reached {}, so it is not sent to another host now",
            failure.error, target.host
        );
        self.host_failed_via(target, failure, via);
        self.last_error = Some(reason);
        self.all_transient(batch)
    }

    /// Every recipient a transient failure with the last error: try again later.
    fn all_transient(self, batch: &Batch) -> TransferReport {
        let reason = self.last_error.clone().unwrap_or_default();
        TransferReport {
            results: batch
                .recipients
                .iter()
                .map(|rcpt| {
                    let reason = reason.clone();
                    (rcpt.clone(), RecipientResult::Transient { reason })
                })
                .collect(),
            attempts: self.attempts,
            waiting_for_dns: false,
            last_error: self.last_error,
        }
    }

    /// Every host of every level failed.
    fn all_failed(self, dest: &Destination, batch: &Batch) -> TransferReport {
        if !self.host_failed {
            let error = unresolved_error(dest, &self.unresolved);
            return settle_all(batch, &error, self.attempts);
        }
        self.all_transient(batch)
    }
}

/// Why a destination has no address at all, given the names that failed.
fn unresolved_error(dest: &Destination, unresolved: &[Unresolved]) -> PlanError {
    if unresolved
        .iter()
        .any(|u| matches!(u.failure, Failure::Unavailable(_)))
    {
        return PlanError::DnsUnavailable;
    }
    match dest {
        Destination::Mx(domain) => PlanError::NoRoute(domain.clone()),
        Destination::Relay(_) => match unresolved.last() {
            Some(last) => PlanError::NoAddress(last.host.clone()),
            None => PlanError::NoRelayHost,
        },
    }
}

/// The same result for every recipient when no host could even be named.
fn settle_all(batch: &Batch, error: &PlanError, attempts: Vec<Attempt>) -> TransferReport {
    let reason = error.to_string();
    let result = match error {
        PlanError::NoRoute(_) => RecipientResult::Permanent {
            reply: reason.clone(),
            status: "5.1.2".into(),
        },
        PlanError::DnsUnavailable | PlanError::NoAddress(_) | PlanError::NoRelayHost => {
            RecipientResult::Transient {
                reason: reason.clone(),
            }
        }
    };
    TransferReport {
        results: batch
            .recipients
            .iter()
            .map(|rcpt| (rcpt.clone(), result.clone()))
            .collect(),
        attempts,
        waiting_for_dns: *error == PlanError::DnsUnavailable,
        last_error: Some(reason),
    }
}

fn log_failure(host: &str, addr: &str, reason: &str, via: &str) {
    tracing::warn!(
        target: "transfer",
        "Router: No messages transferred to {host} (host {addr}) via {via}: {reason}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawnable<T: Send>(_: T) {}

    #[test]
    fn transfers_can_run_on_any_worker_thread() {
        let cfg = TransferConfig {
            dns_servers: vec!["127.0.0.1:1".parse().unwrap()],
            tls: TlsMode::Off,
            ..TransferConfig::default()
        };
        let transferer = Transferer::new(cfg).unwrap();
        let dest = Destination::Mx("example.test".into());
        let batch = Batch {
            from: String::new(),
            recipients: vec![],
            data: Arc::default(),
            size: 0,
            body_8bit: false,
        };
        spawnable(transferer.send(&dest, &batch));
        spawnable(transferer.plan(&dest));
        spawnable(transferer);
    }
}
