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

use crate::fsutil::{Existing, write_atomic};
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
/// existing file is replaced only when `force`.
pub fn write_file(
    path: &Path,
    admin: &AdminKubeconfig,
    force: bool,
) -> Result<(), KubeconfigError> {
    let text = model::standalone(&admin.entries()).to_yaml();
    let existing = if force {
        Existing::Replace
    } else {
        Existing::Keep
    };
    write_atomic(path, text.as_bytes(), MODE, existing).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => KubeconfigError::Exists(path.to_path_buf()),
        _ => io_error(path)(e),
    })
}

/// The kubeconfig `--merge` writes to: `$KUBECONFIG`'s first entry when set (as kubectl picks
/// the file it writes new entries to), otherwise `~/.kube/config`.
pub fn merge_target(kubeconfig_env: Option<&OsStr>, home: Option<&Path>) -> Option<PathBuf> {
    if let Some(list) = kubeconfig_env
        && let Some(first) = std::env::split_paths(list).find(|p| !p.as_os_str().is_empty())
    {
        return Some(first);
    }
    home.filter(|h| !h.as_os_str().is_empty())
        .map(|h| h.join(".kube").join("config"))
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

/// Merge the admin entries into the kubeconfig at `path`: entries of the same names replaced,
/// every other entry left as it was, current-context set only when the file had none. A changed
/// file is first copied to `<file>.kinit-backup-<UTC time>` (0600), then replaced atomically
/// (0600). An unchanged one is not written at all. Holds kubectl's lock (`<file>.lock`) meanwhile.
pub fn merge_into(
    path: &Path,
    admin: &AdminKubeconfig,
    now: SystemTime,
) -> Result<MergeReport, KubeconfigError> {
    // Through a symlink to the file it points at, so the link stays a link.
    let file = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(io_error(path)(e)),
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
    }
    let _lock = Lock::take(&file)?;
    let old = match fs::read(&file) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&file)(e)),
    };
    let mut doc = match &old {
        None => Document::default(),
        Some(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|_| KubeconfigError::Unreadable {
                path: file.clone(),
                message: "not UTF-8 text".into(),
            })?;
            Document::parse(text).map_err(|e| KubeconfigError::Unreadable {
                path: file.clone(),
                message: e.to_string(),
            })?
        }
    };
    let outcome = model::merge(&mut doc, &admin.entries());
    let mut report = MergeReport {
        file: file.clone(),
        outcome,
        created: old.is_none(),
        backup: None,
    };
    if !report.outcome.changed {
        return Ok(report);
    }
    if let Some(old) = &old {
        report.backup = Some(backup(&file, old, now)?);
    }
    write_atomic(&file, doc.to_yaml().as_bytes(), MODE, Existing::Replace)
        .map_err(io_error(&file))?;
    Ok(report)
}

/// `<file>.kinit-backup-<UTC time>`, or with `-2`, `-3`, ... when that name is taken.
fn backup(file: &Path, contents: &[u8], now: SystemTime) -> Result<PathBuf, KubeconfigError> {
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
        match write_atomic(&path, contents, MODE, Existing::Keep) {
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
    fn take(file: &Path) -> Result<Lock, KubeconfigError> {
        let mut name = file.as_os_str().to_os_string();
        name.push(".lock");
        let lock = PathBuf::from(name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&lock)
        {
            Ok(_) => Ok(Lock(lock)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(KubeconfigError::Locked {
                path: file.to_path_buf(),
                lock,
            }),
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
mod tests {
    use super::*;

    fn admin() -> AdminKubeconfig {
        AdminKubeconfig {
            cluster: "demo".into(),
            user: "kubernetes-admin@demo".into(),
            context: "kubernetes-admin@demo".into(),
            server: "https://192.168.9.100:8443".into(),
            ca_pem: "CA".into(),
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        }
    }

    #[test]
    fn merging_through_a_symlink_writes_its_target_and_respects_kubectls_lock() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-config");
        fs::write(&real, "current-context: other\n").unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);

        let lock = dir.path().join("real-config.lock");
        fs::write(&lock, "").unwrap();
        let err = merge_into(&link, &admin(), now).err().unwrap();
        assert!(matches!(err, KubeconfigError::Locked { .. }), "{err}");
        assert!(lock.exists(), "someone else's lock is left alone");
        fs::remove_file(&lock).unwrap();

        let report = merge_into(&link, &admin(), now).unwrap();
        assert_eq!(report.file, fs::canonicalize(&real).unwrap());
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(!report.outcome.current_context_set);
        let doc = Document::parse(&fs::read_to_string(&real).unwrap()).unwrap();
        assert_eq!(doc.current_context.as_deref(), Some("other"));
        assert_eq!(doc.clusters.len(), 1);
        let backup = report.backup.unwrap();
        assert_eq!(
            backup.file_name().unwrap(),
            "real-config.kinit-backup-20231114T221320Z"
        );
        assert_eq!(
            fs::read_to_string(&backup).unwrap(),
            "current-context: other\n"
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&real), mode(&backup)), (0o600, 0o600));
        assert!(!lock.exists());

        // A second change within the same second gets a backup of its own.
        let mut moved = admin();
        moved.server = "https://192.168.9.200:8443".into();
        let again = merge_into(&link, &moved, now).unwrap();
        assert_eq!(
            again.backup.unwrap().file_name().unwrap(),
            "real-config.kinit-backup-20231114T221320Z-2"
        );
    }

    #[test]
    fn the_merge_target_is_kubeconfigs_first_file_else_home() {
        let home = Path::new("/home/op");
        assert_eq!(
            merge_target(None, Some(home)),
            Some(PathBuf::from("/home/op/.kube/config"))
        );
        assert_eq!(
            merge_target(Some(OsStr::new("")), Some(home)),
            Some(PathBuf::from("/home/op/.kube/config"))
        );
        assert_eq!(
            merge_target(Some(OsStr::new("/a/one:/b/two")), Some(home)),
            Some(PathBuf::from("/a/one"))
        );
        assert_eq!(
            merge_target(Some(OsStr::new(":/b/two")), None),
            Some(PathBuf::from("/b/two"))
        );
        assert_eq!(merge_target(None, None), None);
    }
}
