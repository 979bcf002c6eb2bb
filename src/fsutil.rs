//! Files land whole or not at all: written to a temporary file beside the target, synced, then
//! moved into place.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// What to do when the destination already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Replace,
    /// Fail with `AlreadyExists`, atomically (no window where a concurrent writer is clobbered).
    Keep,
}

/// Write `contents` to `path` with `mode`, atomically.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32, existing: Existing) -> io::Result<()> {
    write_atomic_owned(path, contents, mode, existing, None)
}

/// [`write_atomic`], the file given `owner` (uid, gid) before it is moved into place, so it
/// never shows with another owner (root keeping a user's file theirs).
pub fn write_atomic_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    existing: Existing,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.kinit-tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        // The umask may have narrowed the mode; set it exactly (after the owner: a chown
        // clears set-id bits).
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        match existing {
            Existing::Replace => fs::rename(&tmp, path),
            Existing::Keep => fs::hard_link(&tmp, path).and_then(|()| fs::remove_file(&tmp)),
        }
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Rename `from` to `to` unless `to` exists (`AlreadyExists` then, and `from` stays): one
/// `renameat2(RENAME_NOREPLACE)`, or where the filesystem does not offer it a hard link and an
/// unlink, so that two writers of one name never overwrite each other (a check before a plain
/// rename leaves a window).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (src, dst) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            src.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(e),
    }
}

/// A new directory in `parent` named `prefix` plus random characters, made by `mkdtemp(3)`:
/// mode 0700, and never one that existed before (a predictable name in a shared /tmp could be
/// made in advance by another user, with links in it).
pub fn private_temp_dir(parent: &Path, prefix: &str) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let template = parent.join(format!("{prefix}XXXXXX"));
    let mut bytes = std::ffi::CString::new(template.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        .into_bytes_with_nul();
    // SAFETY: `bytes` is a writable NUL-terminated template that outlives the call.
    let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(io::Error::last_os_error());
    }
    bytes.pop();
    Ok(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
        &bytes,
    )))
}

/// The sha256 of a file's content in lowercase hex, read in 1 MiB pieces (binaries of 100 MB
/// are never held in memory whole).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_noreplace_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, to) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("to"),
        );
        fs::write(&a, "first").unwrap();
        fs::write(&b, "second").unwrap();
        rename_noreplace(&a, &to).unwrap();
        let err = rename_noreplace(&b, &to).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&to).unwrap(), "first");
        assert_eq!(fs::read_to_string(&b).unwrap(), "second");
        assert!(!a.exists());
    }

    #[test]
    fn keep_refuses_to_clobber_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600, Existing::Keep).unwrap();
        let err = write_atomic(&p, b"two", 0o600, Existing::Keep).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"three", 0o640, Existing::Replace).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
