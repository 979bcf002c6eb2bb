//! The PKI directory on the operator machine: reading what is there, and landing a batch of new
//! files atomically with one filesystem sync for the whole batch instead of one per file (an
//! fsync costs several milliseconds here, more than issuing an ECDSA certificate).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::PkiError;
use super::table::DIR_MODE;

/// The PKI directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel` is relative to the PKI dir, `/`-separated.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The file's bytes, or `None` when it does not exist.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, PkiError> {
        let path = self.path(rel);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PkiError::io(path)(e)),
        }
    }

    pub fn read_text(&self, rel: &str) -> Result<Option<String>, PkiError> {
        match self.read(rel)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| PkiError::invalid(self.path(rel), "not UTF-8 text (expected PEM)")),
        }
    }
}

struct Pending {
    path: PathBuf,
    contents: Vec<u8>,
    mode: u32,
    /// Never replace an existing file (CAs): fail instead.
    keep_existing: bool,
}

/// Files to land together. Nothing is visible until `commit`, and each file appears whole.
#[derive(Default)]
pub struct Batch {
    pending: Vec<Pending>,
}

impl Batch {
    pub fn put(&mut self, path: PathBuf, contents: Vec<u8>, mode: u32) {
        self.pending.push(Pending {
            path,
            contents,
            mode,
            keep_existing: false,
        });
    }

    /// Like `put`, but an existing file is an error rather than replaced.
    pub fn put_new(&mut self, path: PathBuf, contents: Vec<u8>, mode: u32) {
        self.pending.push(Pending {
            path,
            contents,
            mode,
            keep_existing: true,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Create directories (0700) under `root`, write every file to a temporary name beside its
    /// target, sync the filesystem once, move them all into place, and sync once more so the
    /// renames are durable too.
    pub fn commit(self, root: &Path) -> Result<(), PkiError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut dirs = BTreeSet::new();
        dirs.insert(root.to_path_buf());
        for p in &self.pending {
            let mut dir = p.path.parent();
            while let Some(d) = dir {
                if !d.starts_with(root) || !dirs.insert(d.to_path_buf()) {
                    break;
                }
                dir = d.parent();
            }
        }
        // Parents first (the set is sorted). Only a directory made here is set to 0700: an
        // existing one keeps its mode, since it may be the operator's own (`pki.dir: .` is the
        // config's directory).
        for d in &dirs {
            match fs::DirBuilder::new().mode(DIR_MODE).create(d) {
                Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(PkiError::io(d))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // A parent outside the PKI dir is missing too: make it like `mkdir -p`.
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(DIR_MODE)
                        .create(d)
                        .map_err(PkiError::io(d))?;
                    fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))
                        .map_err(PkiError::io(d))?;
                }
                Err(e) => return Err(PkiError::io(d)(e)),
            }
        }
        let tmp_of = |path: &Path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            path.with_file_name(format!(".{name}.kinit-tmp.{}", std::process::id()))
        };
        let mut written: Vec<PathBuf> = Vec::with_capacity(self.pending.len());
        let result = (|| {
            for p in &self.pending {
                let tmp = tmp_of(&p.path);
                let open = || {
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(p.mode)
                        .open(&tmp)
                };
                // A temporary file left by a crashed run with the same PID: replace it.
                let mut f = match open() {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        fs::remove_file(&tmp).map_err(PkiError::io(&tmp))?;
                        open()
                    }
                    other => other,
                }
                .map_err(PkiError::io(&tmp))?;
                written.push(tmp.clone());
                f.set_permissions(fs::Permissions::from_mode(p.mode))
                    .map_err(PkiError::io(&tmp))?;
                f.write_all(&p.contents).map_err(PkiError::io(&tmp))?;
            }
            sync_filesystem(root)?;
            for p in &self.pending {
                let tmp = tmp_of(&p.path);
                if p.keep_existing {
                    fs::hard_link(&tmp, &p.path).map_err(PkiError::io(&p.path))?;
                    fs::remove_file(&tmp).map_err(PkiError::io(&tmp))?;
                } else {
                    fs::rename(&tmp, &p.path).map_err(PkiError::io(&p.path))?;
                }
            }
            sync_filesystem(root)
        })();
        if result.is_err() {
            for tmp in written {
                let _ = fs::remove_file(tmp);
            }
        }
        result
    }
}

/// `syncfs(2)` on the filesystem holding `dir`.
fn sync_filesystem(dir: &Path) -> Result<(), PkiError> {
    let f = fs::File::open(dir).map_err(PkiError::io(dir))?;
    // SAFETY: `f` is an open descriptor for the duration of the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(PkiError::io(dir)(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lands_files_with_modes_and_refuses_to_clobber_kept_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pki");
        let mut b = Batch::default();
        b.put(root.join("a/b/c.key"), b"k".to_vec(), 0o600);
        b.put_new(root.join("ca.crt"), b"c".to_vec(), 0o644);
        b.commit(&root).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("a/b/c.key")), 0o600);
        assert_eq!(mode(&root.join("ca.crt")), 0o644);
        assert_eq!(mode(&root.join("a/b")), 0o700);
        assert_eq!(mode(&root), 0o700);
        let mut again = Batch::default();
        again.put_new(root.join("ca.crt"), b"other".to_vec(), 0o644);
        assert!(again.commit(&root).is_err());
        assert_eq!(fs::read(root.join("ca.crt")).unwrap(), b"c");
        let leftovers: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("kinit-tmp")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    /// `pki.dir: .`: the PKI dir is the config's own directory. It keeps its mode; only the
    /// directories made for the PKI are 0700.
    #[test]
    fn an_existing_directory_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config-dir");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let mut b = Batch::default();
        b.put(root.join("etcd/ca.key"), b"k".to_vec(), 0o600);
        b.commit(&root).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o755);
        assert_eq!(mode(&root.join("etcd")), 0o700);
    }
}
