//! Steps 0 to 5 of a restore (see the module's doc), each over every host it concerns at once,
//! once every host answered and the cluster lock is held.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::members::{checked_host, old_data_after};
use super::old_data::OldData;
use super::{RestoreSettings, RestoredMember, aside_names, manifests_to_move, pods_held_aside};
use crate::components;
use crate::engine::event::Observer;
use crate::engine::host_job::{HostFailure, HostJob};
use crate::engine::host_ops::SshHost;
use crate::engine::lifecycle_step::{HostAction, LifecycleStep, MemberRestore};
use crate::engine::outcome::StepOutcome;
use crate::engine::plan::{Content, PutFile, PutKind, Step};
use crate::etcd::snapshot_file::SnapshotStatus;
use crate::etcd::{self, ClientTls};
use crate::fanout::{self, FanoutError};
use crate::host_paths;
use crate::inventory::{EtcdMember, Host, Inventory};
use crate::lifecycle::reset::aside_path;
use crate::lifecycle::snapshot::{HOST_WORK_DIR, SnapshotError};
use crate::render::{self, Templates};
use crate::ssh::Session;

/// A restore once every host answered and the lock is held.
pub(super) struct Restoring<'a> {
    pub inv: &'a Inventory,
    pub tls: &'a ClientTls,
    pub templates: &'a Templates,
    pub file: &'a std::path::Path,
    pub status: &'a SnapshotStatus,
    pub settings: &'a RestoreSettings,
    pub cancel: &'a CancellationToken,
    pub sessions: &'a BTreeMap<String, Arc<Session>>,
    pub etcd_hosts: &'a [Host],
    pub involved: &'a [Host],
    pub token: &'a str,
    pub started: Instant,
    /// Where the hosts' steps report.
    pub observer: Arc<dyn Observer>,
}

/// One fixed place, not one per run: a restore cut short after the stop step leaves the
/// manifests there, and the next restore (or reset) finds them.
const ASIDE: &str = host_paths::MANIFESTS_ASIDE_DIR;

/// What etcd runs from on one host: its config file's path, content and mode.
pub(super) type EtcdConfig = (String, String, u32);

