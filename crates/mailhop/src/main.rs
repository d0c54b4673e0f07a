//! The `mailhop` command (SPEC §9): subcommands only; the work is in the crates.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod logging;

/// mimalloc: the server allocates and frees many small buffers per message;
/// glibc's allocator spent a fifth of the IMAP FETCH time on that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mailhop",
    version,
    about = "A mail routing server with Domino's routing model",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the servers of a directory (default: create or reuse ./mailhop-data).
    Serve {
        /// The directory file (default: ./mailhop-data/directory.toml,
        /// created on first start with one server on loopback ports).
        #[arg(long)]
        directory: Option<PathBuf>,
        /// Run only these servers (repeatable); default every server of the directory.
        #[arg(long = "server")]
        servers: Vec<String>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Validate a directory: `FILE:LINE: field: reason` for each error.
    Check {
        /// The directory file or folder (default: ./mailhop-data/directory.toml).
        #[arg(long)]
        directory: Option<PathBuf>,
    },
    /// Create the domain's certifier beside the directory file (if there is
    /// none); with --server, write a new ID for that server to copy into its
    /// data folder on another machine.
    Certify {
        /// The directory file; the certifier is kept beside it
        /// (default: ./mailhop-data/directory.toml).
        #[arg(long)]
        directory: Option<PathBuf>,
        /// Issue an ID for this server of the directory.
        #[arg(long)]
        server: Option<String>,
        /// Where the server's ID is written (default: its data folder).
        #[arg(long, requires = "server")]
        out: Option<PathBuf>,
    },
    /// Read a password on standard input and print its argon2 hash.
    Passwd,
    /// Print a shell completion script (e.g. `mailhop completions bash >
    /// /etc/bash_completion.d/mailhop`).
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; read it with `mailhop man | man -l -`).
    Man,
    /// Help on a command, or `mailhop help directory` for the directory
    /// file's reference (the documents, their fields and what they do).
    Help {
        /// A command name, or `directory`.
        topic: Option<String>,
    },
    /// Run a console command on a running server.
    Console {
        /// The directory file naming the server and its data folder
        /// (default: ./mailhop-data/directory.toml).
        #[arg(long)]
        directory: Option<PathBuf>,
        /// The server to ask (needed when the directory has several).
        #[arg(long)]
        server: Option<String>,
        /// The command, e.g. `show stat mail`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// DKIM keys for signing outbound mail.
    Dkim {
        #[command(subcommand)]
        action: DkimCmd,
    },
    /// Look into a mail file (works while the server runs).
    Mailfile {
        /// The directory file naming the server and its data folder
        /// (default: ./mailhop-data/directory.toml).
        #[arg(long, global = true)]
        directory: Option<PathBuf>,
        /// The server whose store holds the mail file (needed when the
        /// directory has several).
        #[arg(long, global = true)]
        server: Option<String>,
        #[command(subcommand)]
        action: MailfileCmd,
    },
}

/// Where `serve` logs: standard error always; a file when asked.
#[derive(clap::Args)]
struct LogArgs {
    /// Also write the log to this file (Domino's console.log), owner-only,
    /// rotated by size. MAILHOP_LOG (a tracing filter) sets what is logged.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Rotate the log file when it passes this size (e.g. 10MB, 512KB).
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "10MB",
        requires = "log_file"
    )]
    log_max_size: directory::Size,
    /// Rotated log files kept (FILE.1 the newest).
    #[arg(long, value_name = "N", default_value_t = 5, requires = "log_file")]
    log_keep: u32,
    /// Log lines as readable text or as JSON objects, one per line.
    #[arg(long, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
}

#[derive(Subcommand)]
enum DkimCmd {
    /// Make a private key for DOMAIN (PKCS#8 PEM, mode 0600, never
    /// overwriting a file); print the DNS TXT record to publish and the
    /// `dkim_sign` entry for the directory.
    Keygen {
        domain: String,
        /// The selector (default: mh and the year, e.g. mh2026).
        #[arg(long)]
        selector: Option<String>,
        #[arg(long, value_enum, default_value_t = Algorithm::Rsa)]
        algorithm: Algorithm,
        /// Where the key is written (default: dkim/DOMAIN.SELECTOR.pem).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Algorithm {
    /// RSA 2048 bits (rsa-sha256)
    Rsa,
    /// Ed25519 (ed25519-sha256, RFC 8463)
    Ed25519,
}

#[derive(Subcommand)]
enum MailfileCmd {
    /// List messages: id, date, from, subject, size, flags.
    Ls {
        /// The mail file, as the directory names it (e.g. mail/jdoe).
        mail_file: String,
        /// The folder to list.
        #[arg(long, default_value = "Inbox")]
        folder: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print one message as stored.
    Show {
        /// The mail file, as the directory names it (e.g. mail/jdoe).
        mail_file: String,
        /// The message's id (UID) in the folder, as `ls` shows it.
        id: u32,
        /// The folder holding it.
        #[arg(long, default_value = "Inbox")]
        folder: String,
    },
}

/// A user error: one line, exit status 1.
struct UserError(String);

impl<E: std::fmt::Display> From<E> for UserError {
    fn from(e: E) -> Self {
        UserError(format!("{e:#}"))
    }
}

/// Threads for blocking work (store reads, directory parsing).
const BLOCKING_THREADS: usize = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Cmd::Serve { .. }) {
        // Output piped into `head` and the like: end quietly when the
        // reader goes, as Unix tools do, instead of failing on a write.
        // SAFETY: sets the default disposition of one signal before any
        // thread exists; no handler runs Rust code.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(UserError(msg)) => {
            eprintln!("mailhop: {msg}");
            ExitCode::from(1)
        }
    }
}

