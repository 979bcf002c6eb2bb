//! The binaries in an upstream .tar.gz, taken out into the bundle's staging directory. An archive
//! with an absolute path, a `..` or a link where a binary should be is refused whole: nothing of
//! it is written.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component as PathPart, Path, PathBuf};

use aws_lc_rs::digest;

use super::error::OpError;
use super::sources::Unpack;

/// A binary written to the staging directory, hashed on the way and synced to disk.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Its name in the bundle.
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
}

/// The archive's entry path, relative and without `..`, `./` stripped; `None` for one that
/// would leave the extraction directory.
fn safe_path(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = Vec::new();
    for part in Path::new(text).components() {
        match part {
            PathPart::Normal(p) => parts.push(p.to_str()?),
            PathPart::CurDir => {}
            PathPart::ParentDir | PathPart::RootDir | PathPart::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// Take what `unpack` names out of the .tar.gz at `archive` into `staging/<bundle name>.part`.
pub fn extract(archive: &Path, unpack: &Unpack, staging: &Path) -> Result<Vec<Staged>, OpError> {
    let shown = archive.display().to_string();
    let bad = |reason: String| OpError::Archive {
        archive: shown.clone(),
        reason,
    };
    let read_err = |e: io::Error| bad(format!("not a readable .tar.gz: {e}"));
    // Pass 1: every entry's path is safe, and the wanted members are regular files.
    let wanted = |path: &str| -> Option<String> {
        match unpack {
            Unpack::Members { members } => members
                .iter()
                .find(|(m, _)| m == path)
                .map(|(_, name)| name.clone()),
            Unpack::All { under } => {
                (!path.is_empty() && !path.contains('/')).then(|| format!("{under}/{path}"))
            }
            Unpack::Plain { .. } => None,
        }
    };
    let open = || -> Result<tar::Archive<flate2::read::GzDecoder<File>>, OpError> {
        let f = File::open(archive).map_err(OpError::io("opening", archive))?;
        Ok(tar::Archive::new(flate2::read::GzDecoder::new(f)))
    };
    let mut found = Vec::new();
    let mut tar = open()?;
    for entry in tar.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes();
        let Some(path) = safe_path(&raw) else {
            return Err(bad(format!(
                "refusing an archive with the entry `{}`, which points outside it",
                String::from_utf8_lossy(&raw)
            )));
        };
        let kind = entry.header().entry_type();
        let link_escapes = entry
            .link_name_bytes()
            .is_some_and(|l| safe_path(&l).is_none());
        if link_escapes {
            return Err(bad(format!(
                "refusing an archive whose entry `{path}` links outside it"
            )));
        }
        // The CNI tarball also holds LICENSE and README.md: only executables are plugins.
        let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        if let Some(name) = wanted(&path) {
            if kind.is_file() && (executable || matches!(unpack, Unpack::Members { .. })) {
                found.push((path, name));
            } else if !kind.is_dir() && matches!(unpack, Unpack::Members { .. }) {
                return Err(bad(format!(
                    "`{path}` is not a regular file (a {kind:?}); refusing it"
                )));
            }
        }
    }
    if let Unpack::Members { members } = unpack {
        for (m, _) in members {
            if !found.iter().any(|(p, _)| p == m) {
                return Err(bad(format!("it has no `{m}`")));
            }
        }
    }
    if found.is_empty() {
        return Err(bad("it holds no binaries".into()));
    }
    // Pass 2: write them.
    let mut out = Vec::new();
    let mut tar = open()?;
    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let Some(path) = safe_path(&entry.path_bytes()) else {
            continue;
        };
        let Some((_, name)) = found.iter().find(|(p, _)| *p == path) else {
            continue;
        };
        let dest = staging.join(format!("{name}.part"));
        let written = write_staged(&mut entry, &dest);
        if written.is_err() {
            for s in out.iter().map(|s: &Staged| &s.path).chain([&dest]) {
                let _ = std::fs::remove_file(s);
            }
        }
        let sha256 = written.map_err(|e| match e {
            StageError::Read(e) => read_err(e),
            StageError::Write(e) => OpError::Io {
                action: "writing",
                path: dest.clone(),
                source: e,
            },
        })?;
        out.push(Staged {
            name: name.clone(),
            path: dest,
            sha256,
        });
    }
    Ok(out)
}

pub(super) enum StageError {
    Read(io::Error),
    Write(io::Error),
}

/// Copy `from` to `dest` (mode 0755, synced), returning its sha256.
pub(super) fn write_staged(from: &mut impl Read, dest: &Path) -> Result<String, StageError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(StageError::Write)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(dest)
        .map_err(StageError::Write)?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = from.read(&mut buf).map_err(StageError::Read)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(StageError::Write)?;
    }
    f.sync_all().map_err(StageError::Write)?;
    Ok(super::hex(ctx.finish().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("a.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Regular);
            // Raw bytes: `set_path` itself refuses `..`, which is what a hostile archive has.
            let raw = name.as_bytes();
            h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn takes_the_named_members() {
        let dir = tempfile::tempdir().unwrap();
        let a = tarball(
            dir.path(),
            &[
                ("./bin/ctr", b"ctr"),
                ("bin/containerd", b"c"),
                ("README", b"r"),
            ],
        );
        let staging = dir.path().join("staging");
        let unpack = Unpack::Members {
            members: vec![
                ("bin/containerd".into(), "containerd".into()),
                ("bin/ctr".into(), "ctr".into()),
            ],
        };
        let out = extract(&a, &unpack, &staging).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(std::fs::read(staging.join("ctr.part")).unwrap(), b"ctr");
        assert_eq!(out[0].sha256, crate::ssh::sha256_hex(b"ctr"));
        let all = extract(
            &a,
            &Unpack::All {
                under: "cni".into(),
            },
            &staging,
        )
        .unwrap();
        // README has mode 0755 in this archive; a 0644 LICENSE would be left out.
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "cni/README");
        let missing = Unpack::Members {
            members: vec![("bin/runc".into(), "runc".into())],
        };
        let e = extract(&a, &missing, &staging).unwrap_err().to_string();
        assert!(e.ends_with("it has no `bin/runc`"), "{e}");
    }

    #[test]
    fn refuses_path_traversal_whole() {
        for hostile in ["../../etc/passwd", "/etc/passwd", "bin/../../x"] {
            let dir = tempfile::tempdir().unwrap();
            let a = tarball(dir.path(), &[("crictl", b"ok"), (hostile, b"evil")]);
            let staging = dir.path().join("staging");
            let unpack = Unpack::Members {
                members: vec![("crictl".into(), "crictl".into())],
            };
            let e = extract(&a, &unpack, &staging).unwrap_err().to_string();
            assert!(e.contains("points outside it"), "{hostile}: {e}");
            assert!(!staging.exists(), "nothing written for {hostile}");
        }
    }
}
