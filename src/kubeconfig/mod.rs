//! The operator's kubeconfig: the cluster's admin credentials (the PKI's `admin.conf`, checked
//! against the config and the CA first) written to a file of their own, or merged into an
//! existing kubeconfig such as `~/.kube/config` next to the entries already there.
//!
//! (`pki::kubeconfig` writes the kubeconfigs the hosts receive; this module reads the admin one
//! back for the operator.)
//!
//! Names in the written kubeconfig, kubeadm's `<user>@<cluster>` scheme with the cluster's name
//! (`metadata.name`): cluster `NAME`, user `kubernetes-admin@NAME`, context
//! `kubernetes-admin@NAME` (`kubernetes-admin` is the admin certificate's CN). The user carries the
//! cluster's name too, so the admins of two clusters do not overwrite each other in one file.
//!
//! Nothing here prints, and no error quotes a kubeconfig's contents (they hold private keys).

pub mod model;

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::PublicKeyData as _;
use serde::Serialize;

use crate::fsutil::{Existing, write_atomic_owned};
use crate::inventory::Inventory;
use crate::pki::{inspect, kubeconfig as pki_kubeconfig};
use model::{Document, Entries, MergeOutcome, Named};

/// The admin kubeconfig in the PKI dir (shared kubeconfigs are stored under their file name).
pub const ADMIN_CONF: &str = "admin.conf";
/// The cluster CA certificate in the PKI dir.
pub const CA_CERT: &str = "ca.crt";
/// Every kubeconfig kinit writes for the operator holds a private key.
pub const MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "{} does not exist: create the cluster's PKI first with `kinit certs generate` (or `kinit up`)",
        path.display()
    )]
    NoPki { path: PathBuf },

    /// The PKI's admin kubeconfig does not match the config or the CA.
    #[error("{}: {problem}; {fix}", path.display())]
    Mismatch {
        path: PathBuf,
        problem: String,
        fix: &'static str,
    },

    #[error("{}: {message}; nothing was changed", path.display())]
    Unreadable { path: PathBuf, message: String },

    #[error("{} already exists; pass --force to overwrite it", .0.display())]
    Exists(PathBuf),

    #[error(
        "{} is being written by another program ({} exists); try again, or remove the lock file if no kubectl is running",
        path.display(),
        lock.display()
    )]
    Locked { path: PathBuf, lock: PathBuf },

    #[error("no kubeconfig to merge into: neither KUBECONFIG nor HOME is set")]
    NoTarget,

    /// Not a regular file (a device, a directory, a dangling link): never replaced.
    #[error(
        "{} is {what}, not a regular file; kinit writes kubeconfigs only to regular files (or \
         links to one), nothing was changed",
        path.display()
    )]
    NotRegular { path: PathBuf, what: &'static str },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KubeconfigError + '_ {
    move |source| KubeconfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The cluster's admin credentials, checked. No `Debug`: it holds the private key.
pub struct AdminKubeconfig {
    pub cluster: String,
    pub user: String,
    pub context: String,
    pub server: String,
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl AdminKubeconfig {
    /// The cluster, user and context entries, with the CA, certificate and key embedded.
    pub fn entries(&self) -> Entries {
        Entries {
            cluster: Named::new(
                &self.cluster,
                "cluster",
                value(&pki_kubeconfig::Cluster {
                    certificate_authority_data: STANDARD.encode(&self.ca_pem),
                    server: self.server.clone(),
                }),
            ),
            user: Named::new(
                &self.user,
                "user",
                value(&pki_kubeconfig::User {
                    client_certificate_data: STANDARD.encode(&self.cert_pem),
                    client_key_data: STANDARD.encode(&self.key_pem),
                }),
            ),
            context: Named::new(
                &self.context,
                "context",
                value(&pki_kubeconfig::Context {
                    cluster: self.cluster.clone(),
                    user: self.user.clone(),
                }),
            ),
        }
    }
}

fn value(fields: &impl Serialize) -> serde_yaml::Value {
    serde_yaml::to_value(fields).expect("kubeconfig fields always serialize")
}

/// Read `<pki>/admin.conf` and check it before anyone uses it: its server is the config's
/// endpoint (`https://VIP:port`), its CA is `<pki>/ca.crt`, its certificate was signed by that CA,
/// is in date and matches its key.
pub fn load_admin(inv: &Inventory, now: SystemTime) -> Result<AdminKubeconfig, KubeconfigError> {
    let path = inv.pki_dir.join(ADMIN_CONF);
    let ca_path = inv.pki_dir.join(CA_CERT);
    let read = |p: &Path| match fs::read_to_string(p) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(KubeconfigError::NoPki {
            path: p.to_path_buf(),
        }),
        Err(e) => Err(io_error(p)(e)),
    };
    let text = read(&path)?;
    let ca_pem = read(&ca_path)?;
    const REGENERATE: &str = "run `kinit certs generate` to bring the PKI in line with the config";
    let mismatch = |problem: String, fix| KubeconfigError::Mismatch {
        path: path.clone(),
        problem,
        fix,
    };
    let embedded = pki_kubeconfig::parse(&text).map_err(|message| KubeconfigError::Unreadable {
        path: path.clone(),
        message,
    })?;
    let endpoint = inv.endpoint.url();
    if embedded.server != endpoint {
        return Err(mismatch(
            format!(
                "its server is {} but the config's controlPlaneEndpoint is {endpoint}",
                embedded.server
            ),
            REGENERATE,
        ));
    }
    if embedded.ca_pem.trim() != ca_pem.trim() {
        return Err(mismatch(
            format!("its CA certificate is not {}", ca_path.display()),
            REGENERATE,
        ));
    }
    let ca =
        inspect::read(ca_pem.as_bytes(), None).map_err(|message| KubeconfigError::Unreadable {
            path: ca_path.clone(),
            message,
        })?;
    let cert = inspect::read(embedded.cert_pem.as_bytes(), Some(&ca.spki_der))
        .map_err(|message| mismatch(format!("its client certificate: {message}"), REGENERATE))?;
    if !cert.signed_by_ca {
        return Err(mismatch(
            format!(
                "its client certificate was not signed by {}",
                ca_path.display()
            ),
            REGENERATE,
        ));
    }
    let key_matches = rcgen::KeyPair::from_pem(&embedded.key_pem)
        .is_ok_and(|k| k.subject_public_key_info() == cert.spki_der);
    if !key_matches {
        return Err(mismatch(
            "its key does not belong to its certificate".into(),
            REGENERATE,
        ));
    }
    let now = time::OffsetDateTime::from(now);
    if cert.not_after <= now {
        return Err(mismatch(
            format!("its certificate expired on {}", cert.not_after.date()),
            "renew it with `kinit certs renew admin.conf`",
        ));
    }
    if cert.not_before > now {
        return Err(mismatch(
            format!(
                "its certificate is not valid before {} (is this machine's clock right?)",
                cert.not_before
            ),
            REGENERATE,
        ));
    }
    let user = format!("{}@{}", cert.common_name, inv.name);
    Ok(AdminKubeconfig {
        cluster: inv.name.clone(),
        context: user.clone(),
        user,
        server: embedded.server,
        ca_pem,
        cert_pem: embedded.cert_pem,
        key_pem: embedded.key_pem,
    })
}

/// Write a kubeconfig holding only the admin entries to `path` (mode 0600, atomically); an
/// existing file is replaced only when `force`, and only a regular file (through a link to one,
/// the link kept): a device such as `/dev/stdout`, a directory or a dangling link never is.
pub fn write_file(
    path: &Path,
    admin: &AdminKubeconfig,
    force: bool,
) -> Result<(), KubeconfigError> {
    let text = model::standalone(&admin.entries()).to_yaml();
    let (file, old) = regular_target(path)?;
    let existing = if force {
        Existing::Replace
    } else {
        Existing::Keep
    };
    write_atomic_owned(
        &file,
        text.as_bytes(),
        MODE,
        existing,
        old.as_ref().and_then(keep_owner),
    )
    .map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => KubeconfigError::Exists(path.to_path_buf()),
        _ => io_error(path)(e),
    })
}

