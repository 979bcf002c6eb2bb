//! known_hosts, read and written the way OpenSSH does, so `ssh` and kinit agree about every host.
//!
//! russh's own helper knows neither wildcards nor markers and treats a key of another type as
//! "unknown". This matcher handles plain, wildcard, negated and hashed (`|1|`) host patterns,
//! `@revoked` lines, and reports a changed key with the file and line that holds the old one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aws_lc_rs::hmac;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use russh::keys::{Algorithm, HashAlg, PublicKey};

use crate::fsutil::{Existing, write_atomic};

/// What a known_hosts file says about one host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// A line names this host with exactly this key.
    Known,
    /// No line names this host with a key of this type. `other_algorithms` lists the key types
    /// that are known for it.
    Unknown { other_algorithms: Vec<String> },
    /// A line names this host with a different key of the same type.
    Changed { line: usize },
    /// A `@revoked` line lists this key.
    Revoked { line: usize },
}

/// One known_hosts file. Learning appends under a lock so parallel connections do not race.
#[derive(Debug)]
pub struct KnownHostsFile {
    path: PathBuf,
    write_lock: Mutex<()>,
}

impl KnownHostsFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KnownHostsFile {
            path: path.into(),
            write_lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> io::Result<String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        }
    }

    /// Look up `key` for `name` (`addr` or `[addr]:port`, see `HostTarget::known_hosts_name`).
    pub fn check(&self, name: &str, key: &PublicKey) -> io::Result<HostKeyStatus> {
        Ok(check_text(&self.read()?, name, key))
    }

    /// Key types this file knows for `name`, in file order: offered first in the handshake so the
    /// server presents a key that can actually be checked.
    pub fn algorithms_for(&self, name: &str) -> Vec<Algorithm> {
        let text = self.read().unwrap_or_default();
        let mut algorithms = Vec::new();
        for (_, entry) in entries(&text) {
            if entry.marker().is_none() && host_matches(entry.host_patterns(), name) {
                let algorithm = entry.public_key().algorithm();
                if !algorithms.contains(&algorithm) {
                    algorithms.push(algorithm);
                }
            }
        }
        algorithms
    }

    /// Append `name key` in OpenSSH's plain format (`[addr]:port ssh-ed25519 AAAA...`).
    ///
    /// Other kinit processes may learn into the same file at once: the read, the change and the
    /// rename happen under `flock` on the file's directory, so no one's line is lost. A symbolic
    /// link (a known_hosts kept elsewhere, in a dotfiles repository) stays a link: the file it
    /// points to is the one rewritten.
    pub fn learn(&self, name: &str, key: &PublicKey) -> io::Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.write_path()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let _locked = DirLock::take(&path)?;
        let mut text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        // Another connection or process may have learned it meanwhile.
        if check_text(&text, name, key) == HostKeyStatus::Known {
            return Ok(());
        }
        let encoded = key
            .to_openssh()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{name} {}\n", encoded.trim_end()));
        let mode = std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(0o644);
        write_atomic(&path, text.as_bytes(), mode, Existing::Replace)
    }

    /// The file to rewrite: the configured path, or the file its symbolic link(s) lead to.
    fn write_path(&self) -> io::Result<PathBuf> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(&self.path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{} is a symbolic link whose target cannot be used ({e}); \
                             kinit does not replace a link with a file",
                        self.path.display()
                    ),
                )
            }),
            _ => Ok(self.path.clone()),
        }
    }
}

/// `flock` on the directory holding a file, released when dropped. The directory rather than the
/// file: the file is replaced by a rename, and a lock on the old inode would not exclude a writer
/// that opened the new one; a lock file beside it would be litter in ~/.ssh.
struct DirLock(std::fs::File);

impl DirLock {
    fn take(file: &Path) -> io::Result<DirLock> {
        use std::os::fd::AsRawFd;
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let handle = std::fs::File::open(dir)?;
        loop {
            // SAFETY: `handle` is an open descriptor for the duration of the call.
            let rc = unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(DirLock(handle));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is still open; closing it would release the lock anyway.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Parsed entries with their 1-based line numbers; lines OpenSSH would skip (comments, unknown key
/// types) are skipped here too.
fn entries(text: &str) -> impl Iterator<Item = (usize, Entry)> + '_ {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        line.parse::<Entry>().ok().map(|e| (i + 1, e))
    })
}

fn check_text(text: &str, name: &str, key: &PublicKey) -> HostKeyStatus {
    let mut found = false;
    let mut changed = None;
    let mut others = Vec::new();
    for (line, entry) in entries(text) {
        let same_key = entry.public_key().key_data() == key.key_data();
        match entry.marker() {
            // A revoked key is refused for every host, whatever the pattern.
            Some(Marker::Revoked) if same_key => return HostKeyStatus::Revoked { line },
            Some(_) => continue,
            None => {}
        }
        if !host_matches(entry.host_patterns(), name) {
            continue;
        }
        if same_key {
            found = true;
        } else if entry.public_key().algorithm() == key.algorithm() {
            changed.get_or_insert(line);
        } else {
            let alg = entry.public_key().algorithm().as_str().to_string();
            if !others.contains(&alg) {
                others.push(alg);
            }
        }
    }
    match (found, changed) {
        (true, _) => HostKeyStatus::Known,
        (false, Some(line)) => HostKeyStatus::Changed { line },
        (false, None) => HostKeyStatus::Unknown {
            other_algorithms: others,
        },
    }
}

/// OpenSSH's `match_hostname`: any negated pattern that matches excludes the host; otherwise one
/// positive match is enough. Hashed names are HMAC-SHA1(salt, name).
fn host_matches(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => {
            let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
            hmac::verify(&key, name.as_bytes(), hash).is_ok()
        }
        HostPatterns::Patterns(list) => pattern_list_matches(list, &name.to_ascii_lowercase()),
    }
}

