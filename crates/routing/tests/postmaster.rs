//! `postmaster` always reaches someone (RFC 5321 §4.5.1).

use std::path::Path;

use directory::{Directory, NotesName};
use routing::{Action, Context, Route, Step};

const BASE: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"
alias_internet_domains = ["acme.nl"]

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"
{ADMINS}

[[configuration]]
server = "*"
{CONFIG}

[[person]]
full_name = "CN=Jane Doe/O=Acme"
short_name = "jdoe"
internet_address = "jane.doe@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/jdoe"

[[person]]
full_name = "CN=Admin/O=Acme"
short_name = "admin"
mail_server = "Mail/Acme"
mail_file = "mail/admin"

{EXTRA}
"#;

fn dir(admins: &str, config: &str, extra: &str) -> Directory {
    let text = BASE
        .replace("{ADMINS}", admins)
        .replace("{CONFIG}", config)
        .replace("{EXTRA}", extra);
    directory::parse_str(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn steps(d: &Directory, rcpt: &str) -> Vec<Step> {
    let name: NotesName = "Mail/Acme".parse().unwrap();
    let config = d.config_for(&name);
    let ctx = Context::new(d, &config, d.server(&name).unwrap());
    routing::resolve(ctx, rcpt)
}

fn mail_file(d: &Directory, rcpt: &str) -> String {
    let s = steps(d, rcpt);
    assert_eq!(s[0].address, rcpt);
    match &s.last().unwrap().action {
        Action::Route(Route::Local { mail_file, .. }) => mail_file.clone(),
        other => panic!("{rcpt}: {other:?}"),
    }
}

#[test]
fn without_anyone_named_postmaster_mail_goes_to_its_own_mail_file() {
    let d = dir("", "", "");
    for rcpt in [
        "postmaster",
        "PostMaster@acme.com",
        "postmaster@ACME.NL",
        "postmaster@Acme",
    ] {
        assert_eq!(mail_file(&d, rcpt), routing::POSTMASTER_MAIL_FILE);
    }
}

#[test]
fn the_first_administrator_naming_an_entry_receives_it() {
    let d = dir("administrators = [\"Nobody/Acme\", \"Admin/Acme\"]", "", "");
    assert_eq!(mail_file(&d, "postmaster@acme.com"), "mail/admin");
}

#[test]
fn the_configured_postmaster_comes_first() {
    let admins = "administrators = [\"Admin/Acme\"]";
    let d = dir(admins, "postmaster = \"jane.doe@acme.com\"", "");
    assert_eq!(mail_file(&d, "postmaster@acme.com"), "mail/jdoe");
    let d = dir(admins, "postmaster = \"Jane Doe/Acme\"", "");
    assert_eq!(mail_file(&d, "postmaster"), "mail/jdoe");
}

#[test]
fn a_directory_entry_with_the_address_wins() {
    let d = dir(
        "",
        "postmaster = \"Jane Doe/Acme\"",
        "[[mail_in]]\nname = \"Postmaster\"\ninternet_address = \"postmaster@acme.com\"\nserver = \"Mail/Acme\"\nmail_file = \"mail/pm\"\n",
    );
    assert_eq!(mail_file(&d, "postmaster@acme.com"), "mail/pm");
}

#[test]
fn postmaster_of_another_domain_is_not_ours() {
    let d = dir("", "", "");
    let s = steps(&d, "postmaster@example.org");
    assert!(
        !matches!(&s[0].action, Action::Route(Route::Local { .. })),
        "{s:?}"
    );
    let s = steps(&d, "postmaster@Other");
    assert!(
        matches!(&s[0].action, Action::Route(Route::Fail(_))),
        "{s:?}"
    );
}
