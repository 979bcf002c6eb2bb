//! Writing rendered files for review: `<out>/<host>/<absolute path on the host>` plus the host's
//! manifest. Re-rendering replaces files atomically and removes the ones the previous manifest
//! listed that are no longer rendered (e.g. after switching etcd.mode), so the directory always
//! shows exactly what the host would receive.

use std::io;
use std::path::{Path, PathBuf};

use super::RenderedFile;
use super::manifest::{self, Manifest};
use crate::fsutil::{Existing, write_atomic};

#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Where `host_path` lands under `<out>/<host>/`.
pub fn local_path(out: &Path, host: &str, host_path: &str) -> PathBuf {
    out.join(host).join(host_path.trim_start_matches('/'))
}

/// Write `files` for `host` under `out`; returns the manifest written.
pub fn write_host(out: &Path, host: &str, files: &[RenderedFile]) -> Result<Manifest, WriteError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { path, source }
    };
    let host_dir = out.join(host);
    let manifest_path = host_dir.join(manifest::FILE_NAME);
    let previous: Option<Manifest> = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|text| serde_yaml::from_str(&text).ok());
    for f in files {
        let path = local_path(out, host, &f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err(dir))?;
        }
        write_atomic(&path, f.content.as_bytes(), f.mode, Existing::Replace).map_err(err(&path))?;
    }
    if let Some(previous) = previous {
        for old in previous.files {
            // Only paths kinit itself renders: the old manifest is a file anyone could edit.
            let known = crate::host_paths::ALL.iter().any(|(_, p)| *p == old.path);
            if known && files.iter().all(|f| f.path != old.path) {
                let path = local_path(out, host, &old.path);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(err(&path)(e)),
                }
            }
        }
    }
    let manifest = manifest::manifest(host, files);
    std::fs::create_dir_all(&host_dir).map_err(err(&host_dir))?;
    write_atomic(
        &manifest_path,
        manifest.to_yaml().as_bytes(),
        0o644,
        Existing::Replace,
    )
    .map_err(err(&manifest_path))?;
    Ok(manifest)
}
