//! The console socket: `<data>/console.sock`, a Unix socket only the data
//! folder's owner can reach (the folder is 0700, the socket 0600). One
//! command line in, its output back, then the connection closes.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tracing::warn;

use crate::instance::Instance;

/// Where a server with data folder `data` listens for console commands.
pub fn console_socket_path(data: &Path) -> PathBuf {
    data.join("console.sock")
}

pub(crate) fn start(inst: Arc<Instance>) -> anyhow::Result<oneshot::Sender<()>> {
    use std::os::unix::fs::PermissionsExt;
    let path = console_socket_path(&inst.data);
    if path.exists() {
        // A socket left by a server that did not stop cleanly; a live one answers.
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            anyhow::bail!(
                "another mailhop process serves {} (console socket {} answers)",
                inst.name,
                path.display()
            );
        }
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let (tx, mut rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut rx => break,
                conn = listener.accept() => match conn {
                    Ok((stream, _)) => {
                        let inst = inst.clone();
                        tokio::spawn(async move {
                            let (r, mut w) = stream.into_split();
                            let mut line = String::new();
                            let mut reader = BufReader::new(r.take(64 * 1024));
                            if reader.read_line(&mut line).await.is_err() {
                                return;
                            }
                            let out = crate::commands::run(&inst, line.trim()).await;
                            let _ = w.write_all(out.as_bytes()).await;
                            let _ = w.shutdown().await;
                        });
                    }
                    Err(e) => warn!("Console: accept failed: {e}"),
                },
            }
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(tx)
}

use tokio::io::AsyncReadExt as _;

/// Send one console command to the server whose data folder is `data`.
pub fn send_console_command(data: &Path, command: &str) -> std::io::Result<String> {
    let path = console_socket_path(data);
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot reach the server's console socket {} ({e}); is the server running?",
                path.display()
            ),
        )
    })?;
    s.write_all(command.replace('\n', " ").as_bytes())?;
    s.write_all(b"\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
