//! One `vicibridge serve` per data directory: two would each run a worker on the same queue
//! and a second listener, and neither would know. `serve` holds an exclusive lock on
//! `DATA_DIR/serve.lock` for as long as it runs; the operating system drops it when the
//! process ends, however it ends. Only `serve` takes it: commands that read or repair the
//! queue while serve runs go through SQLite's own locking.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The lock file's name under `--data-dir`.
pub const LOCK_FILE: &str = "serve.lock";

#[derive(Debug, thiserror::Error)]
pub enum DataDirLockError {
    #[error(
        "another vicibridge serve{holder} is already running on the data directory {dir}: stop it first, or give this one another --data-dir (lock: {lock})"
    )]
    InUse { dir: String, lock: String, holder: String },
    #[error("cannot lock the data directory ({lock}): {source}")]
    Io { lock: String, source: std::io::Error },
}

/// Held while `serve` runs; dropping it releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock at once or says who holds it; never waits.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, DataDirLockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| DataDirLockError::Io { lock: path.display().to_string(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The holder wrote its process id when it took the lock.
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let holder = if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
                    format!(" (process {pid})")
                } else {
                    String::new()
                };
                return Err(DataDirLockError::InUse {
                    dir: data_dir.display().to_string(),
                    lock: path.display().to_string(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let second = DataDirLock::acquire(dir.path()).unwrap_err();
        let msg = second.to_string();
        assert!(msg.contains(&format!("(process {})", std::process::id())), "{msg}");
        assert!(msg.contains("another vicibridge serve"), "{msg}");
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
