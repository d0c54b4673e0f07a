//! Where the server's log goes, and how it looks: standard error (colours
//! only on a terminal, and never with `NO_COLOR`), and optionally a log file
//! (Domino's console.log) rotated by size, as text or JSON lines. Owns the
//! tracing subscriber; decides nothing about what is logged.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal as _, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The filter without `MAILHOP_LOG`: mailhop at `info`; the libraries'
/// chatter (a TLS client without SNI, DNS retries) only when it matters.
pub const DEFAULT_FILTER: &str = "info,rustls=error,tokio_rustls=error,hickory_proto=error,hickory_resolver=warn,hickory_server=warn,mail_auth=warn";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line (time, level, fields).
    Json,
}

/// Where the log goes besides standard error.
#[derive(Clone, Debug)]
pub struct LogFile {
    pub path: PathBuf,
    /// Rotated when a write takes it past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept: `console.log.1` (newest) … `console.log.N`.
    pub keep: u32,
}

/// Colours on standard error: only on a terminal, and not when `NO_COLOR`
/// is set to anything (<https://no-color.org>).
pub fn colour(stderr_is_terminal: bool, no_color: Option<&str>) -> bool {
    stderr_is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the subscriber: standard error, and `file` when given.
pub fn init(format: LogFormat, file: Option<LogFile>) -> io::Result<()> {
    let filter =
        EnvFilter::try_from_env("MAILHOP_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = colour(
        io::stderr().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    );
    let rotating = match file {
        Some(f) => Some(Rotating::open(f)?),
        None => None,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let stderr = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Text => registry
            .with(stderr)
            .with(rotating.map(|w| {
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(w)
            }))
            .try_init(),
        LogFormat::Json => registry
            .with(stderr.json())
            .with(rotating.map(|w| {
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(w)
            }))
            .try_init(),
    };
    Ok(())
}

/// A log file that is renamed to `.1` (and the older ones shifted) when it
/// passes its size. Shared by every thread that logs.
#[derive(Clone)]
pub struct Rotating(Arc<Mutex<RotatingFile>>);

struct RotatingFile {
    spec: LogFile,
    file: File,
    size: u64,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl Rotating {
    pub fn open(spec: LogFile) -> io::Result<Rotating> {
        if let Some(parent) = spec.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = open_append(&spec.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", spec.path.display())))?;
        let size = file.metadata()?.len();
        Ok(Rotating(Arc::new(Mutex::new(RotatingFile {
            spec,
            file,
            size,
        }))))
    }
}

impl RotatingFile {
    fn rotated(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}.{n}", self.spec.path.display()))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.spec.keep == 0 {
            self.file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.spec.path)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.spec.keep));
            for n in (1..self.spec.keep).rev() {
                let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            std::fs::rename(&self.spec.path, self.rotated(1))?;
            self.file = open_append(&self.spec.path)?;
        }
        self.size = 0;
        Ok(())
    }

    fn write_line(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self.size > 0 && self.size.saturating_add(len) > self.spec.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size = self.size.saturating_add(len);
        Ok(buf.len())
    }
}

/// One event's line, written whole under the lock.
pub struct Line(Arc<Mutex<RotatingFile>>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut f) => f.write_line(buf),
            // A thread panicked while logging: the file is still usable.
            Err(poisoned) => poisoned.into_inner().write_line(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Rotating {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Arc::clone(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("")));
        assert!(!colour(true, Some("1")));
        assert!(!colour(false, None));
    }

    #[test]
    fn the_file_is_rotated_by_size_keeping_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/console.log");
        let r = Rotating::open(LogFile {
            path: path.clone(),
            max_bytes: 100,
            keep: 2,
        })
        .unwrap();
        for i in 0..10 {
            let line = format!("line {i:02} {}\n", "x".repeat(30));
            r.make_writer().write_all(line.as_bytes()).unwrap();
        }
        // 40-byte lines, 100 bytes a file: two lines each; the oldest go.
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path).lines().count(), 2);
        assert!(read(&path).starts_with("line 08"));
        assert!(read(&dir.path().join("logs/console.log.1")).starts_with("line 06"));
        assert!(read(&dir.path().join("logs/console.log.2")).starts_with("line 04"));
        assert!(!dir.path().join("logs/console.log.3").exists());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