/// Where a kubeconfig at `path` is written: the path itself, or through a symlink the file it
/// points at (so the link stays a link), with that file's metadata when it exists. Refused:
/// anything but a regular file, and a link that points nowhere.
fn regular_target(path: &Path) -> Result<(PathBuf, Option<fs::Metadata>), KubeconfigError> {
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((path.to_path_buf(), None)),
        Err(e) => return Err(io_error(path)(e)),
    };
    let not_regular = |what| KubeconfigError::NotRegular {
        path: path.to_path_buf(),
        what,
    };
    let meta = if link.file_type().is_symlink() {
        match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_regular("a symbolic link to nothing"));
            }
            Err(e) => return Err(io_error(path)(e)),
        }
    } else {
        link.clone()
    };
    let t = meta.file_type();
    if !t.is_file() {
        use std::os::unix::fs::FileTypeExt;
        return Err(not_regular(if t.is_dir() {
            "a directory"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_fifo() {
            "a named pipe"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a special file"
        }));
    }
    let file = if link.file_type().is_symlink() {
        fs::canonicalize(path).map_err(io_error(path))?
    } else {
        path.to_path_buf()
    };
    Ok((file, Some(meta)))
}

/// Root replacing another user's file gives the new one the old one's owner and group (the
/// user keeps a kubeconfig they can read); anyone else writes as themselves.
fn keep_owner(old: &fs::Metadata) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root.then(|| (old.uid(), old.gid()))
}