impl Restoring<'_> {
    /// Before any change: etcd's config rendered (a template error stops here), then step 0
    /// on every etcd host at once: nothing changes on any host unless every one can be
    /// restored (the tool is there, the data dir holds nothing but etcd's entry). The configs,
    /// and whether each data dir is a mount point.
    pub(super) async fn checked(
        &self,
    ) -> Result<(BTreeMap<String, EtcdConfig>, BTreeMap<String, bool>), SnapshotError> {
        let configs = self.etcd_configs()?;
        let check = LifecycleStep::EtcdRestoreCheck {
            dir: self.inv.etcd.data_dir.clone(),
            entry: host_paths::ETCD_DATA_ENTRY.to_string(),
        };
        let mut mounts = BTreeMap::new();
        for (host, found) in self
            .each_host(self.etcd_hosts, "check", |_| {
                vec![Step::Lifecycle(check.clone())]
            })
            .await
        {
            let found = found.map_err(|f| failure(&host, f))?;
            mounts.insert(host.clone(), checked_host(&host, &found)?);
        }
        Ok((configs, mounts))
    }

    /// The rendered etcd config with the new token, per etcd host.
    pub(super) fn etcd_configs(&self) -> Result<BTreeMap<String, EtcdConfig>, SnapshotError> {
        let row = components::etcd_start_file(self.inv);
        let wanted = row.path;
        let mut configs = BTreeMap::new();
        for h in self.etcd_hosts {
            let files = render::render_host(self.inv, h, self.templates)
                .map_err(|e| SnapshotError::Render(e.to_string()))?;
            let f = files
                .into_iter()
                .find(|f| f.path == wanted)
                .ok_or_else(|| SnapshotError::Render(format!("{}: no {wanted}", h.name)))?;
            configs.insert(h.name.clone(), (f.path.to_string(), f.content, row.mode));
        }
        Ok(configs)
    }

    /// Each host's steps (none: the host is left out) as one host job of `phase`, all hosts
    /// at once; what each did. Anything that could not be done fails the phase, by name.
    async fn jobs(
        &self,
        hosts: &[Host],
        phase: &'static str,
        steps_for: impl Fn(&Host) -> Vec<Step>,
    ) -> Result<Vec<(String, Vec<HostAction>)>, SnapshotError> {
        let mut out = Vec::new();
        for (host, done) in self.each_host(hosts, phase, steps_for).await {
            let done = done.map_err(|f| failure(&host, f))?;
            refuse_failed(&host, phase, &done)?;
            out.push((host, done));
        }
        Ok(out)
    }

    /// Each host's steps as one host job of `phase`, all hosts at once: per host (in host
    /// order), what it did and what it could not do, or the step its job stopped at.
    async fn each_host(
        &self,
        hosts: &[Host],
        phase: &'static str,
        steps_for: impl Fn(&Host) -> Vec<Step>,
    ) -> Vec<(String, Result<Vec<HostAction>, JobStopped>)> {
        let jobs: Vec<_> = hosts
            .iter()
            .filter_map(|h| {
                let steps = steps_for(h);
                let session = self.sessions[&h.name].clone();
                (!steps.is_empty()).then(|| (h.name.clone(), (session, h.name.clone(), steps)))
            })
            .collect();
        let observer = self.observer.clone();
        fanout::run(
            jobs,
            self.settings.concurrency,
            self.cancel,
            move |(s, host, steps): (Arc<Session>, String, Vec<Step>)| {
                let observer = observer.clone();
                async move {
                    host_job(s, &host, phase, steps, observer)
                        .await
                        .map_err(JobStopped::At)
                }
            },
        )
        .await
        .into_iter()
        .map(|(host, r)| {
            let r = r.map_err(|e| match e {
                FanoutError::Failed(stopped) => stopped,
                FanoutError::Cancelled => JobStopped::Interrupted,
                FanoutError::Panicked(why) => JobStopped::Other(format!(
                    "internal error: the task for this host panicked: {why}"
                )),
            });
            (host, r)
        })
        .collect()
    }

    /// Step 1: stop what must not run meanwhile; the hosts whose manifests went aside.
    pub(super) async fn stop(&self) -> Result<Vec<String>, SnapshotError> {
        let stopped = self
            .jobs(self.involved, "stop", |h| {
                let (units, _) = components::stopped_for_restore(self.inv, h);
                let ports: Vec<u16> = pods_held_aside(self.inv, h)
                    .flat_map(|c| c.ports(self.inv).map(|p| p.port))
                    .collect();
                let paths: Vec<String> = manifests_to_move(self.inv, h)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                let mut steps = vec![LifecycleStep::StopUnits(units)];
                if !paths.is_empty() {
                    steps.push(LifecycleStep::MoveAside {
                        paths,
                        into: ASIDE.to_string(),
                    });
                }
                steps.push(LifecycleStep::StopUnits(components::etcd_units(
                    self.inv, h,
                )));
                if !ports.is_empty() {
                    // The kubelet stops a static pod once its manifest is gone: its ports
                    // (etcd's, the apiserver's, ...) close.
                    steps.push(LifecycleStep::PodPortsFree {
                        runner: components::static_pod_runner(),
                        ports,
                    });
                }
                steps.into_iter().map(Step::Lifecycle).collect()
            })
            .await?;
        Ok(stopped
            .iter()
            .filter(|(_, done)| done.iter().any(|a| matches!(a, HostAction::Move { .. })))
            .map(|(h, _)| format!("{h}: {ASIDE}"))
            .collect())
    }

    /// Step 2 on every member at once: the snapshot uploaded (checksum-verified) into the
    /// scratch dir only root can enter, the old data set aside (kept), the member restored (the
    /// upload deleted); `old` says where each host's data went, also when this fails.
    pub(super) async fn restore_members(
        &self,
        old: &mut BTreeMap<String, OldData>,
    ) -> Result<(), SnapshotError> {
        let data_dir = &self.inv.etcd.data_dir;
        let aside = aside_path(data_dir, &self.settings.stamp, "restore");
        let snapshot = format!("{HOST_WORK_DIR}/restore-{}.db", self.settings.stamp);
        let upload = Step::Put {
            kind: PutKind::Files,
            files: vec![PutFile {
                path: snapshot.clone(),
                sha256: self.status.sha256.clone(),
                content: Content::Once(self.file.to_path_buf()),
                mode: 0o600,
                owner: "root:root".into(),
                notes: Vec::new(),
            }],
        };
        let upload_label = upload.label();
        let initial_cluster = self.inv.etcd_initial_cluster();
        let restored = self
            .each_host(self.etcd_hosts, "restore", |h| {
                let member = MemberRestore {
                    snapshot: snapshot.clone(),
                    data_dir: data_dir.clone(),
                    entry: host_paths::ETCD_DATA_ENTRY.to_string(),
                    name: h.name.clone(),
                    peer_url: EtcdMember {
                        name: h.name.clone(),
                        address: h.address,
                    }
                    .peer_url(),
                    initial_cluster: initial_cluster.clone(),
                    token: self.token.to_string(),
                };
                vec![
                    Step::Lifecycle(LifecycleStep::PrivateDir(HOST_WORK_DIR.to_string())),
                    upload.clone(),
                    Step::Lifecycle(LifecycleStep::EtcdData {
                        dir: data_dir.clone(),
                        aside: aside.clone(),
                        entry: host_paths::ETCD_DATA_ENTRY.to_string(),
                        purge: false,
                    }),
                    Step::Lifecycle(LifecycleStep::EtcdRestore(Box::new(member))),
                ]
            })
            .await;
        let mut first_error = None;
        for (host, r) in restored {
            let (o, e) = match r {
                Ok(done) => {
                    let o = old_data_after(Ok(&done), &aside);
                    (o, refuse_failed(&host, "restore", &done).err())
                }
                Err(stopped) => {
                    // A job that stopped before the data dir's step left the data where it was.
                    let before = matches!(&stopped, JobStopped::At(f) if f.step == upload_label
                        || f.step.starts_with("private dir"));
                    (
                        old_data_after(Err(before), &aside),
                        Some(failure(&host, stopped)),
                    )
                }
            };
            old.insert(host, o);
            first_error = first_error.or(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Step 3: etcd's config written with the new token, every member started together (the
    /// first one waits for a quorum).
    pub(super) async fn start_etcd(
        &self,
        configs: &BTreeMap<String, EtcdConfig>,
    ) -> Result<(), SnapshotError> {
        let manifest = std::path::Path::new(host_paths::ETCD_MANIFEST)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.jobs(self.etcd_hosts, "start", |h| {
            let (path, content, mode) = configs[&h.name].clone();
            let config = PutFile {
                path,
                sha256: crate::ssh::sha256_hex(content.as_bytes()),
                content: Content::Bytes(Arc::new(content.into_bytes())),
                mode,
                owner: "root:root".into(),
                notes: Vec::new(),
            };
            let mut steps = vec![
                Step::Put {
                    kind: PutKind::Files,
                    files: vec![config],
                },
                // As a static pod, the manifest just written is the one that stays, not the
                // copy held aside.
                Step::Lifecycle(LifecycleStep::Files(vec![format!("{ASIDE}/{manifest}")])),
            ];
            let units: Vec<Step> = components::etcd_unit_rows(self.inv, h)
                .map(Step::Unit)
                .collect();
            if !units.is_empty() {
                steps.push(Step::Lifecycle(LifecycleStep::DaemonReload));
                steps.extend(units);
            }
            steps
        })
        .await
        .map(drop)
    }

    /// Step 5: the manifests kinit moved put back (nothing else); hosts whose waiting dir kept
    /// something kinit did not put there.
    pub(super) async fn put_back(&self) -> Result<Vec<String>, SnapshotError> {
        let put_back = self
            .jobs(self.involved, "put-back", |_| {
                vec![Step::Lifecycle(LifecycleStep::PutBack {
                    aside: ASIDE.to_string(),
                    dir: host_paths::MANIFESTS_DIR.to_string(),
                    names: aside_names().into_iter().map(str::to_string).collect(),
                })]
            })
            .await?;
        Ok(put_back
            .iter()
            .filter_map(|(h, done)| {
                let dir = done.iter().find_map(|a| match a {
                    HostAction::Kept { path, .. } => Some(path),
                    _ => None,
                })?;
                Some(format!(
                    "{h}: {dir} holds files kinit did not put there; it was left in place"
                ))
            })
            .collect())
    }

    /// Step 5: the control-plane units of step 1 started again; per host, those started.
    pub(super) async fn start_units(&self) -> Result<Vec<String>, SnapshotError> {
        let started = self
            .jobs(self.involved, "start-units", |h| {
                let (units, _) = components::stopped_for_restore(self.inv, h);
                if units.is_empty() {
                    return Vec::new();
                }
                vec![Step::Lifecycle(LifecycleStep::StartUnits(units))]
            })
            .await?;
        Ok(started
            .iter()
            .filter_map(|(h, done)| {
                let units: Vec<&str> = done
                    .iter()
                    .filter_map(|a| match a {
                        HostAction::Start(u) => Some(u.as_str()),
                        _ => None,
                    })
                    .collect();
                (!units.is_empty()).then(|| format!("{h}: {}", units.join(", ")))
            })
            .collect())
    }

    pub(super) fn members(
        &self,
        statuses: &BTreeMap<String, etcd::MemberStatus>,
        old: &BTreeMap<String, OldData>,
    ) -> Vec<RestoredMember> {
        self.etcd_hosts
            .iter()
            .map(|h| {
                let s = statuses.get(&h.name);
                RestoredMember {
                    host: h.name.clone(),
                    old_data_dir: match old.get(&h.name) {
                        Some(OldData::Moved(p)) => Some(p.clone()),
                        _ => None,
                    },
                    revision: s.map(|s| s.revision).unwrap_or_default(),
                    leader: s.is_some_and(|s| s.leader == s.member_id),
                }
            })
            .collect()
    }
}

/// Why a host's job gave no answer.
pub(super) enum JobStopped {
    /// A step could not run on the host.
    At(HostFailure),
    Interrupted,
    Other(String),
}

fn failure(host: &str, stopped: JobStopped) -> SnapshotError {
    match stopped {
        JobStopped::At(f) => {
            let tail = f.stderr_tail.map(|t| format!(": {t}")).unwrap_or_default();
            SnapshotError::host(host, &f.step, format!("{}{tail}", f.error))
        }
        JobStopped::Interrupted => SnapshotError::Interrupted,
        JobStopped::Other(e) => SnapshotError::host(host, "restore", e),
    }
}

/// What a host could not do, as the phase's error.
fn refuse_failed(host: &str, phase: &str, done: &[HostAction]) -> Result<(), SnapshotError> {
    let failed: Vec<&str> = done
        .iter()
        .filter_map(|a| match a {
            HostAction::Failed(what) => Some(what.as_str()),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(SnapshotError::host(
        host,
        phase,
        format!("could not {}", failed.join(", ")),
    ))
}

/// `steps` on one host as one host job: what it did and what it could not do.
async fn host_job(
    session: Arc<Session>,
    host: &str,
    phase: &'static str,
    steps: Vec<Step>,
    observer: Arc<dyn Observer>,
) -> Result<Vec<HostAction>, HostFailure> {
    let job = HostJob {
        phase: phase.into(),
        host: host.to_string(),
        steps,
        dry_run: false,
        dry_notes: Default::default(),
        hold_restarts: false,
        observer,
    };
    let outcomes = job.run(&SshHost(session)).await?;
    Ok(outcomes
        .into_iter()
        .flat_map(StepOutcome::into_host_actions)
        .collect())
}
