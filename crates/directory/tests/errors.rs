//! Every class of validation error names the right file, line and field, and
//! every error in a directory is reported, not only the first.

use std::path::Path;

use directory::{DirectoryError, parse_str};

/// Lines 1-6; cases append from line 7 on.
const BASE: &str = r#"[domain]
name = "Acme"

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"
"#;

fn errors_of(text: &str) -> Vec<DirectoryError> {
    match parse_str(text, Path::new("dir/names.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errors) => errors.0,
    }
}

/// Asserts the directory BASE + `extra` has exactly the given errors
/// (line, field, a piece of the reason).
#[track_caller]
fn expect(extra: &str, expected: &[(usize, &str, &str)]) {
    let text = format!("{BASE}{extra}");
    let errors = errors_of(&text);
    let got: Vec<(usize, &str, &str)> = errors
        .iter()
        .map(|e| (e.line, e.field.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(got.len(), expected.len(), "for:\n{extra}\ngot: {got:#?}");
    for ((line, field, reason), (want_line, want_field, want_reason)) in got.iter().zip(expected) {
        assert_eq!(
            (line, field),
            (want_line, want_field),
            "for:\n{extra}\ngot: {got:#?}"
        );
        assert!(
            reason.contains(want_reason),
            "reason {reason:?} lacks {want_reason:?}"
        );
    }
    for e in &errors {
        assert_eq!(e.file, Path::new("dir/names.toml"));
    }
}

#[test]
fn display_is_file_line_field_reason() {
    let errors = parse_str(
        &format!("{BASE}colour = \"blue\"\n"),
        Path::new("acme.toml"),
    )
    .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "acme.toml:7: server[0].colour: unknown field (expected one of: name, hostname, networks, \
         administrators, smtp_auth, tls, require_tls_for_auth, internet_auth, data, listen, debug)"
    );
}

#[test]
fn syntax_errors_carry_the_line() {
    let errors = errors_of(&format!("{BASE}networks = [\"LAN\"\nsmtp_auth = \"off\"\n"));
    assert_eq!((errors[0].line, errors[0].field.as_str()), (8, "syntax"));
    assert!(
        errors.iter().all(|e| e.field == "syntax"),
        "only syntax errors: {errors:?}"
    );
    let errors = errors_of("[domain]\nname = \"Acme\"\n[server\n");
    assert_eq!((errors[0].line, errors[0].field.as_str()), (3, "syntax"));
    let errors = errors_of("a = 1\na = 2\n");
    assert_eq!((errors[0].line, errors[0].field.as_str()), (2, "syntax"));
    assert!(errors[0].reason.contains("duplicate key"));
}

#[test]
fn unknown_fields() {
    expect(
        "colour = \"blue\"\n",
        &[(7, "server[0].colour", "unknown field")],
    );
    expect("[servers]\nx = 1\n", &[(7, "servers", "unknown field")]);
    expect(
        "[server.listen]\nsmpt = \"127.0.0.1:25\"\n",
        &[(8, "server[0].listen.smpt", "unknown field")],
    );
    expect(
        "[[person]]\nfull_name = \"Jane Doe/Acme\"\nmail_server = \"Mail/Acme\"\nnickname = \"JD\"\n",
        &[(10, "person[0].nickname", "unknown field")],
    );
    expect(
        "[[configuration]]\nserver = \"*\"\n[configuration.inbound]\nrelay_enforcment = \"all\"\n",
        &[(
            10,
            "configuration[0].inbound.relay_enforcment",
            "unknown field",
        )],
    );
}

#[test]
fn wrong_types() {
    expect(
        "networks = \"LAN\"\n",
        &[(7, "server[0].networks", "expected an array, found string")],
    );
    expect(
        "networks = [\"LAN\", 5]\n",
        &[(
            7,
            "server[0].networks[1]",
            "expected a string, found integer",
        )],
    );
    expect(
        "listen = 5\n",
        &[(7, "server[0].listen", "expected a table, found integer")],
    );
    expect(
        "[[configuration]]\nserver = \"*\"\nmailboxes = \"2\"\n",
        &[(9, "configuration[0].mailboxes", "expected an integer")],
    );
    expect(
        "[[configuration]]\nserver = \"*\"\nhold_undeliverable = \"yes\"\n",
        &[(
            9,
            "configuration[0].hold_undeliverable",
            "expected true or false",
        )],
    );
    expect(
        "[[person]]\nfull_name = 5\nmail_server = \"Mail/Acme\"\n",
        &[(8, "person[0].full_name", "expected a string")],
    );
    expect(
        "person = \"x\"\n",
        &[(7, "server[0].person", "unknown field")],
    );
    let errors = errors_of("server = \"x\"\n[domain]\nname = \"Acme\"\n");
    assert_eq!((errors[0].line, errors[0].field.as_str()), (1, "server"));
    assert!(
        errors[0]
            .reason
            .contains("expected an array of tables ([[server]])")
    );
}

#[test]
fn bad_values() {
    let config = "[[configuration]]\nserver = \"*\"\n";
    let cases: &[(&str, &str, &str)] = &[
        ("mailboxes = 11", "mailboxes", "out of range 1..10"),
        ("mailboxes = 0", "mailboxes", "out of range 1..10"),
        (
            "transfer_threads = 26",
            "transfer_threads",
            "out of range 1..25",
        ),
        (
            "delivery_threads = 0",
            "delivery_threads",
            "out of range 1..25",
        ),
        (
            "max_message_size = \"25 parsecs\"",
            "max_message_size",
            "unknown size unit",
        ),
        ("initial_retry = \"15\"", "initial_retry", "not a duration"),
        ("retry_cap = \"0s\"", "retry_cap", "longer than 0s"),
        (
            "low_priority_window = \"6am-7am\"",
            "low_priority_window",
            "not a time window",
        ),
        ("relay_host = \"[10.0.0.1\"", "relay_host", "unclosed"),
        ("relay_host = \"a;;b\"", "relay_host", "empty host"),
        (
            "smtp_within_local_domain = \"some\"",
            "smtp_within_local_domain",
            "\"disabled\", \"mime-only\", \"all\"",
        ),
        (
            "address_lookup = \"fuzzy\"",
            "address_lookup",
            "is not one of",
        ),
        (
            "outbound_smtp_port = 0",
            "outbound_smtp_port",
            "out of range",
        ),
        (
            "dns_servers = [\"127.0.0.1\"]",
            "dns_servers[0]",
            "not ip:port",
        ),
        ("max_hop_count = -1", "max_hop_count", "out of range"),
    ];
    for (line, field, reason) in cases {
        expect(
            &format!("{config}{line}\n"),
            &[(9, &format!("configuration[0].{field}"), reason)],
        );
    }
    expect(
        &format!(
            "{config}[configuration.inbound]\ndeny_relay_to = [\"*\", \"x.com\"]\ninternal_hosts = [\"10.0.0.0/33\"]\n"
        ),
        &[
            (
                10,
                "configuration[0].inbound.deny_relay_to[1]",
                "not a list entry",
            ),
            (
                11,
                "configuration[0].inbound.internal_hosts[0]",
                "prefix length",
            ),
        ],
    );
    expect(
        &format!(
            "{config}[[configuration.rule]]\nwhen = {{ size_over = \"big\" }}\naction = \"bounce\"\n"
        ),
        &[
            (10, "configuration[0].rule[0].when.size_over", "not a size"),
            (11, "configuration[0].rule[0].action", "not a rule action"),
        ],
    );
}

#[test]
fn server_values() {
    expect(
        "smtp_auth = \"sometimes\"\n",
        &[(
            7,
            "server[0].smtp_auth",
            "\"required\", \"optional\", \"off\"",
        )],
    );
    expect(
        "hostname2 = 1\n",
        &[(7, "server[0].hostname2", "unknown field")],
    );
    expect(
        "[server.debug]\nLog_MailRouting = 25\n",
        &[(
            8,
            "server[0].debug.Log_MailRouting",
            "not one of 10, 20, 30, 40",
        )],
    );
    expect(
        "[server.debug]\nSMTPDebugIO = 2\nDebugRouter = 4\n",
        &[
            (8, "server[0].debug.SMTPDebugIO", "not one of 0, 1, 3, 4"),
            (9, "server[0].debug.DebugRouter", "out of range 0..3"),
        ],
    );
    expect(
        "[server.listen]\nsmtp = \"localhost:25\"\n",
        &[(8, "server[0].listen.smtp", "not ip:port")],
    );
    expect(
        "[server.listen]\nsmtps = \"127.0.0.1:2465\"\n",
        &[(8, "server[0].listen.smtps", "needs the server's tls")],
    );
    expect(
        "tls = { cert = \"c.pem\" }\n",
        &[(7, "server[0].tls.key", "missing field")],
    );
    expect(
        "data = \"\"\n",
        &[(7, "server[0].data", "must not be empty")],
    );
}

#[test]
fn debug_names_ignore_case_like_notes_ini() {
    let text = format!("{BASE}[server.debug]\nlog_mailrouting = 40\nDEBUGROUTER = 3\n");
    let d = parse_str(&text, Path::new("x.toml")).unwrap();
    assert_eq!(d.servers[0].debug.log_mail_routing, 40);
    assert_eq!(d.servers[0].debug.debug_router, 3);
}

#[test]
fn dangling_references() {
    expect(
        "[[person]]\nfull_name = \"Jane Doe/Acme\"\nmail_server = \"Hub/Acme\"\n",
        &[(9, "person[0].mail_server", "no server named Hub/Acme")],
    );
    expect(
        "[[mail_in]]\nname = \"Support\"\nserver = \"Hub/Acme\"\nmail_file = \"mail/support\"\n",
        &[(9, "mail_in[0].server", "no server named Hub/Acme")],
    );
    expect(
        "[[connection]]\nsource = \"Hub/Acme\"\ndestination = \"Mail/Acme\"\n",
        &[(8, "connection[0].source", "no server named Hub/Acme")],
    );
    expect(
        "[[connection]]\ntype = \"smtp\"\nsource = \"Mail/Acme\"\ndestination = \"CN=Mail/O=Acme\"\ndestination_domain = \"TheInternet\"\n",
        &[(10, "connection[0].destination", "is a server")],
    );
    expect(
        "[[configuration]]\nserver = \"Hub/Acme\"\n",
        &[(8, "configuration[0].server", "no server named Hub/Acme")],
    );
    expect(
        "[[adjacent_domain]]\nname = \"Partner\"\nvia_server = \"Gateway/Acme\"\n",
        &[(
            9,
            "adjacent_domain[0].via_server",
            "no server named Gateway/Acme",
        )],
    );
    expect(
        "[[nonadjacent_domain]]\nname = \"Far\"\nvia_domain = \"Partner\"\n",
        &[(
            9,
            "nonadjacent_domain[0].via_domain",
            "no adjacent_domain named \"Partner\"",
        )],
    );
    expect(
        "[[adjacent_domain]]\nname = \"acme\"\nvia_server = \"Mail/Acme\"\n",
        &[(7, "adjacent_domain[0].name", "own domain")],
    );
}

#[test]
fn connection_rules() {
    expect(
        "[[connection]]\ntype = \"smtp\"\nsource = \"Mail/Acme\"\ndestination = \"all_internet_hosts\"\n",
        &[(7, "connection[0].destination_domain", "virtual domain")],
    );
    expect(
        "[[connection]]\nsource = \"Mail/Acme\"\ndestination = \"Hub/Acme\"\nrelay_host = \"relay.acme.com\"\n",
        &[(10, "connection[0].relay_host", "smtp connections only")],
    );
    expect(
        "[[connection]]\nsource = \"Mail/Acme\"\ndestination = \"Hub/Acme\"\nschedule = { days = \"Funday\", repeat = \"often\" }\ncost = 0\n",
        &[
            (10, "connection[0].schedule.repeat", "not a duration"),
            (10, "connection[0].schedule.days", "not a day"),
            (11, "connection[0].cost", "out of range"),
        ],
    );
}

#[test]
fn duplicates() {
    expect(
        "\n[[server]]\nname = \"cn=mail/o=acme\"\nhostname = \"mail2.acme.com\"\n",
        &[
            // both default to data/mail; reported at the header, as data is not written
            (8, "server[1].data", "duplicate data folder"),
            (
                9,
                "server[1].name",
                "duplicate server name mail/acme (first at dir/names.toml:5)",
            ),
        ],
    );
    expect(
        "data = \"./data/hub/\"\n[[server]]\nname = \"Hub/Acme\"\nhostname = \"hub.acme.com\"\n",
        &[(8, "server[1].data", "duplicate data folder")],
    );
    expect(
        concat!(
            "[server.listen]\nsmtp = \"127.0.0.1:2525\"\n",
            "[[server]]\nname = \"Hub/Acme\"\nhostname = \"hub.acme.com\"\n",
            "[server.listen]\nsmtp = \"127.0.0.1:2525\"\nhttp = \"127.0.0.1:0\"\n",
        ),
        &[(
            13,
            "server[1].listen.smtp",
            "duplicate listen address 127.0.0.1:2525",
        )],
    );
    expect(
        concat!(
            "[[person]]\nfull_name = \"Jane Doe/Acme\"\nmail_server = \"Mail/Acme\"\ninternet_address = \"Jane@Acme.com\"\n",
            "[[group]]\nname = \"Sales\"\ninternet_address = \"jane@acme.com\"\n",
            "[[mail_in]]\nname = \"Support\"\nserver = \"Mail/Acme\"\nmail_file = \"mail/support\"\ninternet_address = \"JANE@acme.com\"\n",
        ),
        &[
            (
                13,
                "group[0].internet_address",
                "duplicate Internet address jane@acme.com (first at dir/names.toml:10)",
            ),
            (
                18,
                "mail_in[0].internet_address",
                "duplicate Internet address",
            ),
        ],
    );
    expect(
        "[[configuration]]\nserver = \"*\"\n[[configuration]]\nserver = \"*\"\n",
        &[(
            10,
            "configuration[1].server",
            "duplicate configuration document",
        )],
    );
    let errors = errors_of(&format!("{BASE}[domain]\nname = \"Other\"\n"));
    assert_eq!((errors[0].line, errors[0].field.as_str()), (7, "syntax"));
}

#[test]
fn missing_required_fields() {
    let errors = errors_of("[[server]]\nname = \"Mail/Acme\"\n");
    assert_eq!(errors.len(), 2);
    assert_eq!((errors[0].line, errors[0].field.as_str()), (0, "domain"));
    assert!(errors[0].reason.contains("missing [domain]"));
    assert_eq!(
        errors[0].to_string(),
        "dir/names.toml: domain: missing [domain] document (name = \"YourDomain\")"
    );
    assert_eq!(
        (errors[1].line, errors[1].field.as_str()),
        (1, "server[0].hostname")
    );
    assert!(errors[1].reason.contains("missing field"));
    expect(
        "\n[[server]]\nhostname = \"x.acme.com\"\n",
        &[(8, "server[1].name", "missing field")],
    );
    expect(
        "[[person]]\nshort_name = \"jdoe\"\nmail_server = \"Mail/Acme\"\n",
        &[(7, "person[0].full_name", "missing field")],
    );
    expect(
        "[[group]]\nmembers = []\n",
        &[(7, "group[0].name", "missing field")],
    );
    let errors = errors_of("[domain]\n");
    assert_eq!(
        errors.len(),
        1,
        "a [domain] without name is not also missing: {errors:?}"
    );
    assert_eq!(
        (errors[0].line, errors[0].field.as_str()),
        (1, "domain.name")
    );
}

#[test]
fn passwords_must_be_hashes() {
    expect(
        "[[person]]\nfull_name = \"Jane Doe/Acme\"\nmail_server = \"Mail/Acme\"\ninternet_password = \"secret\"\n",
        &[(
            10,
            "person[0].internet_password",
            "passwords must be argon2 hashes (use mailhop passwd)",
        )],
    );
    expect(
        "[[person]]\nfull_name = \"Jane Doe/Acme\"\nmail_server = \"Mail/Acme\"\ninternet_password = \"$argon2id$v=19$m=19456\"\n",
        &[(10, "person[0].internet_password", "argon2")],
    );
}

#[test]
fn configuration_checked_per_server() {
    expect(
        "[[configuration]]\nserver = \"*\"\nmax_concurrent_transfers = 6\n[[configuration]]\nserver = \"Mail/Acme\"\ntransfer_threads = 4\n",
        &[(
            7,
            "configuration[0].max_concurrent_transfers",
            "6 concurrent transfers exceed transfer_threads = 4 on server Mail/Acme",
        )],
    );
    expect(
        "[[configuration]]\nserver = \"*\"\n[[configuration.rule]]\nwhen = { subject_contains = \"invoice\" }\naction = \"journal\"\n",
        &[(
            9,
            "configuration[0].rule[0].action",
            "\"journal\" needs journal_to",
        )],
    );
}

#[test]
fn all_errors_are_reported_in_line_order() {
    let text = format!(
        "{BASE}smtp_auth = \"sometimes\"\n\n[[person]]\nmail_server = \"Nowhere/Acme\"\nquota = \"lots\"\n\n[[person]]\nfull_name = \"Jim/Acme\"\nmail_server = \"Mail/Acme\"\ninternet_password = \"hunter2\"\n"
    );
    let errors = errors_of(&text);
    let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (7, "server[0].smtp_auth"),
            (9, "person[0].full_name"),
            (11, "person[0].quota"),
            (16, "person[1].internet_password"),
        ]
    );
}