/// The kubeconfig files kubectl reads, in its order: `$KUBECONFIG`'s entries when it is set
/// (empty ones skipped, each once), otherwise `~/.kube/config`.
pub fn merge_files(kubeconfig_env: Option<&OsStr>, home: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(list) = kubeconfig_env {
        for p in std::env::split_paths(list) {
            if !p.as_os_str().is_empty() && !files.contains(&p) {
                files.push(p);
            }
        }
    }
    if files.is_empty()
        && let Some(h) = home.filter(|h| !h.as_os_str().is_empty())
    {
        files.push(h.join(".kube").join("config"));
    }
    files
}

/// The kubeconfig `--merge` writes to, as kubectl picks the file it writes new entries to: the
/// first file of the list ([`merge_files`]) that exists, else the first.
pub fn merge_target(kubeconfig_env: Option<&OsStr>, home: Option<&Path>) -> Option<PathBuf> {
    pick_target(&merge_files(kubeconfig_env, home)).cloned()
}

fn pick_target(files: &[PathBuf]) -> Option<&PathBuf> {
    files
        .iter()
        .find(|p| fs::metadata(p).is_ok())
        .or_else(|| files.first())
}

/// What `merge_into` did.
#[derive(Debug, Clone)]
pub struct MergeReport {
    /// The file written (a symlink's target).
    pub file: PathBuf,
    pub outcome: MergeOutcome,
    /// The file did not exist before.
    pub created: bool,
    /// The copy of the old file, when it was changed.
    pub backup: Option<PathBuf>,
}

/// Merge the admin entries into the kubeconfig at `path` alone (see [`merge_into_list`]).
pub fn merge_into(
    path: &Path,
    admin: &AdminKubeconfig,
    now: SystemTime,
) -> Result<MergeReport, KubeconfigError> {
    merge_into_list(std::slice::from_ref(&path.to_path_buf()), admin, now)
}

