//! An exclusive advisory lock on a file (flock), held until dropped: two `kinit lab` runs on the
//! same lab or image never interleave.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::LabError;

pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn acquire(path: &Path) -> Result<FileLock, LabError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| LabError::io(path, "opening lock file", e))?;
        // SAFETY: the fd is valid for the lifetime of `file`; flock has no other preconditions.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(LabError::io(
                path,
                "locking",
                std::io::Error::last_os_error(),
            ));
        }
        // Released when the file is closed (on drop, or when the process dies).
        Ok(FileLock { _file: file })
    }
}
