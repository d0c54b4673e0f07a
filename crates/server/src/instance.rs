//! One running server: its store, router, listeners and console socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use directory::{Directory, NotesName};
use router::{Router, RouterShared, RouterStats, Snapshot, Verbosity};
use smtp::SmtpStats;
use store::Store;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::listener::{self, SmtpListenerKind};

/// Every listening task of `[server.listen]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    Smtp(SmtpListenerKind),
    Pop3 {
        implicit_tls: bool,
    },
    Imap {
        implicit_tls: bool,
    },
    /// The native protocol between servers of the domain.
    Native,
}

impl Listener {
    pub const ALL: [Listener; 8] = [
        Listener::Smtp(SmtpListenerKind::Smtp),
        Listener::Smtp(SmtpListenerKind::Submission),
        Listener::Smtp(SmtpListenerKind::Smtps),
        Listener::Pop3 {
            implicit_tls: false,
        },
        Listener::Pop3 { implicit_tls: true },
        Listener::Imap {
            implicit_tls: false,
        },
        Listener::Imap { implicit_tls: true },
        Listener::Native,
    ];

    pub fn task(self) -> console::Task {
        match self {
            Listener::Smtp(_) => console::Task::Smtp,
            Listener::Pop3 { .. } => console::Task::Pop3,
            Listener::Imap { .. } => console::Task::Imap,
            Listener::Native => console::Task::Router,
        }
    }

    /// The key in `[server.listen]`.
    pub fn key(self) -> &'static str {
        match self {
            Listener::Smtp(k) => k.key(),
            Listener::Pop3 {
                implicit_tls: false,
            } => "pop3",
            Listener::Pop3 { implicit_tls: true } => "pop3s",
            Listener::Imap {
                implicit_tls: false,
            } => "imap",
            Listener::Imap { implicit_tls: true } => "imaps",
            Listener::Native => "native",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Listener::Smtp(_) => "SMTP Server",
            Listener::Pop3 { .. } => "POP3 Server",
            Listener::Imap { .. } => "IMAP Server",
            Listener::Native => "NRPC Server",
        }
    }

    fn needs_tls(self) -> bool {
        matches!(
            self,
            Listener::Smtp(SmtpListenerKind::Smtps)
                | Listener::Pop3 { implicit_tls: true }
                | Listener::Imap { implicit_tls: true }
        )
    }
}

/// A task started by the server, as `show tasks` lists it.
/// How a running listener is stopped: the signal, and the task that ends
/// once its port is closed and its sessions are over.
pub(crate) type Stop = (oneshot::Sender<()>, tokio::task::JoinHandle<()>);

/// How long `tell TASK quit` waits for a listener's sessions to end.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) struct RunningTask {
    pub listener: Listener,
    pub label: &'static str,
    pub addr: SocketAddr,
    stop: Option<Stop>,
}