/// Merge the admin entries as kubectl would with `files` as its `KUBECONFIG` list: into the
/// first file that exists (else the first), entries of the same names replaced, every other
/// entry left as it was, current-context set only when no file of the list sets one. A changed
/// file is first copied to `<file>.kinit-backup-<UTC time>` (0600), then replaced atomically
/// (0600; run as root on another user's file, with that user's owner and group). An unchanged
/// one is not written at all. Only a regular file (or a link to one) is written. Holds
/// kubectl's locks meanwhile: `<path>.lock` of every file of the list, under the names kubectl
/// uses, and of a link's target too.
pub fn merge_into_list(
    files: &[PathBuf],
    admin: &AdminKubeconfig,
    now: SystemTime,
) -> Result<MergeReport, KubeconfigError> {
    let path = pick_target(files).ok_or(KubeconfigError::NoTarget)?;
    // Through a symlink to the file it points at, so the link stays a link.
    let (file, meta) = regular_target(path)?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
    }
    // kubectl locks every file of its list, in sorted order; the target under both names.
    let mut lock_names: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    if file != *path {
        lock_names.push(&file);
    }
    lock_names.sort();
    lock_names.dedup();
    let mut _locks = Vec::new();
    for name in lock_names {
        if let Some(lock) = Lock::take(name, name == path.as_path() || name == file)? {
            _locks.push(lock);
        }
    }
    let old = match fs::read(&file) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&file)(e)),
    };
    let mut doc = match &old {
        None => Document::default(),
        Some(bytes) => parse(&file, bytes)?,
    };
    // The current-context kubectl would use from the other files of the list.
    let mut elsewhere = None;
    for other in files.iter().filter(|f| *f != path) {
        let bytes = match fs::read(other) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(other)(e)),
        };
        if let Some(c) = parse(other, &bytes)?
            .current_context
            .filter(|c| !c.is_empty())
        {
            elsewhere = Some(c);
            break;
        }
    }
    let outcome = model::merge_beside(&mut doc, &admin.entries(), elsewhere.as_deref());
    let mut report = MergeReport {
        file: file.clone(),
        outcome,
        created: old.is_none(),
        backup: None,
    };
    if !report.outcome.changed {
        return Ok(report);
    }
    let owner = meta.as_ref().and_then(keep_owner);
    if let Some(old) = &old {
        report.backup = Some(backup(&file, old, now, owner)?);
    }
    write_atomic_owned(
        &file,
        doc.to_yaml().as_bytes(),
        MODE,
        Existing::Replace,
        owner,
    )
    .map_err(io_error(&file))?;
    Ok(report)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Document, KubeconfigError> {
    let text = std::str::from_utf8(bytes).map_err(|_| KubeconfigError::Unreadable {
        path: path.to_path_buf(),
        message: "not UTF-8 text".into(),
    })?;
    Document::parse(text).map_err(|e| KubeconfigError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `<file>.kinit-backup-<UTC time>`, or with `-2`, `-3`, ... when that name is taken.
fn backup(
    file: &Path,
    contents: &[u8],
    now: SystemTime,
    owner: Option<(u32, u32)>,
) -> Result<PathBuf, KubeconfigError> {
    let stamp = crate::lifecycle::snapshot::utc_stamp(now);
    let name = file
        .file_name()
        .unwrap_or(OsStr::new("config"))
        .to_string_lossy();
    for n in 1..1000 {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let path = file.with_file_name(format!("{name}.kinit-backup-{stamp}{suffix}"));
        match write_atomic_owned(&path, contents, MODE, Existing::Keep, owner) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    Err(io_error(file)(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many backups with the same time stamp",
    )))
}

/// kubectl's (client-go's) lock on a kubeconfig it writes: `<file>.lock`, created exclusively
/// and removed afterwards.
struct Lock(PathBuf);

impl Lock {
    /// `None` when the lock's directory does not exist and `needed` is false (a file of the
    /// list that kinit does not write, in a directory nobody made: nothing to lock against).
    fn take(file: &Path, needed: bool) -> Result<Option<Lock>, KubeconfigError> {
        let mut name = file.as_os_str().to_os_string();
        name.push(".lock");
        let lock = PathBuf::from(name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&lock)
        {
            Ok(_) => Ok(Some(Lock(lock))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(KubeconfigError::Locked {
                path: file.to_path_buf(),
                lock,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !needed => Ok(None),
            Err(e) => Err(io_error(&lock)(e)),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests;
