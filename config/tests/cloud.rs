//! `az://` and `gs://` repository URLs, and `[repository.azure]` / `[repository.gcs]` filled
//! from their standard environment variables, with secrets never shown.
#![allow(clippy::unwrap_used)]

use aofvault_config::{Config, ConfigErrors, Env, RepoUrl};

fn load(text: &str, env: &Env) -> Result<Config, ConfigErrors> {
    Config::from_toml(text, "test.toml", env)
}

fn env() -> Env {
    Env::empty()
        .with("HOSTNAME", "db1")
        .with("STATE_DIRECTORY", "/var/lib/aofvault")
}

#[test]
fn az_and_gs_urls_parse_into_container_or_bucket_and_prefix() {
    let env = env().with("AZURE_STORAGE_ACCOUNT_NAME", "acct");
    let cfg = load("[repository]\nurl = \"az://backups/db/one/\"\n", &env).unwrap();
    assert_eq!(
        cfg.repository.url,
        RepoUrl::Azure {
            container: "backups".into(),
            prefix: "db/one".into()
        }
    );
    assert_eq!(cfg.repository.url.to_string(), "az://backups/db/one");
    let cfg = load("[repository]\nurl = \"gs://my-bucket\"\n", &env).unwrap();
    assert_eq!(
        cfg.repository.url,
        RepoUrl::Gcs {
            bucket: "my-bucket".into(),
            prefix: String::new()
        }
    );
    let bad = load("[repository]\nurl = \"az://Bad_Container\"\n", &env).unwrap_err();
    assert!(bad.to_string().contains("Azure container name"), "{bad}");
}

#[test]
fn azure_settings_come_from_the_environment_and_stay_redacted() {
    let env = env()
        .with("AZURE_STORAGE_ACCOUNT_NAME", "acct")
        .with("AZURE_STORAGE_ACCOUNT_KEY", "S3CR3T-AZURE-KEY")
        .with("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:10000/acct");
    let cfg = load("[repository]\nurl = \"az://backups\"\n", &env).unwrap();
    let az = &cfg.repository.azure;
    assert_eq!(az.account.as_deref(), Some("acct"));
    assert_eq!(
        az.access_key.as_ref().map(|s| s.expose()),
        Some("S3CR3T-AZURE-KEY")
    );
    assert!(az.allow_http, "an http:// endpoint allows http");
    let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
    assert!(!shown.contains("S3CR3T-AZURE-KEY"), "{shown}");
    assert!(!format!("{env:?}").contains("S3CR3T-AZURE-KEY"));

    // No account and no emulator: an error naming the key and the variable.
    let errors = load("[repository]\nurl = \"az://backups\"\n", &self::env()).unwrap_err();
    assert!(
        errors.to_string().contains("AZURE_STORAGE_ACCOUNT_NAME"),
        "{errors}"
    );
    // The emulator needs no account.
    let emu = self::env().with("AZURE_STORAGE_USE_EMULATOR", "true");
    assert!(
        load("[repository]\nurl = \"az://backups\"\n", &emu)
            .unwrap()
            .repository
            .azure
            .use_emulator
    );
}

#[test]
fn gcs_settings_come_from_the_environment_the_file_wins() {
    let env = env()
        .with("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcs.json")
        .with("GOOGLE_BASE_URL", "http://127.0.0.1:4443");
    let cfg = load("[repository]\nurl = \"gs://b-1/x\"\n", &env).unwrap();
    assert_eq!(
        cfg.repository.gcs.service_account_file.as_deref(),
        Some(std::path::Path::new("/etc/gcs.json"))
    );
    let text = "[repository]\nurl = \"gs://b-1/x\"\n[repository.gcs]\nservice_account_file = \"/etc/own.json\"\nbase_url = \"ftp://x\"\n";
    let errors = load(text, &env).unwrap_err();
    assert!(
        errors.to_string().contains("repository.gcs.base_url"),
        "{errors}"
    );
}
