//! `kinit etcd snapshot save`: `etcdctl snapshot save` on a healthy member (over mTLS with the
//! host's healthcheck client certificate), streamed here over the same SSH channel into a 0600
//! temporary file, checked (etcd's integrity hash; the sha256 the host computed), then renamed
//! into place. Memory stays flat whatever the size: nothing is held whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::{HOST_WORK_DIR, SnapshotError, stderr_tail};
use crate::engine::event::Observer;
use crate::engine::phase_runner::{self, DryRun, RunPhase};
use crate::etcd::snapshot_file::{self, Integrity, SnapshotStatus};
use crate::etcd::{self, ClientTls};
use crate::host_paths;
use crate::inventory::Inventory;
use crate::ssh::quote::join;
use crate::ssh::{ExecOptions, HostTarget, Pool};

/// A snapshot that arrived and checked out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedSnapshot {
    pub path: PathBuf,
    /// The member it was taken from.
    pub member: String,
    pub status: SnapshotStatus,
}

/// Takes the snapshot into a private directory, prints the host's sha256 on stderr, then the
/// file on stdout; the directory goes whatever happens.
const SAVE: &str = r#"set -eu
ep=$1; ca=$2; cert=$3; key=$4; work=$5
command -v etcdctl >/dev/null 2>&1 || { echo "no etcdctl on this host (PATH=$PATH): put etcdctl in the bundle or install etcd's client" >&2; exit 4; }
mkdir -p -m 0700 -- "$work"
d=$(mktemp -d -- "$work/save.XXXXXX")
trap 'rm -rf -- "$d"' EXIT
trap 'exit 129' HUP INT TERM PIPE
ETCDCTL_API=3 etcdctl --endpoints="$ep" --cacert="$ca" --cert="$cert" --key="$key" \
  --dial-timeout=5s --command-timeout=10m snapshot save "$d/snapshot.db" >&2
chmod 0600 "$d/snapshot.db"
echo "kinit-sha256 $(sha256sum < "$d/snapshot.db" | cut -d ' ' -f 1)" >&2
cat -- "$d/snapshot.db""#;

/// The first etcd host whose member says it is healthy, with its client URL.
async fn healthy_member(
    inv: &Inventory,
    tls: &ClientTls,
    timeout: Duration,
) -> Result<(String, String), SnapshotError> {
    let members = inv.etcd_members();
    if members.is_empty() {
        return Err(SnapshotError::NoEtcdHosts);
    }
    let mut why = Vec::new();
    for m in &members {
        let ep = m.client_url();
        match etcd::health(tls, &ep, timeout).await {
            Ok(true) => return Ok((m.name.clone(), ep)),
            Ok(false) => why.push(format!("{}: unhealthy", m.name)),
            Err(e) => why.push(format!("{}: {e}", m.name)),
        }
    }
    Err(SnapshotError::NoHealthyMember(why.join("; ")))
}

/// What a save works with.
pub struct SaveRequest<'a> {
    pub inv: &'a Inventory,
    pub tls: &'a ClientTls,
    pub pool: Arc<Pool>,
    pub targets: &'a [(String, HostTarget)],
    /// Where the snapshot lands (0600, atomically, never over another file: see [`place`]).
    /// Its directory is made 0700 when missing.
    pub output: &'a Path,
    /// `output` is a name kinit chose, and a taken one gives way to `-2`, `-3`, ...
    pub numbered: bool,
    /// How long each member's health check may take.
    pub timeout: Duration,
    /// Ctrl-C or SIGTERM: stops the stream, and the partial file goes.
    pub cancel: &'a CancellationToken,
}

/// What a save would do (`--dry-run`): the member it would stream from, and where the file
/// would go.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavePlan {
    pub member: String,
    pub path: PathBuf,
}

/// Take a snapshot through the engine's phase loop (its events to `observer`): a healthy
/// member found, the snapshot streamed here, checked and placed.
pub async fn save(
    request: SaveRequest<'_>,
    observer: &dyn Observer,
) -> Result<SavedSnapshot, SnapshotError> {
    let run = run_save(request, false, observer).await?;
    Ok(run.saved.expect("the place phase ran (never skipped)"))
}

/// What [`save`] would do, through the same phases: the healthy member is found (asking
/// etcd changes nothing), the others say what they would do. Nothing is written here or on
/// any host.
pub async fn plan(
    request: SaveRequest<'_>,
    observer: &dyn Observer,
) -> Result<SavePlan, SnapshotError> {
    let run = run_save(request, true, observer).await?;
    Ok(SavePlan {
        member: run.member().0.clone(),
        path: run.request.output.to_path_buf(),
    })
}

