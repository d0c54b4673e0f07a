//! Wiring: runs one or more mailhop servers of a directory in one process.
//!
//! Owns each server's tasks and ports (SMTP listeners, the router, the
//! console socket), the directory snapshot and its reload, the zero-config
//! data folder, and the statistics the console reads. Protocol and routing
//! logic live in their own crates; this crate only connects them.

mod access;
mod auth;
mod commands;
mod control;
mod controls;
pub mod dkimkeys;
mod dnscheck;
pub mod ids;
mod instance;
mod listener;
mod mailrules;
mod native;
mod senderauth;
mod tls;
mod upkeep;
pub mod zeroconf;

pub use auth::hash_password;
pub use control::{console_socket_path, send_console_command};
pub use instance::Instance;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tracing::{error, info};

/// What `mailhop serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub directory: PathBuf,
    /// Server names to run; empty: every server of the directory.
    pub servers: Vec<String>,
}

/// Load and validate the directory, or the error lines `mailhop check` prints.
pub fn load_directory(path: &Path) -> anyhow::Result<directory::Directory> {
    check_directory(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Load and validate the directory as a server uses it: the documents
/// (`directory::load`), then each DKIM key loaded as the signer will.
pub fn check_directory(path: &Path) -> Result<directory::Directory, directory::DirectoryErrors> {
    let dir = directory::load(path)?;
    let errors = router::dkim::check(&dir);
    if errors.is_empty() {
        Ok(dir)
    } else {
        Err(directory::DirectoryErrors(errors))
    }
}

/// Make sure rustls has exactly one crypto provider (aws-lc-rs).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Run the servers until Ctrl-C or SIGTERM.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    install_crypto_provider();
    let dir = Arc::new(load_directory(&opts.directory)?);
    let names: Vec<directory::NotesName> = if opts.servers.is_empty() {
        dir.servers.iter().map(|s| s.name.clone()).collect()
    } else {
        let mut v = Vec::new();
        for n in &opts.servers {
            match dir.server_by_str(n) {
                Some(s) => v.push(s.name.clone()),
                None => bail!(
                    "server {n} is not in the directory {}",
                    opts.directory.display()
                ),
            }
        }
        v
    };
    if names.is_empty() {
        bail!("the directory {} has no server", opts.directory.display());
    }
    // Every server whose data folder this process can own: without
    // `--server`, one that another mailhop process runs already is skipped
    // (the same directory started as two processes forms one domain).
    let every = opts.servers.is_empty();
    let mut instances = Vec::new();
    let mut skipped = Vec::new();
    for name in &names {
        let started = Instance::start(dir.clone(), name, opts.directory.clone())
            .await
            .with_context(|| format!("starting server {name}"));
        let inst = match started {
            Ok(inst) => inst,
            Err(e)
                if every
                    && matches!(
                        e.downcast_ref::<store::StoreError>(),
                        Some(store::StoreError::Locked { .. })
                    ) =>
            {
                let why = format!("{e:#}");
                println!("mailhop: server {name} not started here: {why}");
                skipped.push(why);
                continue;
            }
            Err(e) => return Err(e),
        };
        for line in inst.describe_ports() {
            println!("{line}");
        }
        instances.push(inst);
    }
    if instances.is_empty() {
        bail!(
            "no server of {} could be started here: {}",
            opts.directory.display(),
            skipped.join("; ")
        );
    }
    let watcher = tokio::spawn(watch_directory(opts.directory.clone(), instances.clone()));
    wait_for_shutdown().await;
    watcher.abort();
    for inst in &instances {
        inst.shutdown().await;
    }
    info!("mailhop: shut down");
    Ok(())
}

async fn wait_for_shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// Poll the directory's files; on a change, load and validate the whole
/// directory and swap it in atomically, or keep the old one and log why.
async fn watch_directory(path: PathBuf, instances: Vec<Arc<Instance>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mtimes = |path: PathBuf| async move {
        tokio::task::spawn_blocking(move || directory_mtimes(&path))
            .await
            .unwrap_or_default()
    };
    let mut known = mtimes(path.clone()).await;
    loop {
        tick.tick().await;
        let now = mtimes(path.clone()).await;
        if now == known {
            continue;
        }
        known = now;
        reload_directory(&path, &instances).await;
    }
}

/// Load and validate the whole directory (on a blocking thread: parsing a
/// large directory must not stall the servers' sessions); swap it into every
/// server, or keep the one in use and log why the edit was refused.
pub async fn reload_directory(path: &Path, instances: &[Arc<Instance>]) -> bool {
    let owned = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || load_directory(&owned))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the directory reader failed: {e}")));
    match loaded {
        Ok(new) => {
            let new = Arc::new(new);
            for inst in instances {
                inst.apply_directory(new.clone());
            }
            info!("Directory: reloaded {}", path.display());
            true
        }
        Err(e) => {
            error!(
                "Directory: the edit of {} is refused; the previous directory stays in use:\n{e}",
                path.display()
            );
            false
        }
    }
}

/// The files of a directory (one file, or a folder's `*.toml`) with their mtimes.
fn directory_mtimes(path: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    files
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((p, m))
        })
        .collect()
}
