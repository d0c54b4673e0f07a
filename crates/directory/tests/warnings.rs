//! Fields read but not applied yet: one warning each, at the field's line,
//! only when set to something other than the default.

const BASE: &str = r#"[domain]
name = "Acme"

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"

[server.listen]
native = "127.0.0.1:0"

[server.debug]
smtpsaveimporterrors = 2
DebugRouter = 2

[[configuration]]
server = "*"
mailboxes = 2
smtp_reachable = "same-network"
journal_to = ""

[configuration.inbound]
deny_senders = ["@spam.example"]
allow_senders = []

[[configuration.rule]]
when = { subject_contains = "x" }
action = "hold"

[[configuration.rule]]
when = { subject_contains = "y" }
action = "move-to:mail/audit"

[[mail_in]]
name = "Audit"
server = "Mail/Acme"
mail_file = "mail/audit"

[[connection]]
type = "native"
source = "Mail/Acme"
destination = "Hub/Acme"
schedule = { times = "08:00-17:00", repeat = "30m", days = "Mon-Fri" }

[[server]]
name = "Hub/Acme"
hostname = "hub.acme.com"
"#;

#[test]
fn each_field_set_but_not_applied_is_named_once_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("d.toml");
    std::fs::write(&path, BASE).unwrap();
    let dir = directory::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let line = |needle: &str| {
        BASE.lines()
            .position(|l| l.starts_with(needle))
            .map(|i| i + 1)
            .unwrap()
    };
    let got: Vec<(usize, String)> = directory::not_applied(&dir)
        .into_iter()
        .map(|w| {
            assert_eq!(w.file, path);
            assert_eq!(w.reason, directory::NOT_APPLIED);
            (w.line, w.field)
        })
        .collect();
    let want: Vec<(usize, String)> = [
        (
            "smtpsaveimporterrors",
            "server[0].debug.SMTPSaveImportErrors",
        ),
        ("mailboxes = 2", "configuration[0].mailboxes"),
    ]
    .into_iter()
    .map(|(needle, field)| (line(needle), field.to_owned()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        directory::not_applied(&dir)[0].to_string(),
        format!(
            "{}:{}: server[0].debug.SMTPSaveImportErrors: not applied yet (mailhop accepts it but does nothing with it)",
            path.display(),
            line("smtpsaveimporterrors")
        )
    );
}

#[test]
fn defaults_written_out_are_not_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("d.toml");
    std::fs::write(
        &path,
        "[domain]\nname = \"Acme\"\n[[server]]\nname = \"Mail/Acme\"\nhostname = \"mail.acme.com\"\n[[configuration]]\nserver = \"*\"\nmailboxes = 1\njournal_to = \"\"\nsmtp_within_local_domain = \"disabled\"\nlow_priority_window = \"00:00-06:00\"\n",
    )
    .unwrap();
    let dir = directory::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(directory::not_applied(&dir).is_empty());
}