/// `*` and `?` wildcards, as in ssh_config and known_hosts patterns.
/// OpenSSH pattern-list semantics (known_hosts hosts, ssh_config `Host`): `name` (lowercase)
/// matches when some pattern matches it and no negated (`!`) pattern does.
pub(crate) fn pattern_list_matches(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        if glob(pattern.to_ascii_lowercase().as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

pub(crate) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHaX92ZSI47FisMrw67EI8FdqkrIvemdQcoicaZlX/om";
    const ED_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOXk18SdDUNkzl1RLl57HIFc41vlnTpFqBMRePOxYZ5h";
    /// `ssh-keygen -H` of `host1 ED_A`.
    const HASHED_HOST1: &str = "|1|Lz9x/opKqngsRF1yZhQpin5y70U=|/PbTAAzBDEkmQB9qaFxVAshHt6c=";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn plain_wildcard_and_port_patterns() {
        let text = format!("# comment\n10.0.0.*,!10.0.0.9 {ED_A}\n[127.0.0.1]:2222 {ED_A}\n");
        assert_eq!(
            check_text(&text, "10.0.0.5", &key(ED_A)),
            HostKeyStatus::Known
        );
        assert!(matches!(
            check_text(&text, "10.0.0.9", &key(ED_A)),
            HostKeyStatus::Unknown { .. }
        ));
        assert_eq!(
            check_text(&text, "[127.0.0.1]:2222", &key(ED_A)),
            HostKeyStatus::Known
        );
        assert!(matches!(
            check_text(&text, "127.0.0.1", &key(ED_A)),
            HostKeyStatus::Unknown { .. }
        ));
    }

    #[test]
    fn changed_key_names_its_line() {
        let text = format!("\n\nhost1 {ED_A}\n");
        assert_eq!(
            check_text(&text, "host1", &key(ED_B)),
            HostKeyStatus::Changed { line: 3 }
        );
    }

    #[test]
    fn revoked_wins() {
        let text = format!("host1 {ED_A}\n@revoked * {ED_A}\n");
        assert_eq!(
            check_text(&text, "host1", &key(ED_A)),
            HostKeyStatus::Revoked { line: 2 }
        );
    }

    #[test]
    fn hashed_entry_matches() {
        let line = format!("{HASHED_HOST1} {ED_A}\n");
        assert_eq!(check_text(&line, "host1", &key(ED_A)), HostKeyStatus::Known);
        assert_eq!(
            check_text(&line, "host1", &key(ED_B)),
            HostKeyStatus::Changed { line: 1 }
        );
        assert!(matches!(
            check_text(&line, "host2", &key(ED_A)),
            HostKeyStatus::Unknown { .. }
        ));
    }

    /// Learners that do not share a `KnownHostsFile` (as two kinit processes do not): each
    /// read-change-rename happens alone, so every line lands.
    #[test]
    fn parallel_learners_lose_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let file = KnownHostsFile::new(&path);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        file.learn(&format!("[10.0.{t}.{i}]:22"), &key(ED_A))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 200, "{text}");
        let file = KnownHostsFile::new(&path);
        assert_eq!(
            file.check("[10.0.7.24]:22", &key(ED_A)).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A known_hosts that is a link stays one: the file it points to learns the key. A link to
    /// nowhere is refused, naming the link, rather than replaced by a file.
    #[test]
    fn a_symlinked_file_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/known_hosts");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, format!("old {ED_B}\n")).unwrap();
        let link = dir.path().join("known_hosts");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        KnownHostsFile::new(&link).learn("new", &key(ED_A)).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let text = std::fs::read_to_string(&real).unwrap();
        assert!(
            text.starts_with("old ") && text.contains("\nnew ssh-ed25519 "),
            "{text}"
        );

        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere/known_hosts"), &dangling).unwrap();
        let err = KnownHostsFile::new(&dangling)
            .learn("new", &key(ED_A))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dangling") && err.contains("symbolic link"),
            "{err}"
        );
        assert!(
            std::fs::symlink_metadata(&dangling)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
