//! Where a run reads and writes the PKI: the real directory, or for a dry run a private
//! scratch copy (so the plan shows every certificate as it would land while the real PKI dir
//! stays untouched), removed when the run ends.

use std::path::{Path, PathBuf};

use super::run_error::OperatorError;

/// Where this run reads and writes the PKI.
pub struct PkiWorkspace {
    dir: PathBuf,
    /// A dry run's copy, removed when the run ends.
    scratch: bool,
}

impl PkiWorkspace {
    pub fn real(dir: &Path) -> PkiWorkspace {
        PkiWorkspace {
            dir: dir.to_path_buf(),
            scratch: false,
        }
    }

    /// A private copy of `dir` (modes kept; private keys stay 0600) in the temporary directory.
    pub fn scratch_copy(dir: &Path) -> Result<PkiWorkspace, OperatorError> {
        PkiWorkspace::scratch_copy_in(dir, &std::env::temp_dir())
    }

    /// A private copy of `dir` in a new directory under `parent`: made by mkdtemp (0700, a
    /// random name, never an existing directory), filled without following symbolic links.
    pub fn scratch_copy_in(dir: &Path, parent: &Path) -> Result<PkiWorkspace, OperatorError> {
        let fail = |source| OperatorError::Scratch {
            from: dir.to_path_buf(),
            source,
        };
        let scratch =
            crate::fsutil::private_temp_dir(parent, "kinit-dry-run-pki-").map_err(fail)?;
        let workspace = PkiWorkspace {
            dir: scratch.clone(),
            scratch: true,
        };
        copy_tree(dir, &scratch).map_err(fail)?;
        Ok(workspace)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PkiWorkspace {
    fn drop(&mut self) {
        if self.scratch {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Copy the regular files and directories of `from` into the existing directory `to`. Symbolic
/// links are not followed, neither in `from` nor in `to`: a PKI dir holds none, and a link must
/// not pull a file from elsewhere into the copy. A missing source is an empty tree.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // The entry's own type (lstat): a link is a link, not what it points to.
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            std::fs::DirBuilder::new().mode(0o700).create(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            let mut source = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(entry.path())?;
            let mode = source.metadata()?.permissions().mode() & 0o777;
            let mut copy = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)?;
            std::io::copy(&mut source, &mut copy)?;
            copy.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// The old predictable `kinit-dry-run-pki-<pid>` is neither reused nor removed; the copy is
    /// private, keeps modes, and holds no link nor anything a link pointed to.
    #[test]
    fn the_dry_run_copy_is_private_and_follows_no_link() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = tmp.path().join("pki");
        std::fs::create_dir_all(pki.join("etcd")).unwrap();
        std::fs::write(pki.join("ca.key"), "key").unwrap();
        std::fs::set_permissions(pki.join("ca.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::write(pki.join("etcd/ca.crt"), "crt").unwrap();
        std::fs::set_permissions(
            pki.join("etcd/ca.crt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let outside = tmp.path().join("secret");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("file"), "not pki").unwrap();
        std::os::unix::fs::symlink(outside.join("file"), pki.join("linked.key")).unwrap();
        std::os::unix::fs::symlink(&outside, pki.join("linked-dir")).unwrap();

        let parent = tmp.path().join("tmp");
        let planted = parent.join(format!("kinit-dry-run-pki-{}", std::process::id()));
        std::fs::create_dir_all(&planted).unwrap();
        std::os::unix::fs::symlink(&outside, planted.join("etcd")).unwrap();

        let ws = PkiWorkspace::scratch_copy_in(&pki, &parent).unwrap();
        let dir = ws.dir().to_path_buf();
        assert_ne!(dir, planted);
        assert!(dir.starts_with(&parent), "{}", dir.display());
        assert_eq!(mode(&dir), 0o700);
        assert!(
            planted.join("etcd").exists(),
            "another's directory left alone"
        );
        assert_eq!(std::fs::read_to_string(dir.join("ca.key")).unwrap(), "key");
        assert_eq!(mode(&dir.join("ca.key")), 0o600);
        assert_eq!(mode(&dir.join("etcd/ca.crt")), 0o644);
        assert!(!dir.join("linked.key").exists());
        assert!(!dir.join("linked-dir").exists());
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            1,
            "nothing written outside"
        );
        drop(ws);
        assert!(!dir.exists(), "removed when the run ends");
    }
}
