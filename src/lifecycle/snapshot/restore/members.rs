//! What a restore does per etcd member: the check before anything changes, the restore of its
//! data, and the wait for one healthy cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::scripts::{CHECK, FOREIGN_EXIT, RESTORE_TOOL, SCRATCH, foreign_names};
use super::{RestoreSettings, all_ok, script};
use crate::engine::host_ops::run_script;
use crate::engine::lifecycle_step::DIR_FUNCTIONS;
use crate::etcd::{self, ClientTls};
use crate::fanout;
use crate::host_paths;
use crate::inventory::{Host, Inventory};
use crate::lifecycle::reset::ForeignData;
use crate::lifecycle::snapshot::{HOST_WORK_DIR, SnapshotError, stderr_tail};
use crate::ssh::{ExitStatus, FileSpec, Session};

/// Step 0: on every etcd host at once, the restore tool is there and the data dir holds
/// nothing but etcd's member; whether each data dir is a mount point. Changes nothing.
pub(super) async fn check_hosts(
    etcd_hosts: &[Host],
    sessions: &BTreeMap<String, Arc<Session>>,
    data_dir: &str,
    settings: &RestoreSettings,
    cancel: &CancellationToken,
) -> Result<BTreeMap<String, bool>, SnapshotError> {
    let text = format!("{DIR_FUNCTIONS}{RESTORE_TOOL}{CHECK}");
    let jobs: Vec<_> = etcd_hosts
        .iter()
        .map(|h| {
            let job = (
                sessions[&h.name].clone(),
                h.name.clone(),
                data_dir.to_string(),
                text.clone(),
            );
            (h.name.clone(), job)
        })
        .collect();
    let checked = all_ok(
        fanout::run(
            jobs,
            settings.concurrency,
            cancel,
            |(s, host, data, text): (Arc<Session>, String, String, String)| async move {
                let out = run_script(
                    &s,
                    &text,
                    &[&data, host_paths::ETCD_DATA_ENTRY],
                    Duration::from_secs(120),
                )
                .await
                .map_err(|e| SnapshotError::host(&host, "check", e.to_string()))?;
                let stdout = out.stdout_text();
                if let Some(found) =
                    foreign_names(&stdout, out.status == ExitStatus::Code(FOREIGN_EXIT))
                {
                    return Err(SnapshotError::ForeignData {
                        host,
                        data: ForeignData { dir: data, found },
                    });
                }
                if !out.success() {
                    return Err(SnapshotError::host(
                        &host,
                        "check",
                        format!(
                            "{}: {}; nothing was changed on any host",
                            out.status,
                            stderr_tail(&out.stderr_text())
                        ),
                    ));
                }
                Ok(stdout.lines().any(|l| l == "mount yes"))
            },
        )
        .await,
    )?;
    Ok(checked.into_iter().collect())
}

/// Step 2 on one member: the scratch dir (0700), the snapshot uploaded into it, the old data
/// moved aside and the snapshot restored. Whether the old data was moved: on failure, `None`
/// when that is not known.
pub(super) async fn restore_member(
    s: &Session,
    host: &str,
    words: &[String],
    file: &Path,
    sha: &str,
    text: &str,
) -> Result<Option<String>, (Option<bool>, SnapshotError)> {
    script(
        s,
        host,
        "prepare the scratch dir",
        SCRATCH,
        &[HOST_WORK_DIR],
    )
    .await
    .map_err(|e| (Some(false), e))?;
    let mut f = tokio::fs::File::open(file).await.map_err(|source| {
        (
            Some(false),
            SnapshotError::Local {
                path: file.to_path_buf(),
                source,
            },
        )
    })?;
    s.write_from(
        &mut f,
        sha,
        &words[0],
        &FileSpec::new(0o600, Some("root:root")),
    )
    .await
    .map_err(|e| {
        (
            Some(false),
            SnapshotError::host(host, "upload the snapshot", e.to_string()),
        )
    })?;
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let out = run_script(s, text, &args, Duration::from_secs(1800))
        .await
        .map_err(|e| {
            (
                None,
                SnapshotError::host(host, "snapshot restore", e.to_string()),
            )
        })?;
    let stdout = out.stdout_text();
    let moved = stdout
        .lines()
        .find_map(|l| l.strip_prefix("aside "))
        .map(str::to_string);
    if let Some(found) = foreign_names(&stdout, out.status == ExitStatus::Code(FOREIGN_EXIT)) {
        return Err((
            Some(false),
            SnapshotError::ForeignData {
                host: host.to_string(),
                data: ForeignData {
                    dir: words[1].clone(),
                    found,
                },
            },
        ));
    }
    if !out.success() {
        return Err((
            Some(moved.is_some()),
            SnapshotError::host(
                host,
                "snapshot restore",
                format!("{}: {}", out.status, stderr_tail(&out.stderr_text())),
            ),
        ));
    }
    Ok(moved)
}

/// Poll every member until all are healthy, in one cluster, following one leader.
pub(super) async fn wait_healthy(
    inv: &Inventory,
    tls: &ClientTls,
    settings: &RestoreSettings,
    cancel: &CancellationToken,
) -> Result<(u64, BTreeMap<String, etcd::MemberStatus>), SnapshotError> {
    let deadline = Instant::now() + settings.wait;
    let members = inv.etcd_members();
    loop {
        let mut statuses = BTreeMap::new();
        let mut problems = Vec::new();
        for m in &members {
            let ep = m.client_url();
            match (
                etcd::health(tls, &ep, settings.etcd_timeout).await,
                etcd::status(tls, &ep, settings.etcd_timeout).await,
            ) {
                (Ok(true), Ok(s)) => {
                    statuses.insert(m.name.clone(), s);
                }
                (Ok(false), _) => problems.push(format!("{}: not healthy yet", m.name)),
                (Err(e), _) | (_, Err(e)) => problems.push(format!("{}: {e}", m.name)),
            }
        }
        if problems.is_empty() {
            let first = statuses.values().next().expect("members");
            let (cluster, leader) = (first.cluster_id, first.leader);
            let one_cluster = statuses
                .values()
                .all(|s| s.cluster_id == cluster && s.leader == leader && leader != 0);
            if one_cluster {
                return Ok((cluster, statuses));
            }
            problems.push("members do not agree on the cluster and its leader yet".into());
        }
        if Instant::now() >= deadline {
            return Err(SnapshotError::host(
                "etcd",
                "wait for the restored cluster",
                format!(
                    "not healthy within {}s: {}",
                    settings.wait.as_secs(),
                    problems.join("; ")
                ),
            ));
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(SnapshotError::Interrupted),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
