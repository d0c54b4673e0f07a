//! Any input is answered with a directory or errors, never a panic; large
//! directories load quickly and look up in constant time.

use std::fmt::Write;
use std::path::Path;

use directory::*;
use proptest::prelude::*;

const FIELDS: &[&str] = &[
    "[domain]",
    "[global_domain]",
    "[[server]]",
    "[server.listen]",
    "[server.debug]",
    "[[configuration]]",
    "[configuration.inbound]",
    "[[configuration.rule]]",
    "[[connection]]",
    "[[person]]",
    "[[group]]",
    "[[mail_in]]",
    "[[adjacent_domain]]",
    "[[nonadjacent_domain]]",
    "[[foreign_smtp_domain]]",
    "name = \"Mail/Acme\"",
    "hostname = \"mail.acme.com\"",
    "full_name = \"CN=Jane/O=Acme\"",
    "mail_server = \"Mail/Acme\"",
    "server = \"*\"",
    "relay_host = \"[[10.0.0.1],[10.0.0.2]\"",
    "mailboxes = 3",
    "Log_MailRouting = 40",
    "smtp = \"127.0.0.1:25\"",
    "internet_address = \"a@acme.com\"",
    "source = \"Mail/Acme\"",
    "destination = \"x\"",
    "type = \"smtp\"",
    "via_server = \"Mail/Acme\"",
    "via_domain = \"P\"",
    "schedule = { days = \"Mon-Fri\" }",
    "when = { size_over = \"1MB\" }",
    "action = \"stop\"",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = parse_str(&text, Path::new("x.toml"));
    }

    #[test]
    fn arbitrary_documents_never_panic(lines in proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(FIELDS).prop_map(str::to_owned),
            "[a-z_]{1,12} = \"[^\"\\\\]{0,20}\"",
            "[a-z_]{1,12} = -?[0-9]{1,5}",
        ],
        0..40,
    )) {
        let text = lines.join("\n");
        if let Err(errors) = parse_str(&text, Path::new("x.toml")) {
            for e in &errors.0 {
                prop_assert!(e.line <= text.split('\n').count(), "{e}");
            }
        }
    }
}

#[test]
fn ten_thousand_persons_load_and_look_up() {
    let mut text = String::from(
        "[domain]\nname = \"Acme\"\n[global_domain]\nprimary_internet_domain = \"acme.com\"\n\
         [[server]]\nname = \"Mail/Acme\"\nhostname = \"mail.acme.com\"\n",
    );
    for i in 0..10_000 {
        write!(
            text,
            "[[person]]\nfull_name = \"CN=User {i}/O=Acme\"\nfirst_name = \"User\"\nlast_name = \"{i}\"\n\
             short_name = \"u{i}\"\ninternet_address = \"user{i}@acme.com\"\nmail_server = \"Mail/Acme\"\n\
             mail_file = \"mail/u{i}\"\ninternet_password = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\"\n\n"
        )
        .unwrap();
    }
    let d = parse_str(&text, Path::new("big.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.persons.len(), 10_000);
    assert_eq!(
        d.by_internet_address("USER9999@acme.com"),
        [EntryRef::Person(9999)]
    );
    assert_eq!(d.by_name("u5000"), [EntryRef::Person(5000)]);
    assert_eq!(d.by_name("User 42/Acme"), [EntryRef::Person(42)]);
    // a duplicate at the end is found without comparing every pair
    text.push_str("[[group]]\nname = \"G\"\ninternet_address = \"User1@ACME.com\"\n");
    let errors = parse_str(&text, Path::new("big.toml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].field, "group[0].internet_address");
}

#[test]
fn deeply_nested_values_are_errors_not_crashes() {
    for depth in [100, 10_000, 200_000] {
        let arrays = format!(
            "[domain]\nname = {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(parse_str(&arrays, Path::new("x.toml")).is_err());
        let tables = format!(
            "[domain]\nname = {}1{}\n",
            "{ a = ".repeat(depth),
            " }".repeat(depth)
        );
        assert!(parse_str(&tables, Path::new("x.toml")).is_err());
        let dotted = format!("{} = 1\n", vec!["a"; depth].join("."));
        assert!(parse_str(&dotted, Path::new("x.toml")).is_err());
    }
}