/// One mailhop server of the directory, running.
pub struct Instance {
    pub(crate) name: NotesName,
    pub(crate) directory_path: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) store: Store,
    pub(crate) router: Router,
    pub(crate) smtp_stats: Arc<SmtpStats>,
    pub(crate) access_stats: Arc<access::AccessStats>,
    pub(crate) started: Instant,
    pub(crate) tasks: Mutex<Vec<RunningTask>>,
    /// Debug variables set at run time (`set config NAME=VALUE`).
    pub(crate) config_vars: Mutex<BTreeMap<String, String>>,
    pub(crate) tls: ArcSwap<Option<Arc<rustls::ServerConfig>>>,
    /// `show server`'s "Server ID" line: the server's ID for the native
    /// protocol and its certifier, or why it has none.
    pub(crate) server_id: String,
    /// The native protocol's mutual TLS, from the server ID; `None` without one.
    pub(crate) native_tls: Option<certify::DomainTls>,
    /// Refusals of the inbound controls and DNS blacklist hits.
    pub(crate) control_stats: crate::controls::ControlStats,
    /// SPF, DKIM, DMARC and ARC of inbound mail: resolver and counters.
    pub(crate) sender_auth: crate::senderauth::SenderAuth,
    /// Internet password logins: throttle, cache, counters.
    pub(crate) auth: Arc<crate::auth::Authenticator>,
    console_stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Instance {
    /// Open the store, start the router, the listeners of `[server.listen]`
    /// and the console socket.
    pub async fn start(
        dir: Arc<Directory>,
        name: &NotesName,
        directory_path: PathBuf,
    ) -> anyhow::Result<Arc<Instance>> {
        let domain = dir.domain.name.clone();
        let snap = Snapshot::new(dir, name)
            .with_context(|| format!("server {name} is not in the directory"))?;
        let data = snap.server.data.clone();
        create_private_dir(&data)?;
        let store = Store::open(&data.join("store"))
            .with_context(|| format!("opening the store in {}", data.display()))?;
        let tls = crate::tls::load(&snap.server)?;
        let (server_id, native_tls) = server_identity(&directory_path, &domain, name, &data);
        let workers = usize::from(snap.config.delivery_threads).max(1);
        let verbosity = Verbosity::new(snap.server.debug.log_mail_routing);
        let lookup_debug = Verbosity::new(snap.server.debug.debug_router_lookup);
        let client_debug = Verbosity::new(snap.server.debug.smtp_client_debug);
        let snap_debug_router = snap.server.debug.debug_router;
        let shared = Arc::new(RouterShared {
            snapshot: ArcSwap::from_pointee(snap),
            store: store.clone(),
            stats: RouterStats::new(),
            verbosity,
            lookup_debug,
            client_debug,
            router_debug: Verbosity::new(snap_debug_router),
            raises: Mutex::new(routing::CostRaises::default()),
            native_tls: arc_swap::ArcSwapOption::from(
                native_tls.as_ref().map(|t| Arc::clone(&t.client)),
            ),
        });
        crate::upkeep::ensure_mail_files(&store, &shared.snapshot.load_full()).await;
        let router = Router::start(shared, workers);
        let inst = Arc::new(Instance {
            name: name.clone(),
            directory_path,
            data: data.clone(),
            store,
            router,
            smtp_stats: Arc::new(SmtpStats::new()),
            access_stats: Arc::new(access::AccessStats::new()),
            started: Instant::now(),
            tasks: Mutex::new(Vec::new()),
            config_vars: Mutex::new(BTreeMap::new()),
            tls: ArcSwap::from_pointee(tls),
            server_id,
            native_tls,
            control_stats: crate::controls::ControlStats::default(),
            sender_auth: crate::senderauth::SenderAuth::default(),
            auth: Arc::default(),
            console_stop: Mutex::new(None),
        });
        crate::upkeep::start_event_pruning(&inst);
        inst.prepare_logins();
        for l in Listener::ALL {
            if inst.listen_addr(l).is_some() {
                inst.start_listener(l).await?;
            }
        }
        let stop = crate::control::start(inst.clone())
            .with_context(|| format!("console socket in {}", data.display()))?;
        *lock(&inst.console_stop) = Some(stop);
        info!(
            "Router: mailhop server {} started (data {})",
            inst.name,
            data.display()
        );
        Ok(inst)
    }

    pub fn name(&self) -> &NotesName {
        &self.name
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.router.shared().snapshot.load_full()
    }

    pub(crate) fn listen_addr(&self, l: Listener) -> Option<SocketAddr> {
        let snap = self.snapshot();
        let a = &snap.server.listen;
        match l {
            Listener::Smtp(SmtpListenerKind::Smtp) => a.smtp,
            Listener::Smtp(SmtpListenerKind::Submission) => a.submission,
            Listener::Smtp(SmtpListenerKind::Smtps) => a.smtps,
            Listener::Pop3 {
                implicit_tls: false,
            } => a.pop3,
            Listener::Pop3 { implicit_tls: true } => a.pop3s,
            Listener::Imap {
                implicit_tls: false,
            } => a.imap,
            Listener::Imap { implicit_tls: true } => a.imaps,
            Listener::Native => a.native,
        }
    }

    /// Start every listener of a task (`load smtp|pop3|imap`); returns how many started.
    pub(crate) async fn load_task(self: &Arc<Self>, task: console::Task) -> anyhow::Result<usize> {
        let mut n = 0;
        for l in Listener::ALL.into_iter().filter(|l| l.task() == task) {
            if self.listen_addr(l).is_some() && self.start_listener(l).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Start one listener; `false` when it already runs or cannot run (no TLS).
    async fn start_listener(self: &Arc<Self>, l: Listener) -> anyhow::Result<bool> {
        let addr = self
            .listen_addr(l)
            .with_context(|| format!("no {} address in [server.listen]", l.key()))?;
        if l.needs_tls() && self.tls.load().is_none() {
            warn!(
                "{}: {} needs tls in the server document; not started",
                l.label(),
                l.key()
            );
            return Ok(false);
        }
        if l == Listener::Native && self.native_tls.is_none() {
            warn!(
                "{}: native needs the server's ID (see show server); not started",
                l.label()
            );
            return Ok(false);
        }
        if lock(&self.tasks).iter().any(|t| t.listener == l) {
            return Ok(false);
        }
        let (stop, addr) = match l {
            Listener::Smtp(kind) => listener::start(self.clone(), kind, addr).await?,
            Listener::Pop3 { implicit_tls } => {
                crate::access::start(self.clone(), access::Protocol::Pop3, implicit_tls, addr)
                    .await?
            }
            Listener::Imap { implicit_tls } => {
                crate::access::start(self.clone(), access::Protocol::Imap, implicit_tls, addr)
                    .await?
            }
            Listener::Native => crate::native::start(self.clone(), addr).await?,
        };
        lock(&self.tasks).push(RunningTask {
            listener: l,
            label: l.label(),
            addr,
            stop: Some(stop),
        });
        Ok(true)
    }

    /// Stop every task of a kind (`tell smtp quit`); returns how many stopped.
    /// Answers once the listeners' ports are closed (a connection after it
    /// is refused) and their sessions have ended, or after `STOP_WAIT`.
    pub(crate) async fn stop_task(&self, task: console::Task) -> usize {
        let mut stopping = Vec::new();
        {
            let mut tasks = lock(&self.tasks);
            tasks.retain_mut(|t| {
                if t.listener.task() == task {
                    if let Some((signal, running)) = t.stop.take() {
                        let _ = signal.send(());
                        stopping.push(running);
                    }
                    false
                } else {
                    true
                }
            });
        }
        let n = stopping.len();
        for running in stopping {
            let _ = tokio::time::timeout(STOP_WAIT, running).await;
        }
        n
    }

    /// Swap in a new directory snapshot (reload, `tell router update config`).
    pub fn apply_directory(&self, dir: Arc<Directory>) {
        match Snapshot::new(dir, &self.name) {
            Some(snap) => {
                let d = &snap.server.debug;
                for (name, from_directory) in [
                    ("log_mailrouting", d.log_mail_routing),
                    ("debugrouterlookup", d.debug_router_lookup),
                    ("smtpclientdebug", d.smtp_client_debug),
                    ("debugrouter", d.debug_router),
                ] {
                    if let Some(v) = self.debug_var(name) {
                        v.set(self.config_override(name).unwrap_or(from_directory));
                    }
                }
                match crate::tls::load(&snap.server) {
                    Ok(tls) => self.tls.store(Arc::new(tls)),
                    Err(e) => warn!("Directory: TLS files of {} not loaded: {e:#}", self.name),
                }
                let snap = Arc::new(snap);
                self.router.shared().snapshot.store(snap.clone());
                self.router.reconfigure();
                let store = self.store.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move { crate::upkeep::ensure_mail_files(&store, &snap).await });
                }
                self.prepare_logins();
            }
            None => warn!(
                "Directory: server {} is no longer in the directory; keeping its previous configuration",
                self.name
            ),
        }
    }

    /// Makes the dummy hash of the directory in use, in the background.
    fn prepare_logins(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (auth, dir) = (self.auth.clone(), self.snapshot().dir.clone());
        rt.spawn(async move { auth.prepare(&dir).await });
    }

    /// A debug variable the router reads at run time (`set config NAME=VALUE`).
    pub(crate) fn debug_var(&self, key: &str) -> Option<&Verbosity> {
        let shared = self.router.shared();
        match key {
            "log_mailrouting" => Some(&shared.verbosity),
            "debugrouterlookup" => Some(&shared.lookup_debug),
            "smtpclientdebug" => Some(&shared.client_debug),
            "debugrouter" => Some(&shared.router_debug),
            _ => None,
        }
    }

    /// A value set with `set config`, which outlives directory reloads.
    pub(crate) fn config_override(&self, key: &str) -> Option<u8> {
        lock(&self.config_vars)
            .get(key)
            .and_then(|v| v.parse().ok())
    }

    /// Lines printed at start: every port this server listens on.
    pub fn describe_ports(&self) -> Vec<String> {
        let mut out = vec![format!(
            "mailhop: server {} ({}) data {}",
            self.name,
            self.snapshot().server.hostname,
            self.data.display()
        )];
        for t in lock(&self.tasks).iter() {
            out.push(format!("  {:<18} {}", t.listener.key(), t.addr));
        }
        out.push(format!(
            "  {:<18} {}",
            "Console socket",
            crate::control::console_socket_path(&self.data).display()
        ));
        out
    }

    pub async fn shutdown(&self) {
        for t in [
            console::Task::Smtp,
            console::Task::Pop3,
            console::Task::Imap,
        ] {
            self.stop_task(t).await;
        }
        if let Some(stop) = lock(&self.console_stop).take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A folder only its owner may open (the console socket lives in it).
fn create_private_dir(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(())
}

/// The server's ID (issued on its first start when the certifier is at
/// hand), checked by building the mutual TLS of the native protocol from it,
/// as `show server`'s line. A server without one runs, but cannot take part
/// in native transfer, and the log says why.
fn server_identity(
    directory_file: &std::path::Path,
    domain: &str,
    name: &NotesName,
    data: &std::path::Path,
) -> (String, Option<certify::DomainTls>) {
    let built = crate::ids::server_id(directory_file, domain, &name.abbreviated(), data)
        .and_then(|id| certify::DomainTls::new(&id).map(|tls| (id, tls)));
    match built {
        Ok((id, tls)) => (
            format!("{} (certified by {})", id.server(), id.certifier_name()),
            Some(tls),
        ),
        Err(e) => {
            tracing::warn!("Server {name}: no server ID, so no native transfer: {e}");
            (format!("none - {e}"), None)
        }
    }
}