async fn run_save<'a>(
    request: SaveRequest<'a>,
    dry_run: bool,
    observer: &dyn Observer,
) -> Result<SaveRun<'a>, SnapshotError> {
    let cancel = request.cancel;
    let mut run = SaveRun {
        request,
        member: None,
        partial: None,
        remote_sha: None,
        saved: None,
    };
    phase_runner::run_phases(&mut run, &SavePhase::ALL, dry_run, observer, cancel).await?;
    Ok(run)
}

/// A save's phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SavePhase {
    Member,
    Fetch,
    Place,
}

impl SavePhase {
    const ALL: [SavePhase; 3] = [SavePhase::Member, SavePhase::Fetch, SavePhase::Place];
}

/// What a save's phases share.
struct SaveRun<'a> {
    request: SaveRequest<'a>,
    /// The healthy member, and its client URL.
    member: Option<(String, String)>,
    /// The file the snapshot streams into, until it is placed.
    partial: Option<PathBuf>,
    /// The sha256 the host computed.
    remote_sha: Option<String>,
    saved: Option<SavedSnapshot>,
}

impl SaveRun<'_> {
    fn member(&self) -> &(String, String) {
        self.member.as_ref().expect("the member phase ran first")
    }

    /// The output's directory (made 0700 when missing), and the partial file's path in it.
    fn partial_path(&self) -> Result<(PathBuf, PathBuf), SnapshotError> {
        let output = self.request.output;
        let dir = match output.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| SnapshotError::Local {
                    path: output.to_path_buf(),
                    source,
                })?;
        }
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snapshot.db".into());
        let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
        Ok((dir, partial))
    }

    /// The partial file checked (etcd's integrity hash, the host's sha256) and placed.
    fn place(&mut self) -> Result<(), SnapshotError> {
        let (dir, _) = self.partial_path()?;
        let partial = self.partial.clone().expect("the fetch phase ran first");
        let member = self.member().0.clone();
        let status = snapshot_file::inspect(&partial)?;
        if status.integrity != Integrity::Verified {
            return Err(SnapshotError::NoIntegrityHash { path: partial });
        }
        let remote = self.remote_sha.clone().unwrap_or_default();
        if status.sha256 != remote {
            return Err(SnapshotError::TransferMismatch {
                host: member,
                local: status.sha256.clone(),
                remote,
            });
        }
        let path = place(&partial, self.request.output, self.request.numbered)?;
        // Placed: nothing partial is left to remove.
        self.partial = None;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        self.saved = Some(SavedSnapshot {
            path,
            member,
            status,
        });
        Ok(())
    }
}

impl RunPhase<SaveRun<'_>> for SavePhase {
    type Error = SnapshotError;

    fn name(&self) -> &str {
        match self {
            SavePhase::Member => "member",
            SavePhase::Fetch => "fetch",
            SavePhase::Place => "place",
        }
    }

    fn title(&self) -> &str {
        match self {
            SavePhase::Member => "The first etcd member that says it is healthy",
            SavePhase::Fetch => {
                "etcdctl snapshot save on the member, streamed here into a 0600 partial file"
            }
            SavePhase::Place => {
                "Check etcd's integrity hash and the host's sha256, then place the file (never \
                 over another)"
            }
        }
    }

    fn hosts(&self, run: &SaveRun<'_>) -> Vec<String> {
        match (self, &run.member) {
            (SavePhase::Fetch, Some((member, _))) => vec![member.clone()],
            _ => Vec::new(),
        }
    }

    fn skipped(&self, _: &SaveRun<'_>) -> Option<String> {
        None
    }

    fn dry_run(&self, run: &SaveRun<'_>) -> DryRun {
        match self {
            SavePhase::Member => DryRun::Runs,
            SavePhase::Fetch => DryRun::Says(vec![format!(
                "{}: would run etcdctl snapshot save and stream the snapshot here",
                run.member().0
            )]),
            SavePhase::Place => DryRun::Says(vec![format!(
                "would check etcd's integrity hash and the host's sha256, then write {} (0600{})",
                run.request.output.display(),
                if run.request.numbered {
                    "; taken, the next free number"
                } else {
                    ""
                }
            )]),
        }
    }

    async fn run(&self, run: &mut SaveRun<'_>) -> Result<(), SnapshotError> {
        let r = &run.request;
        match self {
            SavePhase::Member => {
                run.member = Some(healthy_member(r.inv, r.tls, r.timeout).await?);
            }
            SavePhase::Fetch => {
                let (member, endpoint) = run.member().clone();
                let target = r
                    .targets
                    .iter()
                    .find(|(n, _)| *n == member)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| SnapshotError::host(&member, "connect", "no SSH target"))?;
                let (_, partial) = run.partial_path()?;
                run.partial = Some(partial.clone());
                let fetched = fetch(&r.pool, &target, &member, &endpoint, &partial, r.cancel);
                run.remote_sha = Some(fetched.await?);
            }
            SavePhase::Place => run.place()?,
        }
        Ok(())
    }

    /// A save that failed (or was interrupted) once the stream began leaves no partial file.
    async fn undo(&self, run: &mut SaveRun<'_>) {
        if let (SavePhase::Fetch, Some(partial)) = (self, run.partial.take()) {
            let _ = std::fs::remove_file(partial);
        }
    }
}

