//! The per-host job against a host kept in memory: no root, SSH or lab needed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::*;
use crate::components::{StartPolicy, UnitRow};
use crate::engine::event::{Event, Observer};
use crate::engine::host_ops::{FileState, PackagesState};
use crate::engine::lifecycle_step::{HostAction, LifecycleStep};
use crate::engine::plan::{Content, PruneDir, PutKind};

/// A host in memory: files, notes, units and packages, and a log of what was done to it.
#[derive(Default)]
struct MemoryHost {
    files: Mutex<BTreeMap<String, FileState>>,
    notes: Mutex<BTreeSet<String>>,
    units: Mutex<BTreeMap<String, (bool, bool)>>,
    packages: Mutex<BTreeSet<String>>,
    log: Mutex<Vec<String>>,
}

impl MemoryHost {
    fn log(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl HostOps for MemoryHost {
    async fn stat_files(&self, paths: &[&str]) -> Result<Vec<Option<FileState>>, HostOpError> {
        let files = self.files.lock().unwrap();
        Ok(paths.iter().map(|p| files.get(*p).cloned()).collect())
    }

    async fn note_pending(&self, notes: &BTreeSet<PendingNote>) -> Result<(), HostOpError> {
        for n in notes {
            self.notes.lock().unwrap().insert(n.file_name());
        }
        Ok(())
    }

    async fn write_file(&self, f: &PutFile) -> Result<(), HostOpError> {
        self.log(format!("write {}", f.path));
        self.files.lock().unwrap().insert(
            f.path.clone(),
            FileState {
                sha256: f.sha256.clone(),
                mode: f.mode,
                owner: f.owner.clone(),
            },
        );
        Ok(())
    }

    async fn packages(
        &self,
        packages: &[&str],
        install: bool,
    ) -> Result<PackagesState, HostOpError> {
        let mut have = self.packages.lock().unwrap();
        let missing: Vec<String> = packages
            .iter()
            .filter(|p| !have.contains(**p))
            .map(|p| p.to_string())
            .collect();
        Ok(if missing.is_empty() {
            PackagesState::Present
        } else if install {
            have.extend(missing.iter().cloned());
            PackagesState::Installed(missing)
        } else {
            PackagesState::Missing(missing)
        })
    }

    async fn unit_state(&self, unit: &str) -> Result<UnitState, HostOpError> {
        let (running, enabled) = self
            .units
            .lock()
            .unwrap()
            .get(unit)
            .copied()
            .unwrap_or_default();
        let notes = self.notes.lock().unwrap();
        Ok(UnitState {
            running,
            enabled,
            restart_noted: notes.contains(unit),
            reload_noted: notes.contains(&format!("{unit}.reload")),
            daemon_reload_noted: notes.contains("daemon-reload"),
        })
    }

    async fn apply_unit(&self, unit: &str, plan: &UnitPlan) -> Result<(), HostOpError> {
        let mut notes = self.notes.lock().unwrap();
        if plan.daemon_reload {
            self.log("daemon-reload".into());
            notes.remove("daemon-reload");
        }
        let mut units = self.units.lock().unwrap();
        let state = units.entry(unit.to_string()).or_default();
        if plan.enable {
            state.1 = true;
            self.log(format!("enable {unit}"));
        }
        match plan.action {
            UnitAction::None => {}
            UnitAction::Start => {
                state.0 = true;
                self.log(format!("start {unit}"));
            }
            UnitAction::Restart => self.log(format!("restart {unit}")),
            UnitAction::Reload => self.log(format!("reload {unit}")),
        }
        notes.remove(unit);
        notes.remove(&format!("{unit}.reload"));
        Ok(())
    }

    // An entry is kinit's here when its marker file exists (contents are not kept).
    async fn prune(&self, prune: &PruneDir, apply: bool) -> Result<Vec<String>, HostOpError> {
        let mut files = self.files.lock().unwrap();
        let under = format!("{}/", prune.dir);
        let stale: Vec<String> = files
            .keys()
            .filter_map(|p| {
                p.strip_prefix(&under)?
                    .strip_suffix(&format!("/{}", prune.marker_file))
            })
            .filter(|n| !n.contains('/') && !prune.keep.iter().any(|k| k == n))
            .map(str::to_string)
            .collect();
        if apply {
            for n in &stale {
                self.log(format!("remove {under}{n}"));
                files.retain(|p, _| !p.starts_with(&format!("{under}{n}/")));
            }
        }
        Ok(stale)
    }

    /// Files, and a private dir that cannot be made under a file: the scripts themselves are
    /// tested in `lifecycle_step`.
    async fn lifecycle_step(
        &self,
        what: &LifecycleStep,
        apply: bool,
    ) -> Result<Vec<HostAction>, HostOpError> {
        let mut files = self.files.lock().unwrap();
        if let LifecycleStep::PrivateDir(dir) = what {
            let under_a_file = files.keys().any(|f| dir.starts_with(&format!("{f}/")));
            return Ok(under_a_file
                .then(|| HostAction::Failed(format!("make {dir}")))
                .into_iter()
                .collect());
        }
        let LifecycleStep::Files(paths) = what else {
            return Ok(Vec::new());
        };
        let mut gone = Vec::new();
        for p in paths {
            if !files.contains_key(p) {
                continue;
            }
            if apply {
                self.log(format!("remove {p}"));
                files.remove(p);
            }
            gone.push(HostAction::Remove(p.clone()));
        }
        Ok(gone)
    }
}

struct Quiet;
impl Observer for Quiet {
    fn event(&self, _: &Event) {}
}

fn file(path: &str, content: &str, notes: &[PendingNote]) -> PutFile {
    PutFile {
        path: path.into(),
        sha256: crate::ssh::sha256_hex(content.as_bytes()),
        content: Content::Bytes(Arc::new(content.as_bytes().to_vec())),
        mode: 0o644,
        owner: "root:root".into(),
        notes: notes.to_vec(),
    }
}

fn unit(name: &'static str) -> Step {
    Step::Unit(UnitRow {
        name,
        enable: true,
        start: StartPolicy::Always,
        no_block: false,
    })
}

/// haproxy's config (a change reloads it), its unit file (a change restarts it and needs a
/// daemon-reload) and a script nothing restarts for.
fn haproxy_steps(config: &str, script: &str) -> Vec<Step> {
    vec![
        Step::Packages(vec!["haproxy"]),
        Step::Put {
            kind: PutKind::Files,
            files: vec![
                file(
                    "/etc/haproxy/haproxy.cfg",
                    config,
                    &[PendingNote::Reload("haproxy")],
                ),
                file(
                    "/etc/systemd/system/haproxy.service",
                    "[Service]\n",
                    &[PendingNote::Restart("haproxy"), PendingNote::DaemonReload],
                ),
                file("/etc/keepalived/check.sh", script, &[]),
            ],
        },
        unit("haproxy"),
    ]
}

async fn run(host: &MemoryHost, steps: Vec<Step>, dry_run: bool) -> Vec<StepOutcome> {
    run_holding(host, steps, dry_run, false).await
}

async fn run_holding(
    host: &MemoryHost,
    steps: Vec<Step>,
    dry_run: bool,
    hold_restarts: bool,
) -> Vec<StepOutcome> {
    HostJob {
        phase: "load-balancer".into(),
        host: "cp1".into(),
        steps,
        dry_run,
        hold_restarts,
        dry_notes: DryNotes::default(),
        observer: Arc::new(Quiet),
    }
    .run(host)
    .await
    .unwrap()
}

fn written(o: &StepOutcome) -> Vec<String> {
    match o {
        StepOutcome::Files { written, .. } => written.iter().map(|w| w.path.clone()).collect(),
        other => panic!("not a files outcome: {other:?}"),
    }
}

fn unit_action(o: &StepOutcome) -> UnitAction {
    match o {
        StepOutcome::Unit { action, .. } => *action,
        other => panic!("not a unit outcome: {other:?}"),
    }
}

#[tokio::test]
async fn a_fresh_host_gets_everything_and_a_second_run_changes_nothing() {
    let host = MemoryHost::default();
    let first = run(&host, haproxy_steps("a", "s"), false).await;
    assert_eq!(
        first[0],
        StepOutcome::Packages {
            state: PackagesState::Installed(vec!["haproxy".into()])
        }
    );
    assert_eq!(written(&first[1]).len(), 3);
    // A unit that was not running is started, not restarted, whatever the notes said.
    assert_eq!(unit_action(&first[2]), UnitAction::Start);
    assert_eq!(
        host.take_log(),
        [
            "write /etc/haproxy/haproxy.cfg",
            "write /etc/systemd/system/haproxy.service",
            "write /etc/keepalived/check.sh",
            "daemon-reload",
            "enable haproxy",
            "start haproxy",
        ]
    );
    assert!(host.notes.lock().unwrap().is_empty(), "notes are cleared");

    let second = run(&host, haproxy_steps("a", "s"), false).await;
    assert!(second.iter().all(|o| !o.changed()), "{second:?}");
    assert!(host.take_log().is_empty());
}

#[tokio::test]
async fn only_what_a_changed_input_feeds_is_restarted_or_reloaded() {
    let host = MemoryHost::default();
    run(&host, haproxy_steps("a", "s"), false).await;
    host.take_log();

    // A script nothing restarts for: written, the unit left alone.
    let out = run(&host, haproxy_steps("a", "s2"), false).await;
    assert_eq!(written(&out[1]), ["/etc/keepalived/check.sh"]);
    assert_eq!(unit_action(&out[2]), UnitAction::None);
    assert_eq!(host.take_log(), ["write /etc/keepalived/check.sh"]);

    // The config: a reload, no restart.
    let out = run(&host, haproxy_steps("b", "s2"), false).await;
    assert_eq!(unit_action(&out[2]), UnitAction::Reload);
    assert_eq!(
        host.take_log(),
        ["write /etc/haproxy/haproxy.cfg", "reload haproxy"]
    );

    // A file with the right bytes but the wrong mode is rewritten (and asks what it asks).
    host.files
        .lock()
        .unwrap()
        .get_mut("/etc/haproxy/haproxy.cfg")
        .unwrap()
        .mode = 0o666;
    let out = run(&host, haproxy_steps("b", "s2"), false).await;
    assert_eq!(written(&out[1]), ["/etc/haproxy/haproxy.cfg"]);
    assert_eq!(unit_action(&out[2]), UnitAction::Reload);
}

#[tokio::test]
async fn a_rolling_phase_holds_reloads_of_running_units_and_keeps_their_notes() {
    let host = MemoryHost::default();
    // A unit that does not run yet is started even while restarts are held.
    let out = run_holding(&host, haproxy_steps("a", "s"), false, true).await;
    assert_eq!(unit_action(&out[2]), UnitAction::Start);
    host.take_log();

    let out = run_holding(&host, haproxy_steps("b", "s"), false, true).await;
    assert_eq!(
        out[2],
        StepOutcome::Held {
            unit: "haproxy",
            action: UnitAction::Reload
        }
    );
    assert!(out[2].changed());
    // The file is written; the reload is not done, and its note stays for the rolling step.
    assert_eq!(host.take_log(), ["write /etc/haproxy/haproxy.cfg"]);
    assert!(host.notes.lock().unwrap().contains("haproxy.reload"));

    // The rolling step (or the next run) finds the note and reloads.
    let out = run(&host, vec![unit("haproxy")], false).await;
    assert_eq!(unit_action(&out[0]), UnitAction::Reload);
    assert_eq!(host.take_log(), ["reload haproxy"]);
}

#[tokio::test]
async fn a_run_cut_short_after_the_write_still_restarts_next_time() {
    let host = MemoryHost::default();
    run(&host, haproxy_steps("a", "s"), false).await;
    host.take_log();
    // The files step of a run that then stopped (the unit step never ran).
    let mut steps = haproxy_steps("a", "s");
    steps.pop();
    let mut changed = steps;
    if let Step::Put { files, .. } = &mut changed[1] {
        files[1] = file(
            "/etc/systemd/system/haproxy.service",
            "[Service]\nRestart=always\n",
            &[PendingNote::Restart("haproxy"), PendingNote::DaemonReload],
        );
    }
    run(&host, changed, false).await;
    assert_eq!(
        host.take_log(),
        ["write /etc/systemd/system/haproxy.service"]
    );
    // The next run finds the files as wanted, yet restarts: the notes say an input changed.
    let mut steps = haproxy_steps("a", "s");
    if let Step::Put { files, .. } = &mut steps[1] {
        files[1] = file(
            "/etc/systemd/system/haproxy.service",
            "[Service]\nRestart=always\n",
            &[PendingNote::Restart("haproxy"), PendingNote::DaemonReload],
        );
    }
    let out = run(&host, steps, false).await;
    assert!(written(&out[1]).is_empty());
    assert_eq!(unit_action(&out[2]), UnitAction::Restart);
    assert_eq!(host.take_log(), ["daemon-reload", "restart haproxy"]);
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_says_what_a_run_would_do() {
    let host = MemoryHost::default();
    run(&host, haproxy_steps("a", "s"), false).await;
    host.take_log();
    let out = run(&host, haproxy_steps("b", "s"), true).await;
    assert_eq!(written(&out[1]), ["/etc/haproxy/haproxy.cfg"]);
    assert_eq!(unit_action(&out[2]), UnitAction::Reload);
    assert!(host.take_log().is_empty(), "a dry run wrote or restarted");
    assert!(
        host.notes.lock().unwrap().is_empty(),
        "a dry run left notes"
    );

    let fresh = MemoryHost::default();
    let out = run(&fresh, haproxy_steps("a", "s"), true).await;
    assert_eq!(
        out[0],
        StepOutcome::Packages {
            state: PackagesState::Missing(vec!["haproxy".into()])
        }
    );
    assert!(matches!(&out[1], StepOutcome::Files { written, .. } if written.iter().all(|w| w.new)));
    assert!(fresh.take_log().is_empty());
}

#[tokio::test]
async fn a_component_the_bundle_cannot_start_is_reported_not_failed() {
    let host = MemoryHost::default();
    let out = run(
        &host,
        vec![Step::NotStarted {
            component: "kubelet",
            reason: "not started: the bundle /b has no `kubelet`".into(),
        }],
        false,
    )
    .await;
    assert!(!out[0].changed());
    assert!(matches!(
        &out[0],
        StepOutcome::NotStarted {
            component: "kubelet",
            ..
        }
    ));
    assert!(host.take_log().is_empty());
}

#[test]
fn one_shot_units_run_only_on_a_change() {
    let row = UnitRow {
        name: "systemd-sysctl",
        enable: false,
        start: StartPolicy::OnChange,
        no_block: false,
    };
    let idle = UnitState::default();
    assert_eq!(decide(&row, &idle).action, UnitAction::None);
    assert!(decide(&row, &idle).is_noop());
    let noted = UnitState {
        restart_noted: true,
        ..idle
    };
    assert_eq!(decide(&row, &noted).action, UnitAction::Start);
}

#[tokio::test]
async fn a_host_that_answers_badly_fails_the_step_by_name() {
    struct Broken;
    impl HostOps for Broken {
        async fn stat_files(&self, _: &[&str]) -> Result<Vec<Option<FileState>>, HostOpError> {
            Ok(Vec::new())
        }
        async fn note_pending(&self, _: &BTreeSet<PendingNote>) -> Result<(), HostOpError> {
            Ok(())
        }
        async fn write_file(&self, _: &PutFile) -> Result<(), HostOpError> {
            Ok(())
        }
        async fn packages(&self, _: &[&str], _: bool) -> Result<PackagesState, HostOpError> {
            Err(HostOpError::Failed {
                summary: "installing packages: exit 100".into(),
                stderr: "E: Unable to locate package haproxy\n".into(),
            })
        }
        async fn unit_state(&self, _: &str) -> Result<UnitState, HostOpError> {
            Ok(UnitState::default())
        }
        async fn apply_unit(&self, _: &str, _: &UnitPlan) -> Result<(), HostOpError> {
            Ok(())
        }
        async fn prune(&self, _: &PruneDir, _: bool) -> Result<Vec<String>, HostOpError> {
            Ok(Vec::new())
        }
        async fn lifecycle_step(
            &self,
            _: &LifecycleStep,
            _: bool,
        ) -> Result<Vec<HostAction>, HostOpError> {
            Ok(Vec::new())
        }
    }
    let err = HostJob {
        phase: "load-balancer".into(),
        host: "cp1".into(),
        steps: haproxy_steps("a", "s"),
        dry_run: false,
        hold_restarts: false,
        dry_notes: DryNotes::default(),
        observer: Arc::new(Quiet),
    }
    .run(&Broken)
    .await
    .unwrap_err();
    assert_eq!(err.host, "cp1");
    assert_eq!(err.step, "packages haproxy");
    assert_eq!(err.error, "installing packages: exit 100");
    assert_eq!(
        err.stderr_tail.as_deref(),
        Some("E: Unable to locate package haproxy")
    );
}

/// A registry that left cluster.yaml: its certs.d directory goes (a dry run only names it); the
/// registries still named stay.
#[tokio::test]
async fn a_prune_step_removes_the_entries_no_longer_named_and_a_dry_run_only_names_them() {
    let host = MemoryHost::default();
    for p in [
        "/etc/containerd/certs.d/kept.example/hosts.toml",
        "/etc/containerd/certs.d/gone.example/hosts.toml",
        "/etc/containerd/certs.d/gone.example/ca.crt",
        "/etc/containerd/certs.d/by-hand.example/other.toml",
    ] {
        host.files.lock().unwrap().insert(
            p.into(),
            FileState {
                sha256: "x".into(),
                mode: 0o644,
                owner: "root:root".into(),
            },
        );
    }
    let job = |dry_run| HostJob {
        phase: "node".into(),
        host: "w1".into(),
        steps: vec![Step::Prune(PruneDir {
            dir: "/etc/containerd/certs.d".into(),
            keep: vec!["kept.example".into()],
            marker_file: "hosts.toml".into(),
        })],
        dry_run,
        hold_restarts: false,
        dry_notes: DryNotes::default(),
        observer: Arc::new(Quiet),
    };
    let pruned = |outcomes: Vec<StepOutcome>| match &outcomes[..] {
        [StepOutcome::Pruned { removed, .. }] => removed.clone(),
        other => panic!("{other:?}"),
    };
    let dry = job(true).run(&host).await.unwrap();
    assert_eq!(pruned(dry), ["gone.example"]);
    assert_eq!(
        host.files.lock().unwrap().len(),
        4,
        "a dry run removes nothing"
    );
    let done = job(false).run(&host).await.unwrap();
    assert!(done[0].changed());
    assert_eq!(pruned(done), ["gone.example"]);
    let left: Vec<String> = host.files.lock().unwrap().keys().cloned().collect();
    assert_eq!(
        left,
        [
            "/etc/containerd/certs.d/by-hand.example/other.toml",
            "/etc/containerd/certs.d/kept.example/hosts.toml",
        ]
    );
    let again = job(false).run(&host).await.unwrap();
    assert!(!again[0].changed(), "{again:?}");
}

mod lifecycle;
