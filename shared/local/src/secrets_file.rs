//! Secrets from a local JSON file or an environment variable: the `SecretStore` of
//! `vicibridge serve`.
//!
//! Every `current()` looks at the file's metadata (one `stat`: modification time, size,
//! inode) and re-reads it as soon as it changed, so an edit is used by the very next request
//! or worker call; a fixed password is never refused for an old one. The file is also re-read
//! once its TTL has passed (30 s by default), for filesystems whose timestamps are too coarse
//! to show a quick second edit, and at once by `refresh()`. If a re-read fails (the file is
//! half-written by an editor, or was broken by one), `current()` keeps serving the last good
//! document, logs a warning and tries again on the next change or after another TTL: a typo
//! must not stop ingest. `refresh()` reports the error, since its caller asked for the file as
//! it is now. Errors name the file and the JSON position, never a value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use vicibridge_core::ports::{SecretStore, SecretsError};
use vicibridge_core::secrets::SecretDoc;

pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The environment variable that may hold the secret JSON itself.
pub const SECRETS_JSON_ENV: &str = "VICIBRIDGE_SECRETS_JSON";

pub struct FileSecrets {
    /// `None` for a document given as a string: nothing to re-read.
    path: Option<PathBuf>,
    ttl: Duration,
    cached: RwLock<Cached>,
    /// One re-read at a time; the others wait for it and use its result.
    reload: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Cached {
    doc: Arc<SecretDoc>,
    loaded_at: Instant,
    /// The file as it was when last read (or found unreadable): a different one is re-read.
    stamp: Option<Stamp>,
}

/// What a `stat` tells about the file's content without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    /// An editor that saves by renaming a new file over the old one changes it.
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp { modified: meta.modified().ok(), len: meta.len(), inode })
    }
}

