//! The fields of sender authentication and DKIM signing:
//! `verify_sender_authentication` and `dmarc_policy` of
//! `[configuration.inbound]`, `dkim_sign` of `[configuration.outbound]`
//! with its key files (read relative to the directory's folder, owner-only,
//! PKCS#8 PEM of an RSA or Ed25519 key). Keys are made at test time.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use base64::Engine as _;
use directory::{DkimAlgorithm, DmarcPolicy, load};

/// Lines 1-9; the cases' lines follow.
const BASE: &str = r#"[domain]
name = "Acme"

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"

[[configuration]]
server = "*"
"#;

/// A DER element.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

fn random(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

/// A PKCS#8 `PrivateKeyInfo` of algorithm `oid` around `key`.
fn pkcs8(oid: &[u8], params: &[u8], key: &[u8]) -> Vec<u8> {
    let mut algorithm = der(0x06, oid);
    algorithm.extend_from_slice(params);
    let mut info = der(0x02, &[0]);
    info.extend(der(0x30, &algorithm));
    info.extend(der(0x04, key));
    der(0x30, &info)
}

/// An Ed25519 key made now (any 32 bytes are a seed).
fn ed25519() -> Vec<u8> {
    pkcs8(&[0x2b, 0x65, 0x70], &[], &der(0x04, &random(32)))
}

/// The shape of an RSA key with a modulus of `bits` bits (random numbers:
/// the directory checks the shape, the signer the numbers).
fn rsa_shape(bits: usize) -> Vec<u8> {
    let mut modulus = vec![0u8];
    let mut n = random(bits / 8);
    n[0] |= 0x80;
    modulus.extend(n);
    let mut rsa = der(0x02, &[0]);
    rsa.extend(der(0x02, &modulus));
    for _ in 0..7 {
        rsa.extend(der(0x02, &[3]));
    }
    pkcs8(
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
        &[0x05, 0x00],
        &der(0x30, &rsa),
    )
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

fn write_key(dir: &Path, name: &str, text: &str, mode: u32) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Loads BASE + `extra` from a directory file in `dir`.
fn load_with(dir: &Path, extra: &str) -> Result<directory::Directory, directory::DirectoryErrors> {
    let file = dir.join("acme.toml");
    std::fs::write(&file, format!("{BASE}{extra}")).unwrap();
    load(&file)
}

#[test]
fn the_fields_are_read_and_keys_found_beside_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    write_key(tmp.path(), "dkim/acme.pem", &pem(&ed25519()), 0o600);
    write_key(tmp.path(), "dkim/eu.pem", &pem(&rsa_shape(2048)), 0o400);
    let dir = load_with(
        tmp.path(),
        r#"[configuration.inbound]
verify_sender_authentication = true
dmarc_policy = "Enforce"
[configuration.outbound]
dkim_sign = [
  { domain = "ACME.com", selector = "mh2026", key = "dkim/acme.pem" },
  { domain = "eu.acme.com", selector = "2026.eu", key = "dkim/eu.pem" },
]
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = dir.config_for(&dir.servers[0].name);
    assert!(config.inbound.verify_sender_authentication);
    assert_eq!(config.inbound.dmarc_policy, DmarcPolicy::Enforce);
    let signing = &config.outbound.dkim_sign;
    assert_eq!(signing.len(), 2);
    assert_eq!(
        (signing[0].domain.as_str(), signing[0].selector.as_str()),
        ("acme.com", "mh2026")
    );
    assert_eq!(signing[0].key.algorithm, DkimAlgorithm::Ed25519);
    assert_eq!(signing[0].key.path, tmp.path().join("dkim/acme.pem"));
    assert_eq!(signing[0].line, 15);
    assert_eq!(signing[1].key.algorithm, DkimAlgorithm::Rsa);
    assert_eq!(
        directory::dkim_signing_for(signing, "x.eu.acme.com").map(|s| s.selector.as_str()),
        Some("2026.eu")
    );
    // The key's bytes never show in a debug print of the configuration.
    let shown = format!("{config:?}");
    assert!(shown.contains("DkimKey { algorithm: Ed25519"), "{shown}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(signing[0].key.pkcs8_der());
    assert!(!shown.contains(&b64[..20]));

    // The defaults: off, report, no signing.
    let dir = load_with(tmp.path(), "").unwrap();
    let config = dir.config_for(&dir.servers[0].name);
    assert!(!config.inbound.verify_sender_authentication);
    assert_eq!(config.inbound.dmarc_policy, DmarcPolicy::Report);
    assert!(config.outbound.dkim_sign.is_empty());
}

/// Each case: the lines after BASE, and the (line, field, part of the
/// reason) of its one error.
#[test]
fn bad_values_are_file_line_field_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_key(dir, "good.pem", &pem(&ed25519()), 0o600);
    write_key(dir, "open.pem", &pem(&ed25519()), 0o644);
    write_key(dir, "group.pem", &pem(&ed25519()), 0o640);
    write_key(dir, "junk.pem", "this is not a key\n", 0o600);
    write_key(dir, "small.pem", &pem(&rsa_shape(512)), 0o600);
    // An EC key (id-ecPublicKey): PKCS#8, but not a DKIM algorithm.
    let ec = pkcs8(
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
        &[],
        &der(0x04, &random(32)),
    );
    write_key(dir, "ec.pem", &pem(&ec), 0o600);
    write_key(dir, "cut.pem", &pem(&ed25519()[..20]), 0o600);
    std::fs::create_dir_all(dir.join("folder.pem")).unwrap();
    let outbound =
        |entries: &str| format!("[configuration.outbound]\ndkim_sign = [\n{entries}\n]\n");
    let entry =
        |key: &str| format!("{{ domain = \"acme.com\", selector = \"s1\", key = \"{key}\" }}");
    let key_field = "configuration[0].outbound.dkim_sign[0].key";
    let cases: Vec<(String, usize, &str, &str)> = vec![
        (
            "[configuration.inbound]\ndmarc_policy = \"strict\"\n".into(),
            11,
            "configuration[0].inbound.dmarc_policy",
            "\"strict\" is not one of \"report\", \"enforce\"",
        ),
        (
            "[configuration.inbound]\nverify_sender_authentication = \"yes\"\n".into(),
            11,
            "configuration[0].inbound.verify_sender_authentication",
            "expected true or false",
        ),
        (
            outbound(&entry("missing.pem")),
            12,
            key_field,
            "cannot read the key \"missing.pem\"",
        ),
        (outbound(&entry("open.pem")), 12, key_field, "mode 0644"),
        (
            outbound(&entry("group.pem")),
            12,
            key_field,
            "readable by its owner only",
        ),
        (
            outbound(&entry("junk.pem")),
            12,
            key_field,
            "not a PKCS#8 private key",
        ),
        (
            outbound(&entry("small.pem")),
            12,
            key_field,
            "at least 1024",
        ),
        (
            outbound(&entry("ec.pem")),
            12,
            key_field,
            "(RSA or Ed25519)",
        ),
        (
            outbound(&entry("cut.pem")),
            12,
            key_field,
            "malformed PKCS#8",
        ),
        (
            outbound(&entry("folder.pem")),
            12,
            key_field,
            "is not a file",
        ),
        (
            outbound("{ domain = \"acme.com\", selector = \"a b\", key = \"good.pem\" }"),
            12,
            "configuration[0].outbound.dkim_sign[0].selector",
            "not a DKIM selector",
        ),
        (
            outbound("{ domain = \"acme..com\", selector = \"s\", key = \"good.pem\" }"),
            12,
            "configuration[0].outbound.dkim_sign[0].domain",
            "empty label",
        ),
        (
            outbound("{ domain = \"acme.com\", key = \"good.pem\" }"),
            12,
            "configuration[0].outbound.dkim_sign[0].selector",
            "missing field",
        ),
        (
            outbound(
                "{ domain = \"acme.com\", selector = \"s\", key = \"good.pem\", algo = \"rsa\" }",
            ),
            12,
            "configuration[0].outbound.dkim_sign[0].algo",
            "unknown field (expected one of: domain, selector, key)",
        ),
        (
            outbound(&format!("{},\n{}", entry("good.pem"), entry("good.pem"))),
            13,
            "configuration[0].outbound.dkim_sign[1].domain",
            "duplicate domain \"acme.com\" (first at line 12)",
        ),
        (
            "[configuration.outbound]\ndkim_sign = \"acme.com\"\n".into(),
            11,
            "configuration[0].outbound.dkim_sign",
            "expected an array of tables",
        ),
    ];
    for (extra, line, field, reason) in cases {
        let errors = load_with(dir, &extra)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{extra}"))
            .0;
        assert_eq!(errors.len(), 1, "{extra}\n{errors:#?}");
        let e = &errors[0];
        assert_eq!((e.line, e.field.as_str()), (line, field), "{extra}\n{e}");
        assert!(e.reason.contains(reason), "{extra}\n{e}");
        assert_eq!(e.file, dir.join("acme.toml"));
        assert!(
            e.to_string().starts_with(&format!(
                "{}:{line}: {field}: ",
                dir.join("acme.toml").display()
            )),
            "{e}"
        );
    }
}
