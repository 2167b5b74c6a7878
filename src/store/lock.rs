//! One daemon per database. Two daemons on one file would both apply the deadlines and run the
//! router jobs, and knock each other off the broker (same MQTT client id). The daemon holds an
//! advisory lock on `<database>.daemon.lock` for its life; the CLI takes none (it may read and
//! write beside the daemon, as WAL and `BEGIN IMMEDIATE` allow).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Held while the daemon runs; the lock goes with it (also when the process dies).
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    pub path: PathBuf,
}

impl DaemonLock {
    pub fn acquire(database: &Path) -> Result<DaemonLock, StoreError> {
        let mut name = database.as_os_str().to_owned();
        name.push(".daemon.lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let open_error = |e: std::io::Error| StoreError::Lock {
            path: path.display().to_string(),
            message: format!("cannot open the lock file: {e}"),
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(open_error)?;
        match file.try_lock() {
            Ok(()) => Ok(DaemonLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(StoreError::Lock {
                path: path.display().to_string(),
                message: format!(
                    "another hotspot-edge daemon is running on {}; stop it first (two would both enforce and fight over the broker)",
                    database.display()
                ),
            }),
            Err(TryLockError::Error(e)) => Err(open_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/h.db");
        let first = DaemonLock::acquire(&db).unwrap();
        let e = DaemonLock::acquire(&db).unwrap_err().to_string();
        assert!(e.contains("another hotspot-edge daemon is running"), "{e}");
        assert!(e.contains("h.db.daemon.lock"), "{e}");
        drop(first);
        DaemonLock::acquire(&db).unwrap();
    }
}