const DEFAULT_FOLDER: &str = "mailhop-data";

fn default_directory(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| Path::new(DEFAULT_FOLDER).join(server::zeroconf::DIRECTORY_FILE))
}

fn run(cli: Cli) -> Result<(), UserError> {
    match cli.command {
        Cmd::Serve {
            directory,
            servers,
            log,
        } => {
            logging::init(
                log.log_format,
                log.log_file.map(|path| logging::LogFile {
                    path,
                    max_bytes: log.log_max_size.0,
                    keep: log.log_keep,
                }),
            )?;
            let directory = match directory {
                Some(d) => d,
                None => {
                    let zc = server::zeroconf::ensure(Path::new(DEFAULT_FOLDER))?;
                    if let Some(pw) = zc.admin_password {
                        println!(
                            "mailhop: created {DEFAULT_FOLDER}/ (directory {})",
                            zc.directory.display()
                        );
                        println!("mailhop: administrator admin@mailhop.localhost, password: {pw}");
                        println!(
                            "mailhop: (printed once; change it with `mailhop passwd` and the directory)"
                        );
                    } else {
                        println!("mailhop: using {}", zc.directory.display());
                    }
                    zc.directory
                }
            };
            if let Ok(dir) = directory::load(&directory) {
                for w in directory::not_applied(&dir) {
                    eprintln!("{w}");
                }
            }
            // Store reads and directory parsing run on blocking threads; a
            // small pool keeps their per-thread caches (allocator heaps,
            // stacks) from growing with the load.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(BLOCKING_THREADS)
                .build()?;
            rt.block_on(server::serve(server::ServeOptions { directory, servers }))?;
            Ok(())
        }
        Cmd::Check { directory } => {
            let path = default_directory(directory);
            match server::check_directory(&path) {
                Ok(dir) => {
                    // Warnings, not errors: the directory is valid.
                    for w in directory::not_applied(&dir) {
                        println!("{w}");
                    }
                    println!(
                        "{}: valid ({} servers, {} persons, {} groups)",
                        path.display(),
                        dir.servers.len(),
                        dir.persons.len(),
                        dir.groups.len()
                    );
                    Ok(())
                }
                Err(errors) => {
                    print!("{errors}");
                    if !errors.to_string().ends_with('\n') {
                        println!();
                    }
                    Err(UserError(format!("{} has errors", path.display())))
                }
            }
        }
        Cmd::Certify {
            directory,
            server,
            out,
        } => {
            let path = default_directory(directory);
            let dir = directory::load(&path).map_err(|e| UserError(e.to_string()))?;
            let issue = match &server {
                Some(name) => {
                    let doc = dir.server_by_str(name).ok_or_else(|| {
                        UserError(format!("no server {name} in {}", path.display()))
                    })?;
                    Some((
                        doc.name.abbreviated(),
                        out.unwrap_or_else(|| doc.data.clone()),
                    ))
                }
                None => None,
            };
            let done = server::ids::certify(
                &path,
                &dir.domain.name,
                issue.as_ref().map(|(n, f)| (n.as_str(), f.as_path())),
            )?;
            for line in done {
                println!("{line}");
            }
            Ok(())
        }
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "mailhop", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(())
        }
        Cmd::Help { topic } => help(topic.as_deref()),
        Cmd::Passwd => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let password = input.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(UserError("no password on standard input".into()));
            }
            println!("{}", server::hash_password(password)?);
            Ok(())
        }
        Cmd::Console {
            directory,
            server,
            command,
        } => {
            let data = server_data(directory, server.as_deref())?;
            print!(
                "{}",
                server::send_console_command(&data, &command.join(" "))?
            );
            Ok(())
        }
        Cmd::Dkim {
            action:
                DkimCmd::Keygen {
                    domain,
                    selector,
                    algorithm,
                    out,
                },
        } => {
            use chrono::Datelike as _;
            let selector = selector.unwrap_or_else(|| format!("mh{}", chrono::Local::now().year()));
            let out = out.unwrap_or_else(|| {
                Path::new("dkim").join(format!(
                    "{}.{}.pem",
                    domain.trim().trim_end_matches('.').to_ascii_lowercase(),
                    selector.trim().to_ascii_lowercase()
                ))
            });
            let algorithm = match algorithm {
                Algorithm::Rsa => server::dkimkeys::KeyAlgorithm::Rsa,
                Algorithm::Ed25519 => server::dkimkeys::KeyAlgorithm::Ed25519,
            };
            let made = server::dkimkeys::keygen(&domain, &selector, algorithm, &out)?;
            println!(
                "mailhop: wrote the private key {} (mode 0600)",
                made.key_file.display()
            );
            println!("Publish this DNS record:");
            println!("{}", made.txt_record);
            println!(
                "Add this to [configuration.outbound] of the directory (the key's path is relative to the directory file's folder):"
            );
            println!("{}", made.directory_line);
            Ok(())
        }
        Cmd::Mailfile {
            directory,
            server,
            action,
        } => {
            let data = server_data(directory, server.as_deref())?;
            let store = store::Store::open_read_only(&data.join("store"))?;
            match action {
                MailfileCmd::Ls {
                    mail_file,
                    folder,
                    json,
                } => mailfile_ls(&store, &mail_file, &folder, json),
                MailfileCmd::Show {
                    mail_file,
                    id,
                    folder,
                } => match store.message_body(&mail_file, &folder, id)? {
                    Some(body) => {
                        use std::io::Write as _;
                        std::io::stdout().write_all(&body)?;
                        Ok(())
                    }
                    None => Err(UserError(format!(
                        "no message {id} in {mail_file} {folder}"
                    ))),
                },
            }
        }
    }
}

