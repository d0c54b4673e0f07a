//! Zero configuration: `mailhop serve` in an empty folder creates
//! `./mailhop-data/` with a directory of one domain, one server on loopback
//! ports, an administrator with a generated password (printed once), and a
//! self-signed certificate (named for the server, with `localhost`,
//! 127.0.0.1 and ::1, for a year). A second start reuses it, renewing the
//! certificate when it nears its end.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::Rng as _;

/// The generated directory file inside the data folder.
pub const DIRECTORY_FILE: &str = "directory.toml";

/// The zero-configuration server's host name, its certificate's name.
const HOSTNAME: &str = "mail.mailhop.localhost";

/// What `ensure` did.
pub struct ZeroConfig {
    pub directory: PathBuf,
    /// The administrator's password when the folder was just created.
    pub admin_password: Option<String>,
}

/// Create the data folder on first start; reuse it afterwards.
pub fn ensure(folder: &Path) -> anyhow::Result<ZeroConfig> {
    let directory = folder.join(DIRECTORY_FILE);
    if directory.exists() {
        let (cert, key) = (folder.join("cert.pem"), folder.join("key.pem"));
        if cert.exists() && key.exists() {
            // A year's certificate near its end is renewed, same key.
            match certify::renew_if_near_end(&cert, &key, HOSTNAME, time::OffsetDateTime::now_utc())
            {
                Ok(true) => tracing::info!(
                    "Server: TLS certificate {} renewed for {} days",
                    cert.display(),
                    certify::SELF_SIGNED_DAYS
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!("Server: TLS certificate not renewed: {e}"),
            }
        }
        return Ok(ZeroConfig {
            directory,
            admin_password: None,
        });
    }
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    {
        // The folder holds the keys and the store: its owner's alone.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} owner-only", folder.display()))?;
    }
    let hostname = HOSTNAME;
    let (cert, key) =
        certify::self_signed(hostname).context("generating a self-signed certificate")?;
    write_private(&folder.join("key.pem"), key.as_bytes())?;
    write_private(&folder.join("cert.pem"), cert.as_bytes())?;

    let password: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    let hash = crate::auth::hash_password(&password)?;
    let text = format!(
        r#"# mailhop directory, generated on first start. Edit it while the server
# runs: a valid change is picked up within a second, a broken one is refused.
# The documents and their fields are described in docs/DIRECTORY.md.

[domain]
name = "Mailhop"

[global_domain]
primary_internet_domain = "mailhop.localhost"

[[server]]
name = "Mail/Mailhop"
hostname = "{hostname}"
administrators = ["Admin/Mailhop"]
smtp_auth = "optional"
tls = {{ cert = "cert.pem", key = "key.pem" }}
data = "mail"

[server.listen]
smtp = "127.0.0.1:2525"
submission = "127.0.0.1:2587"
smtps = "127.0.0.1:2465"
pop3 = "127.0.0.1:2110"
pop3s = "127.0.0.1:2995"
imap = "127.0.0.1:2143"
imaps = "127.0.0.1:2993"

[[configuration]]
server = "*"
# Nothing leaves this server: mail to other Internet domains gets a
# Delivery Failure Report "No route found to domain ...".
smtp_outside_local_domain = false

[[person]]
full_name = "CN=Admin/O=Mailhop"
first_name = "Admin"
last_name = "Mailhop"
short_name = "admin"
internet_address = "admin@mailhop.localhost"
mail_server = "Mail/Mailhop"
mail_file = "mail/admin"
internet_password = "{hash}"
"#
    );
    write_private(&directory, text.as_bytes())?;
    Ok(ZeroConfig {
        directory,
        admin_password: Some(password),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