/// A TOML array of `n` quoted strings made by `item`.
fn array(n: usize, item: impl Fn(usize) -> String) -> String {
    let items: Vec<String> = (0..n).map(|i| format!("\"{}\"", item(i))).collect();
    format!("[{}]", items.join(", "))
}

#[test]
fn lists_are_bounded() {
    let config = "[[configuration]]\nserver = \"*\"\n[configuration.inbound]\n";
    let hosts = array(1_001, |i| format!("10.0.{}.{}/32", i / 256, i % 256));
    expect(
        &format!("{config}relay_exempt_hosts = {hosts}\n"),
        &[(
            10,
            "configuration[0].inbound.relay_exempt_hosts",
            "too many entries (1001; at most 1000)",
        )],
    );
    // 1,000 is allowed.
    let hosts = array(1_000, |i| format!("10.0.{}.{}/32", i / 256, i % 256));
    parse_str(
        &format!("{BASE}{config}relay_exempt_hosts = {hosts}\n"),
        Path::new("dir/names.toml"),
    )
    .expect("1,000 entries");
    // A group may have more members, up to 10,000.
    let members = array(10_001, |i| format!("user{i}@example.com"));
    expect(
        &format!("[[group]]\nname = \"Everyone\"\nmembers = {members}\n"),
        &[(
            9,
            "group[0].members",
            "too many entries (10001; at most 10000)",
        )],
    );
}

