//! `[repository.azure]` and `[repository.gcs]`: the Azure Blob and Google Cloud Storage client
//! options, with their standard environment variables filling what the file leaves unset (the
//! file wins, as for `[repository.s3]`).
//!
//! Only the options an operator commonly sets live here. The clients themselves (object_store's
//! `MicrosoftAzureBuilder::from_env` / `GoogleCloudStorageBuilder::from_env`) also read every
//! other standard variable of their cloud (service principal, workload identity, application
//! default credentials, ...), so those work without a configuration key.

use std::path::PathBuf;

use url::Url;

use super::repository::{env_bool, secret};
use super::Check;
use crate::error::ErrorKind;
use crate::model::{Azure, Gcs};
use crate::raw::{RawAzure, RawGcs};

/// `[repository.azure]` ← `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` (or
/// `AZURE_STORAGE_ACCESS_KEY`), `AZURE_STORAGE_SAS_TOKEN`, `AZURE_STORAGE_ENDPOINT`,
/// `AZURE_STORAGE_USE_EMULATOR`, `AZURE_ALLOW_HTTP`.
pub(super) fn azure(raw: RawAzure, is_azure: bool, check: &mut Check) -> Azure {
    let env = check.env();
    let account = raw
        .account
        .or_else(|| env.get("AZURE_STORAGE_ACCOUNT_NAME").map(String::from));
    let endpoint = raw.endpoint.or_else(|| {
        env.first(&["AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"])
            .map(|(_, v)| v.to_string())
    });
    let mut endpoint_is_http = false;
    if let Some(text) = &endpoint {
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {
                endpoint_is_http = url.scheme() == "http"
            }
            _ => check.push(
                ErrorKind::InvalidValue,
                "repository.azure.endpoint",
                Some(format!("{text:?}")),
                "must be an http:// or https:// URL (the account's blob endpoint)",
            ),
        }
    }
    let use_emulator = match raw.use_emulator {
        Some(v) => v,
        None => check
            .env()
            .get("AZURE_STORAGE_USE_EMULATOR")
            .map(str::to_string)
            .is_some_and(|text| {
                env_bool(
                    "repository.azure.use_emulator",
                    "AZURE_STORAGE_USE_EMULATOR",
                    &text,
                    check,
                )
            }),
    };
    let allow_http = match raw.allow_http {
        Some(v) => v,
        None => match check.env().get("AZURE_ALLOW_HTTP").map(str::to_string) {
            Some(text) => env_bool(
                "repository.azure.allow_http",
                "AZURE_ALLOW_HTTP",
                &text,
                check,
            ),
            None => endpoint_is_http,
        },
    };
    let access_key = match raw.access_key_file.as_deref() {
        Some(path) => super::source::read_secret("repository.azure.access_key_file", path, check),
        None => check
            .env()
            .first(&["AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY"])
            .map(|(_, v)| crate::secret::Secret::new(v)),
    };
    let sas_token = secret(
        raw.sas_token_file.as_deref(),
        "repository.azure.sas_token_file",
        "AZURE_STORAGE_SAS_TOKEN",
        check,
    );
    if is_azure && !use_emulator && account.is_none() {
        check.push(
            ErrorKind::Missing,
            "repository.azure.account",
            None,
            "an az:// repository needs the storage account name (or AZURE_STORAGE_ACCOUNT_NAME)",
        );
    }
    if is_azure && access_key.is_some() && sas_token.is_some() {
        check.push(
            ErrorKind::Conflict,
            "repository.azure.sas_token_file",
            None,
            "set an account key or a SAS token, not both",
        );
    }
    Azure {
        account,
        access_key,
        sas_token,
        endpoint,
        use_emulator,
        allow_http,
    }
}

/// `[repository.gcs]` ← `GOOGLE_SERVICE_ACCOUNT` (or `GOOGLE_SERVICE_ACCOUNT_PATH`,
/// `GOOGLE_APPLICATION_CREDENTIALS`), `GOOGLE_BASE_URL`.
pub(super) fn gcs(raw: RawGcs, check: &mut Check) -> Gcs {
    let env = check.env();
    let service_account_file = raw.service_account_file.or_else(|| {
        env.first(&[
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ])
        .map(|(_, v)| PathBuf::from(v))
    });
    let base_url = raw
        .base_url
        .or_else(|| env.get("GOOGLE_BASE_URL").map(String::from));
    if let Some(text) = &base_url {
        if !matches!(
            Url::parse(text).map(|u| u.scheme().to_string()).as_deref(),
            Ok("http" | "https")
        ) {
            check.push(
                ErrorKind::InvalidValue,
                "repository.gcs.base_url",
                Some(format!("{text:?}")),
                "must be an http:// or https:// URL",
            );
        }
    }
    Gcs {
        service_account_file,
        base_url,
    }
}
