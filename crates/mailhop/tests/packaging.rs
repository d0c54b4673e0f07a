//! What a system needs besides the binary, made by the binary: the manual
//! page, shell completions, the directory reference offline, and the
//! systemd unit in dist/.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::BIN;

fn mailhop(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_manual_page_renders_with_man() {
    let (ok, roff, err) = mailhop(&["man"]);
    assert!(ok, "{err}");
    assert!(
        roff.starts_with(".ie") || roff.contains(".TH mailhop"),
        "{roff}"
    );
    let mut man = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("man (man-db)");
    man.stdin
        .take()
        .unwrap()
        .write_all(roff.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8_lossy(&out.stdout);
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "SUBCOMMANDS"] {
        assert!(page.contains(section), "{section}: {page}");
    }
    for command in ["mailhop-serve(1)", "mailhop-console(1)", "mailhop-check(1)"] {
        assert!(page.contains(command), "{command}: {page}");
    }
}

#[test]
fn the_bash_completion_script_loads_and_completes_subcommands() {
    let (ok, script, err) = mailhop(&["completions", "bash"]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mailhop.bash");
    std::fs::write(&path, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // Loaded, it completes `mailhop se` to `serve`.
    let probe = format!(
        "source '{}'; COMP_WORDS=(mailhop se); COMP_CWORD=1; COMP_LINE='mailhop se'; COMP_POINT=10; _mailhop mailhop se mailhop; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(words, ["serve"], "{words:?}");
    for shell in ["zsh", "fish"] {
        let (ok, script, err) = mailhop(&["completions", shell]);
        assert!(ok && script.contains("mailhop"), "{shell}: {err}");
    }
    let (ok, _, err) = mailhop(&["completions", "tcsh"]);
    assert!(!ok && err.contains("invalid value"), "{err}");
}

#[test]
fn help_directory_prints_the_reference_built_into_the_binary() {
    let (ok, text, err) = mailhop(&["help", "directory"]);
    assert!(ok, "{err}");
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/DIRECTORY.md"
    ))
    .unwrap();
    assert_eq!(text, doc);
    let (ok, text, _) = mailhop(&["help", "serve"]);
    assert!(ok && text.contains("--log-file <FILE>"), "{text}");
    let (ok, _, err) = mailhop(&["help", "nonsense"]);
    assert!(!ok && err.contains("mailhop help directory"), "{err}");
}

#[test]
fn every_option_of_every_command_has_help_text() {
    let (ok, top, _) = mailhop(&["--help"]);
    assert!(ok);
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(commands.contains(&"serve".to_owned()), "{top}");
    let mut bare = Vec::new();
    for command in &commands {
        let (_, text, _) = mailhop(&[command.as_str(), "--help"]);
        // An option line with no help beside it nor on the line below.
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let indent = line.len() - t.len();
            if !t.starts_with("--")
                && !(t.starts_with('-') && t.chars().nth(1).is_some_and(char::is_alphabetic))
            {
                continue;
            }
            let beside = t.trim_end().contains("  ");
            let below = lines.get(i + 1).is_some_and(|next| {
                let n = next.trim_start();
                !n.is_empty() && next.len() - n.len() > indent && !n.starts_with('-')
            });
            if !beside && !below {
                bare.push(format!("{command}: {t}"));
            }
        }
    }
    assert!(bare.is_empty(), "options without help: {bare:#?}");
}

#[test]
fn the_systemd_unit_runs_unprivileged_and_hardened() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dist/mailhop.service"
    ))
    .unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "User=mailhop",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "UMask=0077",
    ] {
        assert!(has(line), "{line}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    // The options it gives exist.
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args[0], "serve");
    let (_, help, _) = mailhop(&["serve", "--help"]);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "{flag}");
    }
}
