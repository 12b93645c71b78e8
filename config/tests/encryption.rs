//! `[repository] encryption_*`: keys of the right shape load; swapped or damaged key files are
//! reported with the file and the line, and a secret key never appears in an error.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use aofvault_config::{Config, ConfigErrors, Env};

const PUBLIC: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
const SECRET: &str = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";

fn env() -> Env {
    Env::empty()
        .with("STATE_DIRECTORY", "/var/lib/aofvault-test")
        .with("HOSTNAME", "db1")
}

fn load(text: &str, env: &Env) -> Result<Config, ConfigErrors> {
    Config::from_toml(text, "test.toml", env)
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn off_by_default_and_keys_load_from_files_and_env() {
    let cfg = load("", &env()).unwrap();
    assert!(!cfg.repository.encryption.is_on());

    let dir = tempfile::tempdir().unwrap();
    let recipients = dir.path().join("recipients.txt");
    let identity = dir.path().join("identity.txt");
    write(&recipients, &format!("# ops\n{PUBLIC}\n\n"), 0o644);
    write(&identity, &format!("# created: today\n{SECRET}\n"), 0o600);
    let text = format!(
        "[repository]\nencryption_recipients = [\"{PUBLIC}\"]\nencryption_recipients_file = {:?}\nencryption_identity_file = {:?}\n",
        recipients.display().to_string(),
        identity.display().to_string()
    );
    let cfg = load(&text, &env()).unwrap();
    let enc = &cfg.repository.encryption;
    assert_eq!(enc.recipients, vec![PUBLIC.to_string(), PUBLIC.to_string()]);
    assert!(enc.identities.as_ref().unwrap().expose().contains(SECRET));
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(
        !json.contains(&SECRET[16..]),
        "config check --json shows the identity: {json}"
    );
    assert!(!format!("{cfg:?}").contains(&SECRET[16..]));

    let cfg = load("", &env().with("AOFVAULT_ENCRYPTION_IDENTITY", SECRET)).unwrap();
    assert!(
        cfg.repository.encryption.is_on(),
        "an identity alone turns encryption on"
    );
    assert_eq!(
        cfg.repository.encryption.identities_from.as_deref(),
        Some("AOFVAULT_ENCRYPTION_IDENTITY")
    );
    assert!(
        !format!("{:?}", env().with("AOFVAULT_ENCRYPTION_IDENTITY", SECRET))
            .contains(&SECRET[16..])
    );
}

#[test]
fn swapped_files_and_open_permissions_are_errors_that_never_show_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let recipients = dir.path().join("recipients.txt");
    let identity = dir.path().join("identity.txt");
    // Swapped: the secret key where the public one belongs, and the other way round.
    write(&recipients, &format!("{SECRET}\n"), 0o600);
    write(&identity, &format!("{PUBLIC}\n"), 0o644);
    let text = format!(
        "[repository]\nencryption_recipients = [\"{SECRET}\", \"age1short\"]\nencryption_recipients_file = {:?}\nencryption_identity_file = {:?}\n",
        recipients.display().to_string(),
        identity.display().to_string()
    );
    let errors = load(&text, &env()).unwrap_err();
    let shown = errors.to_string();
    assert!(
        !shown.contains(&SECRET[16..]),
        "an error shows the secret key: {shown}"
    );
    let paths = errors.paths();
    assert_eq!(
        paths
            .iter()
            .filter(|p| **p == "repository.encryption_recipients")
            .count(),
        2,
        "{shown}"
    );
    assert!(shown.contains("line 1 is not an age recipient"), "{shown}");
    assert!(shown.contains("holds a secret key"), "{shown}");
    assert!(shown.contains("line 1 is not an age identity"), "{shown}");
    assert!(
        shown.contains("every user of this host can read"),
        "{shown}"
    );
    assert!(
        shown.contains("identity.txt"),
        "errors name the file: {shown}"
    );
}