impl fmt::Debug for FileSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSecrets").field("path", &self.path).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl FileSecrets {
    /// Reads and validates the file now, so a bad secrets file stops startup with a clear
    /// message rather than failing the first request.
    pub fn open(path: impl Into<PathBuf>) -> Result<FileSecrets, SecretsError> {
        let path = path.into();
        let stamp = Stamp::of(&path);
        let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, &e))?;
        let doc = parse(&text, Some(&path))?;
        Ok(FileSecrets::new(Some(path), doc, stamp))
    }

    /// The document given as a string (the `VICIBRIDGE_SECRETS_JSON` variable).
    pub fn from_json(text: &str) -> Result<FileSecrets, SecretsError> {
        let doc = parse(text, None)?;
        Ok(FileSecrets::new(None, doc, None))
    }

    /// How long a read of the file is used before the next `current()` reads it again.
    pub fn with_ttl(mut self, ttl: Duration) -> FileSecrets {
        self.ttl = ttl;
        self
    }

    fn new(path: Option<PathBuf>, doc: SecretDoc, stamp: Option<Stamp>) -> FileSecrets {
        FileSecrets {
            path,
            ttl: DEFAULT_TTL,
            cached: RwLock::new(Cached { doc: Arc::new(doc), loaded_at: Instant::now(), stamp }),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Cached {
        // The lock only guards a plain swap of values; a panic elsewhere cannot leave it torn.
        self.cached.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Unchanged on disk (same stamp) and read within the TTL.
    fn is_fresh(&self, cached: &Cached, now: Option<Stamp>) -> bool {
        self.path.is_none() || (cached.stamp == now && cached.loaded_at.elapsed() < self.ttl)
    }

    /// Reads the file and, if it parses, makes it the cached document.
    async fn reload(&self, path: &Path) -> Result<Arc<SecretDoc>, SecretsError> {
        // Taken before reading: an edit landing during the read is seen by the next call.
        let stamp = Stamp::of(path);
        let text = tokio::fs::read_to_string(path).await.map_err(|e| read_error(path, &e))?;
        let doc = Arc::new(parse(&text, Some(path))?);
        *self.cached.write().unwrap_or_else(PoisonError::into_inner) =
            Cached { doc: Arc::clone(&doc), loaded_at: Instant::now(), stamp };
        Ok(doc)
    }
}

#[async_trait]
impl SecretStore for FileSecrets {
    async fn current(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        let cached = self.cached();
        let Some(path) = self.path.as_deref() else {
            return Ok(cached.doc);
        };
        let stamp = Stamp::of(path);
        if self.is_fresh(&cached, stamp) {
            return Ok(cached.doc);
        }
        // While another caller re-reads the file, answer with the document we have: that
        // caller may be the idle-priority worker thread, and an ingest request must not wait
        // for it to be scheduled.
        let Ok(_reloading) = self.reload.try_lock() else {
            return Ok(cached.doc);
        };
        // Another caller may have re-read the file just before we took the lock.
        let cached = self.cached();
        if self.is_fresh(&cached, stamp) {
            return Ok(cached.doc);
        }
        match self.reload(path).await {
            Ok(doc) => Ok(doc),
            Err(error) => {
                tracing::warn!(%error, "keeping the previous secrets until the file reads cleanly");
                // Try again on the next change or after another TTL, not on every request.
                let mut slot = self.cached.write().unwrap_or_else(PoisonError::into_inner);
                slot.loaded_at = Instant::now();
                slot.stamp = stamp;
                Ok(Arc::clone(&slot.doc))
            }
        }
    }

    async fn refresh(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        let Some(path) = self.path.as_deref() else {
            return Ok(self.cached().doc);
        };
        let _reloading = self.reload.lock().await;
        self.reload(path).await
    }
}

fn parse(text: &str, path: Option<&Path>) -> Result<SecretDoc, SecretsError> {
    // SecretDoc's error is already redacted: position and field names only.
    SecretDoc::from_json(text).map_err(|e| match path {
        Some(path) => SecretsError::Invalid(format!("{}: {e}", path.display())),
        None => SecretsError::Invalid(format!("{SECRETS_JSON_ENV}: {e}")),
    })
}

fn read_error(path: &Path, error: &std::io::Error) -> SecretsError {
    SecretsError::Unavailable(format!("cannot read secrets file {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_A: &str = r#"{"ingest_tokens": ["token-aaaa-1111"]}"#;
    const DOC_B: &str = r#"{"ingest_tokens": ["token-bbbb-2222", "token-aaaa-1111"]}"#;

    fn first_token(doc: &SecretDoc) -> &str {
        doc.ingest_tokens[0].expose()
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[tokio::test]
    async fn reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        write(&path, DOC_A);
        let secrets = FileSecrets::open(&path).unwrap();
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-aaaa-1111");
    }

    #[tokio::test]
    async fn refresh_rereads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        write(&path, DOC_A);
        let secrets = FileSecrets::open(&path).unwrap().with_ttl(Duration::from_secs(3600));
        write(&path, DOC_B);
        assert_eq!(first_token(&secrets.refresh().await.unwrap()), "token-bbbb-2222");
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-bbbb-2222");
    }

    /// Item 8 of issue 9: a fixed secret must not wait for the TTL.
    #[tokio::test]
    async fn an_edited_file_is_used_at_once_whatever_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        write(&path, DOC_A);
        let secrets = FileSecrets::open(&path).unwrap().with_ttl(Duration::from_secs(3600));
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-aaaa-1111");
        write(&path, DOC_B);
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-bbbb-2222");
        // Same size, saved by renaming a new file over the old one, as many editors do.
        let tmp = dir.path().join("secrets.json.new");
        write(&tmp, &DOC_B.replace("bbbb", "cccc"));
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-cccc-2222");
        // Same size, same inode, only the modification time differs.
        write(&path, &DOC_B.replace("bbbb", "dddd"));
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-dddd-2222");
    }

    #[tokio::test]
    async fn an_unchanged_file_is_not_read_again_within_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        write(&path, DOC_A);
        let secrets = FileSecrets::open(&path).unwrap().with_ttl(Duration::from_secs(3600));
        let first = secrets.current().await.unwrap();
        let again = secrets.current().await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
    }

    #[tokio::test]
    async fn rereads_the_file_once_the_ttl_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        write(&path, DOC_A);
        // A zero TTL has always passed.
        let secrets = FileSecrets::open(&path).unwrap().with_ttl(Duration::ZERO);
        write(&path, DOC_B);
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-bbbb-2222");
    }

    #[tokio::test]
    async fn a_broken_edit_keeps_the_last_good_document_but_refresh_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        write(&path, DOC_A);
        let secrets = FileSecrets::open(&path).unwrap().with_ttl(Duration::ZERO);
        write(&path, r#"{"ingest_tokens": ["token-cccc-3333""#);
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-aaaa-1111");
        let error = secrets.refresh().await.unwrap_err().to_string();
        assert!(error.contains("secrets.json"), "{error}");
        assert!(!error.contains("token-cccc-3333"), "{error}");
        write(&path, DOC_B);
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-bbbb-2222");
    }

    #[test]
    fn open_errors_name_the_file_and_never_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let error = FileSecrets::open(&missing).unwrap_err();
        assert!(matches!(error, SecretsError::Unavailable(_)));
        assert!(error.to_string().contains("missing.json"), "{error}");

        let bad = dir.path().join("bad.json");
        write(&bad, r#"{"ingest_tokens": "supersecretvalue"}"#);
        let error = FileSecrets::open(&bad).unwrap_err();
        assert!(matches!(error, SecretsError::Invalid(_)));
        let message = error.to_string();
        assert!(message.contains("bad.json") && !message.contains("supersecretvalue"), "{message}");
    }

    #[tokio::test]
    async fn from_json_serves_the_string() {
        let secrets = FileSecrets::from_json(DOC_B).unwrap().with_ttl(Duration::ZERO);
        assert_eq!(first_token(&secrets.current().await.unwrap()), "token-bbbb-2222");
        assert_eq!(first_token(&secrets.refresh().await.unwrap()), "token-bbbb-2222");
        let error = FileSecrets::from_json(r#"{"hubspot": {"access_token": 5}, "x": "supersecret"}"#).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(SECRETS_JSON_ENV) && !message.contains("supersecret"), "{message}");
    }
}
