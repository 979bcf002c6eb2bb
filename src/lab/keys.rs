//! SSH keys the lab makes with ssh-keygen: the lab's own client key (kinit logs in with it) and
//! each node's host key, generated here before the node first boots so the lab's known_hosts
//! is exact without ever accepting an unseen key.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::LabError;
use super::host_tools::run;
use crate::fsutil::{Existing, write_atomic};

/// Generate an ed25519 key pair at `path` (+ `.pub`) unless it exists; return the public line.
pub fn ensure_key(path: &Path, comment: &str) -> Result<String, LabError> {
    let public = pub_path(path);
    if !(path.exists() && public.exists()) {
        generate(path, comment)?;
    }
    read_public(&public)
}

/// Generate an ed25519 key pair at `path` (replacing one there), via temporary names so a crash
/// leaves either no key or a whole one. The private key is 0600.
pub fn generate(path: &Path, comment: &str) -> Result<(), LabError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(pub_path(&tmp));
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&tmp),
        "generating an ssh key",
    )?;
    std::fs::rename(pub_path(&tmp), pub_path(path))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| LabError::io(path, "moving the new key into place", e))
}

pub fn pub_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

pub fn read_public(public: &Path) -> Result<String, LabError> {
    let text = std::fs::read_to_string(public).map_err(|e| LabError::io(public, "reading", e))?;
    Ok(text.trim().to_string())
}

/// known_hosts lines: each node's address with its host key type and key (no comment).
pub fn known_hosts(entries: &[(Ipv4Addr, String)]) -> String {
    let mut out =
        String::from("# kinit lab: node host keys, generated before each node first booted\n");
    for (addr, public) in entries {
        let key: Vec<&str> = public.split_whitespace().take(2).collect();
        out.push_str(&format!("{addr} {}\n", key.join(" ")));
    }
    out
}

pub fn write_known_hosts(path: &Path, entries: &[(Ipv4Addr, String)]) -> Result<(), LabError> {
    write_atomic(
        path,
        known_hosts(entries).as_bytes(),
        0o644,
        Existing::Replace,
    )
    .map_err(|e| LabError::io(path, "writing", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_drop_the_comment() {
        let text = known_hosts(&[(
            Ipv4Addr::new(10, 213, 0, 11),
            "ssh-ed25519 AAAAC3Nza root@cp1".to_string(),
        )]);
        assert!(
            text.ends_with("\n10.213.0.11 ssh-ed25519 AAAAC3Nza\n"),
            "{text}"
        );
    }

    #[test]
    fn generated_private_key_is_0600_and_kept_on_the_second_call() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let first = ensure_key(&key, "kinit-test").unwrap();
        assert!(first.starts_with("ssh-ed25519 "), "{first}");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(ensure_key(&key, "kinit-test").unwrap(), first);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
