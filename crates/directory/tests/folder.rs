//! A directory can be a folder of `*.toml` files, read in name order.

use std::fs;
use std::path::Path;

use directory::*;

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

#[test]
fn folder_of_files_loads_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "00-domain.toml", "[domain]\nname = \"Acme\"\n");
    write(
        dir.path(),
        "10-servers.toml",
        "[[server]]\nname = \"Mail/Acme\"\nhostname = \"mail.acme.com\"\ntls = { cert = \"tls/cert.pem\", key = \"tls/key.pem\" }\n",
    );
    write(
        dir.path(),
        "20-people.toml",
        "[[person]]\nfull_name = \"Jane Doe/Acme\"\nmail_server = \"Mail/Acme\"\n\n[[person]]\nfull_name = \"John Roe/Acme\"\nmail_server = \"Mail/Acme\"\n",
    );
    write(
        dir.path(),
        "30-more-people.toml",
        "[[person]]\nfull_name = \"Ann Poe/Acme\"\nmail_server = \"Mail/Acme\"\n",
    );
    write(dir.path(), "notes.txt", "not a directory file");
    let d = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = d.persons.iter().map(|p| p.full_name.to_string()).collect();
    assert_eq!(names, ["Jane Doe/Acme", "John Roe/Acme", "Ann Poe/Acme"]);
    assert_eq!(
        d.persons[2].file.as_ref(),
        dir.path().join("30-more-people.toml")
    );
    assert_eq!(d.persons[2].line, 1);
    assert_eq!(d.base_dir(), dir.path());
    assert_eq!(d.servers[0].data, dir.path().join("data/mail"));
    let tls = d.servers[0].tls.as_ref().unwrap();
    assert_eq!(tls.cert, dir.path().join("tls/cert.pem"));
    // the folder itself, then each file
    let sources: Vec<&Path> = d.sources().iter().map(|(p, _)| p.as_path()).collect();
    assert_eq!(sources.len(), 5);
    assert_eq!(sources[0], dir.path());
    assert_eq!(sources[4], dir.path().join("30-more-people.toml"));
}

#[test]
fn errors_name_the_file_and_count_documents_across_files() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "[domain]\nname = \"Acme\"\n[[server]]\nname = \"Mail/Acme\"\nhostname = \"mail.acme.com\"\n",
    );
    write(
        dir.path(),
        "b.toml",
        "[[person]]\nfull_name = \"Jane Doe/Acme\"\nmail_server = \"Mail/Acme\"\n",
    );
    write(
        dir.path(),
        "c.toml",
        "\n[domain]\nname = \"Other\"\n\n[[person]]\nfull_name = \"John Roe/Acme\"\nmail_server = \"Hub/Acme\"\n",
    );
    let errors = load(dir.path()).unwrap_err().0;
    let got: Vec<(String, usize, &str)> = errors
        .iter()
        .map(|e| {
            (
                e.file.file_name().unwrap().to_string_lossy().into_owned(),
                e.line,
                e.field.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("c.toml".to_owned(), 2, "domain"),
            ("c.toml".to_owned(), 7, "person[1].mail_server")
        ]
    );
    assert!(
        errors[0].reason.contains("already given at"),
        "{}",
        errors[0].reason
    );
    assert!(
        errors[0].reason.contains("a.toml:1"),
        "{}",
        errors[0].reason
    );
}

#[test]
fn syntax_error_in_one_file_stops_before_cross_checks() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "[domain]\nname = \"Acme\"\n[[server]]\nname = \"Mail/Acme\"\nhostname = \"mail.acme.com\"\n",
    );
    write(dir.path(), "b.toml", "[[person]\nfull_name = \"x\"\n");
    let errors = load(dir.path()).unwrap_err().0;
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .all(|e| e.field == "syntax" && e.file.ends_with("b.toml")),
        "{errors:?}"
    );
    assert_eq!(errors[0].line, 1);
}

#[test]
fn unreadable_paths() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load(&dir.path().join("nope.toml")).unwrap_err();
    assert_eq!(missing.0.len(), 1);
    assert_eq!(missing.0[0].line, 0);
    assert!(missing.to_string().starts_with(&format!(
        "{}: file: cannot read",
        dir.path().join("nope.toml").display()
    )));
    let empty = load(dir.path()).unwrap_err();
    assert!(empty.to_string().contains("no *.toml files"));
    write(dir.path(), "bad.toml", "");
    fs::write(dir.path().join("bad.toml"), [0xff, 0xfe, 0x00]).unwrap();
    let invalid = load(dir.path()).unwrap_err();
    assert!(
        invalid.0.iter().any(|e| e.field == "encoding"
            && e.line == 1
            && e.reason.contains("not UTF-8: byte 0xff at column 1")),
        "{invalid}"
    );
}

#[test]
fn single_file_sources_and_base_dir() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailhop.toml");
    write(
        dir.path(),
        "mailhop.toml",
        "[domain]\nname = \"Acme\"\n[[server]]\nname = \"Mail/Acme\"\nhostname = \"mail.acme.com\"\ndata = \"/var/lib/mailhop\"\n",
    );
    let d = load(&file).unwrap();
    assert_eq!(d.base_dir(), dir.path());
    assert_eq!(
        d.servers[0].data,
        Path::new("/var/lib/mailhop"),
        "absolute paths stay"
    );
    assert_eq!(d.sources().len(), 1);
    let (path, mtime) = &d.sources()[0];
    assert_eq!(path, &file);
    assert_eq!(*mtime, fs::metadata(&file).unwrap().modified().unwrap());
}