use std::os::unix::fs::DirBuilderExt;

/// Move the checked snapshot `partial` to `output` without ever replacing a file there (two
/// saves within one second name the same file): a no-replace rename. A name that is taken is
/// refused, or with `numbered` the next free one of `NAME-2.db`, `NAME-3.db`, ... is used. The
/// path it landed at.
pub fn place(partial: &Path, output: &Path, numbered: bool) -> Result<PathBuf, SnapshotError> {
    let tries = if numbered { 100 } else { 1 };
    for n in 1..=tries {
        let path = if n == 1 {
            output.to_path_buf()
        } else {
            numbered_name(output, n)
        };
        match crate::fsutil::rename_noreplace(partial, &path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(SnapshotError::Local { path, source }),
        }
    }
    Err(SnapshotError::Exists {
        path: output.to_path_buf(),
    })
}

/// `x/demo-20261203T224000Z.db`, 2 -> `x/demo-20261203T224000Z-2.db`.
fn numbered_name(output: &Path, n: u32) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match output.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    output.with_file_name(name)
}

/// Stream the snapshot from `member` into `partial` (created 0600); the host's sha256 of it.
async fn fetch(
    pool: &Pool,
    target: &HostTarget,
    member: &str,
    endpoint: &str,
    partial: &Path,
    cancel: &CancellationToken,
) -> Result<String, SnapshotError> {
    let local = |source| SnapshotError::Local {
        path: partial.to_path_buf(),
        source,
    };
    let session = pool.get(target).await?;
    let command = join([
        "sh",
        "-c",
        SAVE,
        "kinit",
        endpoint,
        host_paths::ETCD_CA_CRT,
        host_paths::ETCD_HEALTHCHECK_CLIENT_CRT,
        host_paths::ETCD_HEALTHCHECK_CLIENT_KEY,
        HOST_WORK_DIR,
    ])?;
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .await
        .map_err(local)?;
    let mut sink = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let opts = ExecOptions {
        sudo: true,
        timeout: Some(Duration::from_secs(3600)),
        cancel: Some(cancel.clone()),
    };
    let out = session.exec_to(&command, &opts, &mut sink).await?;
    sink.flush().await.map_err(local)?;
    sink.get_mut().sync_all().await.map_err(local)?;
    let stderr = out.stderr_text();
    if !out.success() {
        return Err(SnapshotError::host(
            member,
            "etcdctl snapshot save",
            format!("{}: {}", out.status, stderr_tail(&stderr)),
        ));
    }
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("kinit-sha256 "))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| {
            SnapshotError::host(member, "etcdctl snapshot save", "no sha256 from the host")
        })
}

/// `<dir>/backups/<cluster>-<stamp>.db`: the default place, next to cluster.yaml.
pub fn default_path(config_dir: &Path, cluster: &str, stamp: &str) -> PathBuf {
    config_dir
        .join("backups")
        .join(format!("{cluster}-{stamp}.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two saves in the same second: the second never replaces the first.
    #[test]
    fn a_second_save_of_the_same_name_never_overwrites_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("demo-20261203T224000Z.db");
        let partial = |n: &str| {
            let p = dir.path().join(format!(".partial-{n}"));
            std::fs::write(&p, n).unwrap();
            p
        };
        assert_eq!(place(&partial("one"), &output, false).unwrap(), output);
        // A name the operator chose: refused, the first kept.
        let two = partial("two");
        let err = place(&two, &output, false).unwrap_err();
        assert!(matches!(err, SnapshotError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "one");
        // kinit's own name: the next free one.
        let second = place(&two, &output, true).unwrap();
        assert_eq!(second, dir.path().join("demo-20261203T224000Z-2.db"));
        let third = place(&partial("three"), &output, true).unwrap();
        assert_eq!(third, dir.path().join("demo-20261203T224000Z-3.db"));
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "two");
    }

    /// Many savers racing for one name: each lands somewhere of its own.
    #[test]
    fn racing_saves_each_keep_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("race.db");
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (dir, output) = (dir.path().to_path_buf(), output.clone());
                std::thread::spawn(move || {
                    let p = dir.join(format!(".partial-{i}"));
                    std::fs::write(&p, i.to_string()).unwrap();
                    place(&p, &output, true).unwrap()
                })
            })
            .collect();
        let mut landed: Vec<PathBuf> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        landed.sort();
        landed.dedup();
        assert_eq!(landed.len(), 8);
        let mut contents: Vec<String> = landed
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        contents.sort();
        assert_eq!(contents, ["0", "1", "2", "3", "4", "5", "6", "7"]);
    }
}