/// The data folder of the named server (or the only server) of a directory.
fn server_data(directory: Option<PathBuf>, name: Option<&str>) -> Result<PathBuf, UserError> {
    let path = default_directory(directory);
    let dir = directory::load(&path).map_err(|e| UserError(format!("{}: {e}", path.display())))?;
    let server = match name {
        Some(n) => dir
            .server_by_str(n)
            .ok_or_else(|| UserError(format!("no server {n} in {}", path.display())))?,
        None => match dir.servers.as_slice() {
            [one] => one,
            _ => {
                return Err(UserError(format!(
                    "{} has several servers: say which with --server",
                    path.display()
                )));
            }
        },
    };
    Ok(server.data.clone())
}

fn mailfile_ls(
    store: &store::Store,
    mail_file: &str,
    folder: &str,
    json: bool,
) -> Result<(), UserError> {
    let entries = store.messages(mail_file, folder)?;
    if entries.is_empty() && !json {
        println!("{mail_file}: {folder} is empty");
    }
    for e in entries {
        let date = chrono::DateTime::from_timestamp_millis(e.date.unwrap_or(e.internal_date))
            .map(|d| d.to_rfc3339())
            .unwrap_or_default();
        let flags = e.flags.to_string();
        if json {
            let v = serde_json::json!({
                "id": e.uid,
                "date": date,
                "from": e.from,
                "subject": e.subject,
                "size": e.size,
                "flags": flags,
                "message_id": e.message_id.as_deref().map(|m| m.trim_start_matches('<').trim_end_matches('>')),
                "route_servers": e.route_servers,
                "route_times": e.route_times,
            });
            println!("{v}");
        } else {
            println!(
                "{:>6}  {:<25}  {:<30}  {:<40}  {:>8}  {}",
                e.uid, date, e.from, e.subject, e.size, flags
            );
        }
    }
    Ok(())
}

/// The directory file's reference, built into the binary.
const DIRECTORY_REFERENCE: &str = include_str!("../../../docs/DIRECTORY.md");

/// `mailhop help [TOPIC]`: the directory reference, or a command's help.
fn help(topic: Option<&str>) -> Result<(), UserError> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    match topic {
        None => {
            cmd.print_long_help()?;
            Ok(())
        }
        Some("directory") => {
            print!("{DIRECTORY_REFERENCE}");
            Ok(())
        }
        Some(name) => match cmd.find_subcommand_mut(name) {
            Some(sub) => {
                sub.print_long_help()?;
                Ok(())
            }
            None => Err(UserError(format!(
                "no help on '{name}': try `mailhop help` for the commands, or `mailhop help directory`"
            ))),
        },
    }
}