#[test]
fn relay_hosts_are_bounded() {
    let config = "[[configuration]]\nserver = \"*\"\n";
    let hosts = |n: usize| {
        (0..n)
            .map(|i| format!("relay{i}.example.net"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    expect(
        &format!("{config}relay_host = \"{}\"\n", hosts(101)),
        &[(
            9,
            "configuration[0].relay_host",
            "too many relay hosts (101; at most 100)",
        )],
    );
    // As the attacker's 100,000 were: refused without reading them all.
    expect(
        &format!("{config}relay_host = \"{}\"\n", hosts(100_000)),
        &[(
            9,
            "configuration[0].relay_host",
            "too many relay hosts (100000; at most 100)",
        )],
    );
    let levels = (0..100)
        .map(|i| format!("[10.0.0.{i}]"))
        .collect::<Vec<_>>()
        .join("; ");
    parse_str(
        &format!("{BASE}{config}relay_host = \"{levels}\"\n"),
        Path::new("dir/names.toml"),
    )
    .expect("100 hosts in 100 levels");
}

#[test]
fn echoed_values_are_cut_short() {
    let config = "[[configuration]]\nserver = \"*\"\n";
    let huge = "x".repeat(2 * 1024 * 1024);
    for line in [
        format!("relay_host = \"[{huge}\""),
        format!("relay_host = \"{huge};;b\""),
        format!("max_message_size = \"{huge}\""),
        format!("address_lookup = \"{huge}\""),
    ] {
        let errors = errors_of(&format!("{BASE}{config}{line}\n"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let shown = errors[0].to_string();
        assert!(
            shown.len() < 600,
            "{} bytes: {}",
            shown.len(),
            &shown[..600]
        );
        assert!(shown.contains("x…\""), "{shown}");
        assert!(!shown.contains(&"x".repeat(81)), "{shown}");
    }
}

#[test]
fn invalid_utf8_is_an_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("directory.toml");
    let mut bytes = format!("{BASE}\n[[person]]\nfull_name = \"Jos").into_bytes();
    bytes.extend_from_slice(b"\xe9 Doe/Acme\"\n");
    std::fs::write(&file, &bytes).unwrap();
    let errors = directory::load(&file).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!((e.line, e.field.as_str()), (9, "encoding"));
    assert!(
        e.reason.contains("not UTF-8: byte 0xe9 at column 17"),
        "{}",
        e.reason
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}:9: encoding: not UTF-8: byte 0xe9 at column 17; a directory file must be UTF-8",
            file.display()
        )
    );
}
