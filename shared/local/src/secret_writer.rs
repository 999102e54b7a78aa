//! [`SecretWriter`] over the local secrets file of `vicibridge serve`: the file is read,
//! `salesforce.refresh_token` replaced, and the result written to a temporary file in the
//! same directory, fsynced and renamed over the original — a crash leaves the old file or the
//! new one, never half of one. The file's permissions are kept (it is usually 0600).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use vicibridge_core::ports::{SecretWriter, SecretsError};
use vicibridge_core::secrets::Secret;

pub struct FileSecretWriter {
    path: PathBuf,
    writing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for FileSecretWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSecretWriter").field("path", &self.path).finish_non_exhaustive()
    }
}

impl FileSecretWriter {
    /// `path`: the `--secrets` file that `FileSecrets` reads.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSecretWriter { path: path.into(), writing: tokio::sync::Mutex::new(()) }
    }
}

#[async_trait]
impl SecretWriter for FileSecretWriter {
    async fn put_salesforce_refresh_token(&self, token: &Secret) -> Result<(), SecretsError> {
        let _writing = self.writing.lock().await;
        let path = self.path.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || rewrite(&path, &token))
            .await
            .map_err(|e| SecretsError::Unavailable(format!("secret writer task failed: {e}")))?
    }
}

fn rewrite(path: &Path, token: &Secret) -> Result<(), SecretsError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SecretsError::Unavailable(format!("cannot read secrets file {shown}: {e}")))?;
    let mut doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| SecretsError::Invalid(format!("secrets file {shown} is not valid JSON (line {})", e.line())))?;
    let root = doc
        .as_object_mut()
        .ok_or_else(|| SecretsError::Invalid(format!("secrets file {shown}: the JSON is not an object")))?;
    let section = root.entry("salesforce").or_insert_with(|| serde_json::json!({}));
    let section = section
        .as_object_mut()
        .ok_or_else(|| SecretsError::Invalid(format!("secrets file {shown}: salesforce is not an object")))?;
    section.insert("refresh_token".to_owned(), serde_json::Value::String(token.expose().to_owned()));
    let body = serde_json::to_string_pretty(&doc)
        .map_err(|_| SecretsError::Invalid(format!("secrets file {shown}: cannot encode the JSON")))?;

    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |what: &str, e: std::io::Error| SecretsError::Unavailable(format!("cannot {what} for {shown}: {e}"));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.{:08x}.tmp", std::process::id(), fastrand::u32(..)));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(body.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("replace the secrets file", e));
    }
    // The rename itself is durable only once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    tracing::info!(path = %shown, "stored the rotated Salesforce refresh token");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewrites_only_the_refresh_token_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, r#"{"ingest_tokens":["t1"],"salesforce":{"client_id":"c","refresh_token":"old-rt"}}"#)
            .unwrap();
        let writer = FileSecretWriter::new(&path);
        writer.put_salesforce_refresh_token(&Secret::new("new-rt")).await.unwrap();
        let doc = vicibridge_core::secrets::SecretDoc::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let sf = doc.salesforce.unwrap();
        assert_eq!(sf.refresh_token.unwrap().expose(), "new-rt");
        assert_eq!(sf.client_id.unwrap().expose(), "c");
        assert_eq!(doc.ingest_tokens[0].expose(), "t1");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }

    #[tokio::test]
    async fn errors_name_the_file_never_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, "{\"salesforce\": \"old-secret-value\"").unwrap();
        let e = FileSecretWriter::new(&path).put_salesforce_refresh_token(&Secret::new("new-rt")).await.unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("secrets.json") && !shown.contains("old-secret") && !shown.contains("new-rt"),
            "{shown}"
        );
    }
}
