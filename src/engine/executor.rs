//! Runs a playbook against the inventory: phases in order, the hosts of a phase in parallel (up to
//! a limit), each host's steps in order. A phase that fails on any host stops the run once every
//! host of that phase is done; the failure names the host, the step and what the host said.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::bundle::Bundle;
use super::event::{Event, Observer};
use super::host_ops::{self, HostOpError, UnitChange, UnitRequest};
use super::lock::{self, LockOwner};
use super::playbook::{Condition, OperatorStep, Phase, Playbook, StartPolicy, Wait};
use super::steps::{self, Content, PutFile, Step, StepInputs};
use super::verify;
use crate::config::Role;
use crate::fanout::{self, FanoutError};
use crate::inventory::Inventory;
use crate::preflight::{self, IgnoreSet, PreflightReport};
use crate::render::{RenderedFile, Templates};
use crate::ssh::{FileSpec, HostTarget, Pool, Session};

/// Which phases to run.
#[derive(Debug, Clone, Default)]
pub struct PhaseSelection {
    pub skip: Vec<String>,
    pub only: Option<String>,
    pub from: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub selection: PhaseSelection,
    pub dry_run: bool,
    pub concurrency: usize,
    pub ignore_preflight: IgnoreSet,
    /// Remove any lock, not only stale ones of this machine.
    pub break_lock: bool,
}

/// What a run did, counted over all hosts.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub dry_run: bool,
    pub phases_run: Vec<String>,
    pub files_written: usize,
    pub files_unchanged: usize,
    pub services_started: usize,
    pub services_restarted: usize,
    pub services_enabled: usize,
    pub packages_installed: usize,
    /// What was deliberately not done, and why (`kubelet not started on cp1, cp2: ...`).
    pub not_done: Vec<String>,
    pub seconds: f64,
}

/// One host's failure in a phase.
#[derive(Debug, Clone, Serialize)]
pub struct HostFailure {
    pub host: String,
    pub step: String,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error("before any host was changed: {0}")]
    Prepare(String),
    #[error("phase {phase}: {} host(s) failed", failures.len())]
    Hosts {
        phase: String,
        failures: Vec<HostFailure>,
    },
    #[error("phase {phase}: waiting for {what}: {error}")]
    Wait {
        phase: String,
        what: String,
        error: String,
    },
    #[error("phase preflight: {} check(s) failed", report.count(preflight::Status::Fail))]
    Preflight { report: Box<PreflightReport> },
    #[error("phase {phase}: {error}")]
    Operator { phase: String, error: String },
    #[error("interrupted")]
    Interrupted,
}

impl RunError {
    /// The phase to resume from, when the run stopped in one.
    pub fn phase(&self) -> Option<&str> {
        match self {
            RunError::Hosts { phase, .. }
            | RunError::Wait { phase, .. }
            | RunError::Operator { phase, .. } => Some(phase),
            RunError::Preflight { .. } => Some("preflight"),
            _ => None,
        }
    }
}

/// Everything a run works with.
pub struct Engine {
    pub inventory: Inventory,
    pub playbook: Playbook,
    pub templates: Templates,
    pub pool: Arc<Pool>,
    /// SSH target per host name.
    pub targets: BTreeMap<String, HostTarget>,
    pub observer: Arc<dyn Observer>,
    pub cancel: CancellationToken,
    /// A dry run's copy of the PKI dir, removed when the run ends.
    pub scratch_pki: Option<std::path::PathBuf>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(dir) = self.scratch_pki.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Copy a directory tree (modes kept; private keys stay 0600). A missing source is an empty tree.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)?;
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[derive(Default)]
struct Counters {
    written: AtomicUsize,
    unchanged: AtomicUsize,
    started: AtomicUsize,
    restarted: AtomicUsize,
    enabled: AtomicUsize,
    packages: AtomicUsize,
    /// (phase + step label + reason) -> hosts
    not_done: Mutex<BTreeMap<(String, String), Vec<String>>>,
}

impl Engine {
    /// The phases `sel` picks, in playbook order; unknown names are a usage error.
    pub fn select(&self, sel: &PhaseSelection) -> Result<Vec<Phase>, RunError> {
        select(&self.playbook, sel)
    }

    fn condition_holds(&self, c: Condition) -> bool {
        c.holds(&self.inventory)
    }

    fn hosts_with(&self, roles: &[Role]) -> Vec<String> {
        self.inventory
            .hosts
            .iter()
            .filter(|h| roles.iter().any(|r| h.has(*r)))
            .map(|h| h.name.clone())
            .collect()
    }

    fn emit(&self, e: Event) {
        self.observer.event(&e);
    }

    /// Run the selected phases. The lock is taken first (not for a dry run) and released at the
    /// end however the run ends.
    pub async fn run(&mut self, opts: &RunOptions) -> Result<RunSummary, RunError> {
        let start = Instant::now();
        let phases = self.select(&opts.selection)?;
        let mut bundle = Bundle::open(self.inventory.bundle.as_deref())
            .map_err(|e| RunError::Prepare(e.to_string()))?;
        // Required binaries are checked before any host is touched.
        for phase in &phases {
            for action in &phase.actions {
                if let super::playbook::Action::Artifact(a) = action
                    && !a.optional
                    && phase.when.is_none_or(|c| self.condition_holds(c))
                    && !self.hosts_with(&phase.on).is_empty()
                {
                    bundle
                        .verify(&phase.name, &a.file)
                        .map_err(|e| RunError::Prepare(e.to_string()))?;
                }
            }
        }
        self.inventory.etcd_cluster_token =
            crate::pki::cluster_token::load(&self.inventory.pki_dir)
                .map_err(|e| RunError::Prepare(e.to_string()))?;

        let owner = LockOwner::current();
        let locked = if opts.dry_run {
            Vec::new()
        } else {
            self.lock_all(&owner, opts).await?
        };
        let result = self.run_phases(&phases, opts, &mut bundle).await;
        for session in locked {
            let _ = lock::release(&session, &owner).await;
        }
        let counters = result?;
        let not_done = counters
            .not_done
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|((label, reason), hosts)| format!("{label} on {}: {reason}", hosts.join(", ")))
            .collect();
        Ok(RunSummary {
            dry_run: opts.dry_run,
            phases_run: phases.iter().map(|p| p.name.clone()).collect(),
            files_written: counters.written.load(Ordering::Relaxed),
            files_unchanged: counters.unchanged.load(Ordering::Relaxed),
            services_started: counters.started.load(Ordering::Relaxed),
            services_restarted: counters.restarted.load(Ordering::Relaxed),
            services_enabled: counters.enabled.load(Ordering::Relaxed),
            packages_installed: counters.packages.load(Ordering::Relaxed),
            not_done,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    async fn lock_all(
        &self,
        owner: &LockOwner,
        opts: &RunOptions,
    ) -> Result<Vec<Arc<Session>>, RunError> {
        let items: Vec<(String, LockJob)> = self
            .inventory
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    (
                        self.pool.clone(),
                        self.targets[&h.name].clone(),
                        owner.clone(),
                        opts.break_lock,
                    ),
                )
            })
            .collect();
        let results = fanout::run(
            items,
            opts.concurrency,
            &self.cancel,
            |(pool, target, owner, force)| async move {
                let session = pool.get(&target).await.map_err(|e| e.to_string())?;
                let took_over = lock::take(&session, &owner, force)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((session, took_over))
            },
        )
        .await;
        let mut taken = Vec::new();
        let mut failures = Vec::new();
        for (host, r) in results {
            match r {
                Ok((session, took_over)) => {
                    if took_over {
                        self.emit(Event::Note {
                            phase: "lock".into(),
                            message: format!(
                                "{host}: took over a stale lock left by an earlier run on this machine"
                            ),
                        });
                    }
                    taken.push(session)
                }
                Err(e) => failures.push(HostFailure {
                    host,
                    step: "lock".into(),
                    error: fanout_text(e),
                    stderr_tail: None,
                }),
            }
        }
        if self.cancel.is_cancelled() {
            for s in &taken {
                let _ = lock::release(s, owner).await;
            }
            return Err(RunError::Interrupted);
        }
        if !failures.is_empty() {
            for s in &taken {
                let _ = lock::release(s, owner).await;
            }
            return Err(RunError::Hosts {
                phase: "lock".into(),
                failures,
            });
        }
        Ok(taken)
    }

    async fn run_phases(
        &mut self,
        phases: &[Phase],
        opts: &RunOptions,
        bundle: &mut Bundle,
    ) -> Result<Arc<Counters>, RunError> {
        let counters = Arc::new(Counters::default());
        let mut rendered: Option<BTreeMap<String, Vec<RenderedFile>>> = None;
        for phase in phases {
            if self.cancel.is_cancelled() {
                return Err(RunError::Interrupted);
            }
            if let Some(c) = phase.when
                && !self.condition_holds(c)
            {
                self.emit(Event::PhaseSkipped {
                    phase: phase.name.clone(),
                    reason: c.unmet().to_string(),
                });
                continue;
            }
            let started = Instant::now();
            let outcome = match phase.run {
                Some(step) => {
                    self.emit(Event::PhaseStarted {
                        phase: phase.name.clone(),
                        title: phase.title.clone(),
                        hosts: Vec::new(),
                    });
                    let r = self.operator_step(phase, step, opts).await;
                    // The PKI (and the etcd token) may have changed: render again.
                    rendered = None;
                    r
                }
                None => {
                    let hosts = self.hosts_with(&phase.on);
                    if hosts.is_empty() {
                        self.emit(Event::PhaseSkipped {
                            phase: phase.name.clone(),
                            reason: "no host has these roles".into(),
                        });
                        continue;
                    }
                    if rendered.is_none() {
                        rendered = Some(
                            crate::render::render_all(&self.inventory, &self.templates)
                                .map_err(|e| RunError::Operator {
                                    phase: phase.name.clone(),
                                    error: e.to_string(),
                                })?
                                .into_iter()
                                .collect(),
                        );
                    }
                    self.emit(Event::PhaseStarted {
                        phase: phase.name.clone(),
                        title: phase.title.clone(),
                        hosts: hosts.clone(),
                    });
                    let files = rendered.as_ref().expect("rendered above");
                    self.host_phase(phase, &hosts, files, bundle, opts, &counters)
                        .await
                }
            };
            self.emit(Event::PhaseFinished {
                phase: phase.name.clone(),
                seconds: started.elapsed().as_secs_f64(),
                ok: outcome.is_ok(),
            });
            outcome?;
        }
        Ok(counters)
    }

    async fn operator_step(
        &mut self,
        phase: &Phase,
        step: OperatorStep,
        opts: &RunOptions,
    ) -> Result<(), RunError> {
        let note = |message: String| Event::Note {
            phase: phase.name.clone(),
            message,
        };
        match step {
            OperatorStep::Preflight => {
                let targets: Vec<HostTarget> = self
                    .inventory
                    .hosts
                    .iter()
                    .map(|h| self.targets[&h.name].clone())
                    .collect();
                let (obs, op) = preflight::gather::gather(
                    &self.inventory,
                    self.pool.clone(),
                    targets,
                    opts.concurrency,
                    &self.cancel,
                )
                .await;
                if self.cancel.is_cancelled() {
                    return Err(RunError::Interrupted);
                }
                let report =
                    preflight::evaluate(&self.inventory, &obs, &op, &opts.ignore_preflight);
                self.emit(note(format!(
                    "{} host(s): {} passed, {} warning(s), {} failure(s)",
                    self.inventory.hosts.len(),
                    report.count(preflight::Status::Pass),
                    report.count(preflight::Status::Warn),
                    report.count(preflight::Status::Fail)
                )));
                if report.failed() && opts.dry_run {
                    let failed: Vec<String> = report
                        .findings
                        .iter()
                        .filter(|f| f.status == preflight::Status::Fail)
                        .map(|f| format!("{} on {}", f.check, f.host))
                        .collect();
                    self.emit(note(format!(
                        "a real run would stop here: {}",
                        failed.join(", ")
                    )));
                } else if report.failed() {
                    return Err(RunError::Preflight {
                        report: Box::new(report),
                    });
                }
            }
            OperatorStep::Pki => {
                let real = self.inventory.pki_dir.clone();
                if opts.dry_run {
                    // The PKI is built in a scratch copy, so the plan shows every certificate
                    // file as it would land, while the real PKI dir stays untouched.
                    let scratch = std::env::temp_dir()
                        .join(format!("kinit-dry-run-pki-{}", std::process::id()));
                    let _ = std::fs::remove_dir_all(&scratch);
                    copy_tree(&real, &scratch).map_err(|e| RunError::Operator {
                        phase: phase.name.clone(),
                        error: format!("copying {} for the dry run: {e}", real.display()),
                    })?;
                    self.scratch_pki = Some(scratch.clone());
                    self.inventory.pki_dir = scratch;
                }
                let report = crate::pki::generate(
                    &self.inventory,
                    &crate::pki::Mode::Generate,
                    SystemTime::now(),
                )
                .map_err(|e| RunError::Operator {
                    phase: phase.name.clone(),
                    error: e.to_string(),
                })?;
                let token = crate::pki::cluster_token::load_or_create(
                    &self.inventory.pki_dir,
                    &self.inventory.name,
                )
                .map_err(|e| RunError::Operator {
                    phase: phase.name.clone(),
                    error: e.to_string(),
                })?;
                self.inventory.etcd_cluster_token = Some(token);
                let count = |f: fn(&crate::pki::Action) -> bool| {
                    report.events.iter().filter(|e| f(&e.action)).count()
                };
                let verb = if opts.dry_run { "would be " } else { "" };
                self.emit(note(format!(
                    "{}: {} {verb}created, {} {verb}re-issued, {} kept; {} file(s) {verb}written",
                    real.display(),
                    count(|a| matches!(a, crate::pki::Action::Created)),
                    count(|a| matches!(a, crate::pki::Action::Reissued(_))),
                    count(|a| matches!(a, crate::pki::Action::Kept)),
                    report.files_written
                )));
            }
        }
        Ok(())
    }

    async fn host_phase(
        &self,
        phase: &Phase,
        hosts: &[String],
        rendered: &BTreeMap<String, Vec<RenderedFile>>,
        bundle: &mut Bundle,
        opts: &RunOptions,
        counters: &Arc<Counters>,
    ) -> Result<(), RunError> {
        let mut items = Vec::new();
        for host in hosts {
            let mut inputs = StepInputs {
                phase: &phase.name,
                host,
                rendered: rendered.get(host).map(Vec::as_slice).unwrap_or_default(),
                pki_dir: &self.inventory.pki_dir,
                bundle,
            };
            let steps =
                steps::for_host(&phase.actions, &mut inputs).map_err(|e| RunError::Operator {
                    phase: phase.name.clone(),
                    error: format!("{host}: {e}"),
                })?;
            items.push((
                host.clone(),
                HostJob {
                    phase: phase.name.clone(),
                    host: host.clone(),
                    target: self.targets[host].clone(),
                    steps,
                    pool: self.pool.clone(),
                    observer: self.observer.clone(),
                    counters: counters.clone(),
                    dry_run: opts.dry_run,
                },
            ));
        }
        let results = fanout::run(items, opts.concurrency, &self.cancel, |job: HostJob| {
            job.run()
        })
        .await;
        if self.cancel.is_cancelled() {
            return Err(RunError::Interrupted);
        }
        let failures: Vec<HostFailure> = results
            .into_iter()
            .filter_map(|(host, r)| match r {
                Ok(()) => None,
                Err(FanoutError::Failed(f)) => Some(f),
                Err(FanoutError::Cancelled) => Some(HostFailure {
                    host,
                    step: "?".into(),
                    error: "cancelled".into(),
                    stderr_tail: None,
                }),
                Err(FanoutError::Panicked(p)) => Some(HostFailure {
                    host,
                    step: "?".into(),
                    error: format!("internal error: {p}"),
                    stderr_tail: None,
                }),
            })
            .collect();
        if !failures.is_empty() {
            return Err(RunError::Hosts {
                phase: phase.name.clone(),
                failures,
            });
        }
        for wait in &phase.wait {
            self.wait(phase, hosts, wait, bundle, opts).await?;
        }
        Ok(())
    }

    async fn wait(
        &self,
        phase: &Phase,
        hosts: &[String],
        wait: &Wait,
        bundle: &Bundle,
        opts: &RunOptions,
    ) -> Result<(), RunError> {
        let inv = &self.inventory;
        let address = |h: &String| inv.host(h).map(|x| x.address).expect("inventory host");
        let (what, result) = match wait {
            Wait::Tcp(t) => (
                format!("port {} on {}", t.port, hosts.join(", ")),
                if opts.dry_run {
                    None
                } else {
                    Some(
                        verify::tcp(
                            hosts
                                .iter()
                                .map(|h| (h.clone(), std::net::SocketAddr::new(address(h), t.port)))
                                .collect(),
                            t.timeout,
                        )
                        .await,
                    )
                },
            ),
            Wait::EtcdHealthy(t) => (
                "every etcd member healthy over mTLS".to_string(),
                if let Some(lacking) = lacking(bundle, &t.needs) {
                    self.emit(Event::Note {
                        phase: phase.name.clone(),
                        message: format!(
                            "not waiting for etcd: the kubelet that runs it as a static pod is not started (the bundle lacks {lacking})"
                        ),
                    });
                    return Ok(());
                } else if opts.dry_run {
                    None
                } else {
                    let tls = crate::etcd::ClientTls::from_pki_dir(&inv.pki_dir).map_err(|e| {
                        RunError::Operator {
                            phase: phase.name.clone(),
                            error: e.to_string(),
                        }
                    })?;
                    Some(verify::etcd_healthy(inv, &tls, t.timeout).await)
                },
            ),
            Wait::Vip(t) => (
                format!(
                    "the VIP {} on one host, answering on port {}",
                    inv.endpoint.address, inv.endpoint.port
                ),
                if opts.dry_run {
                    None
                } else {
                    let targets: Vec<(String, HostTarget)> = hosts
                        .iter()
                        .map(|h| (h.clone(), self.targets[h].clone()))
                        .collect();
                    Some(verify::vip(inv, &self.pool, &targets, t.timeout).await)
                },
            ),
            Wait::Https(w) => {
                let what = format!(
                    "https://<host>:{}{} on {}",
                    w.port,
                    w.path,
                    hosts.join(", ")
                );
                if let Some(lacking) = lacking(bundle, &w.needs) {
                    self.emit(Event::Note {
                        phase: phase.name.clone(),
                        message: format!(
                            "not waiting for {what}: nothing serves it until a kubelet runs (the bundle lacks {lacking})"
                        ),
                    });
                    return Ok(());
                }
                (
                    what,
                    if opts.dry_run {
                        None
                    } else {
                        let ca = std::fs::read(inv.pki_dir.join("ca.crt")).map_err(|e| {
                            RunError::Operator {
                                phase: phase.name.clone(),
                                error: format!("reading the cluster CA: {e}"),
                            }
                        })?;
                        Some(
                            verify::https(
                                hosts.iter().map(|h| (h.clone(), address(h))).collect(),
                                w.port,
                                &w.path,
                                &ca,
                                w.timeout,
                            )
                            .await,
                        )
                    },
                )
            }
        };
        match result {
            None => {
                self.emit(Event::Note {
                    phase: phase.name.clone(),
                    message: format!("would wait for {what}"),
                });
                Ok(())
            }
            Some(Ok(detail)) => {
                self.emit(Event::Note {
                    phase: phase.name.clone(),
                    message: detail,
                });
                Ok(())
            }
            Some(Err(error)) => Err(RunError::Wait {
                phase: phase.name.clone(),
                what,
                error,
            }),
        }
    }
}

/// The phases `sel` picks, in playbook order; unknown names are a usage error.
pub fn select(book: &Playbook, sel: &PhaseSelection) -> Result<Vec<Phase>, RunError> {
    let names: Vec<&str> = book.phases.iter().map(|p| p.name.as_str()).collect();
    let check = |n: &str| {
        if names.contains(&n) {
            Ok(())
        } else {
            Err(RunError::Usage(format!(
                "no phase `{n}` in playbook {}; phases: {}",
                book.name,
                names.join(", ")
            )))
        }
    };
    for n in sel.skip.iter().chain(&sel.only).chain(&sel.from) {
        check(n)?;
    }
    let mut started = sel.from.is_none();
    Ok(book
        .phases
        .iter()
        .filter(|p| {
            if sel.from.as_deref() == Some(p.name.as_str()) {
                started = true;
            }
            started && !sel.skip.contains(&p.name) && sel.only.as_ref().is_none_or(|o| *o == p.name)
        })
        .cloned()
        .collect())
}

/// What taking the lock on one host needs: the pool, the host, who takes it, and whether any
/// lock is replaced.
type LockJob = (Arc<Pool>, HostTarget, LockOwner, bool);

/// The `needs` the bundle does not hold, listed; None when it holds them all.
fn lacking(bundle: &Bundle, needs: &[String]) -> Option<String> {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|n| !bundle.has(n))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

fn fanout_text(e: FanoutError<String>) -> String {
    match e {
        FanoutError::Failed(s) => s,
        other => other.to_string(),
    }
}

/// One host's steps in one phase.
struct HostJob {
    phase: String,
    host: String,
    target: HostTarget,
    steps: Vec<Step>,
    pool: Arc<Pool>,
    observer: Arc<dyn Observer>,
    counters: Arc<Counters>,
    dry_run: bool,
}

impl HostJob {
    async fn run(self) -> Result<(), HostFailure> {
        let fail = |step: &str, e: HostOpError| HostFailure {
            host: self.host.clone(),
            step: step.to_string(),
            stderr_tail: e.stderr_tail(),
            error: e.to_string(),
        };
        let session = self
            .pool
            .get(&self.target)
            .await
            .map_err(|e| fail("connect", HostOpError::Ssh(e)))?;
        // Units the files of this (dry) run would restart.
        let mut would_restart: BTreeSet<String> = BTreeSet::new();
        for step in &self.steps {
            let label = step.label();
            self.observer.event(&Event::StepStarted {
                phase: self.phase.clone(),
                host: self.host.clone(),
                step: label.clone(),
            });
            let result = self.step(&session, step, &mut would_restart).await;
            match result {
                Ok((detail, changed)) => self.observer.event(&Event::StepFinished {
                    phase: self.phase.clone(),
                    host: self.host.clone(),
                    step: label,
                    detail,
                    changed,
                }),
                Err(e) => {
                    let failure = fail(&label, e);
                    self.observer.event(&Event::StepFailed {
                        phase: self.phase.clone(),
                        host: self.host.clone(),
                        step: label,
                        error: failure.error.clone(),
                    });
                    return Err(failure);
                }
            }
        }
        Ok(())
    }

    async fn step(
        &self,
        session: &Arc<Session>,
        step: &Step,
        would_restart: &mut BTreeSet<String>,
    ) -> Result<(String, bool), HostOpError> {
        let c = &self.counters;
        match step {
            Step::Skipped { label, reason } => {
                // Skipped files and binaries follow from a service not started: that is what the
                // summary names.
                if label.starts_with("service ") {
                    let mut not_done = c.not_done.lock().expect("not poisoned");
                    let hosts = not_done
                        .entry((format!("{}: {label}", self.phase), reason.clone()))
                        .or_default();
                    hosts.push(self.host.clone());
                    hosts.sort();
                }
                Ok((format!("skipped: {reason}"), false))
            }
            Step::Packages(p) => {
                let said = host_ops::ensure_packages(session, p, self.dry_run).await?;
                let changed = said != "present";
                if said.starts_with("installed") {
                    c.packages
                        .fetch_add(said.split_whitespace().count() - 1, Ordering::Relaxed);
                }
                let detail = match said.strip_prefix("missing") {
                    Some(m) if self.dry_run => format!("would install{m}"),
                    _ => said,
                };
                Ok((detail, changed))
            }
            Step::Put { files, .. } => self.put(session, files, would_restart).await,
            Step::Unit {
                unit,
                enable,
                start,
                no_block,
            } => {
                let req = UnitRequest {
                    unit,
                    enable: *enable,
                    keep_running: *start == StartPolicy::Always,
                    no_block: *no_block,
                };
                let (mut change, enabled) =
                    host_ops::ensure_unit(session, &req, self.dry_run).await?;
                if self.dry_run && change == UnitChange::None && would_restart.contains(unit) {
                    change = UnitChange::Restarted;
                }
                if enabled {
                    c.enabled.fetch_add(1, Ordering::Relaxed);
                }
                let (verb, counter) = match change {
                    UnitChange::None => ("running, unchanged", None),
                    UnitChange::Started => ("started", Some(&c.started)),
                    UnitChange::Restarted => ("restarted (an input changed)", Some(&c.restarted)),
                };
                if let Some(n) = counter {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                let mut detail = if self.dry_run && counter.is_some() {
                    format!("would be {verb}")
                } else if *start == StartPolicy::OnChange && change == UnitChange::None {
                    "unchanged".to_string()
                } else {
                    verb.to_string()
                };
                if enabled {
                    detail.push_str(if self.dry_run {
                        ", would be enabled"
                    } else {
                        ", enabled"
                    });
                }
                Ok((detail, counter.is_some() || enabled))
            }
            Step::Command { run, unless } => {
                let ran = host_ops::command(session, run, unless.as_deref(), self.dry_run).await?;
                Ok((
                    match (ran, self.dry_run) {
                        (false, _) => "not needed (`unless` holds)".into(),
                        (true, true) => "would run".into(),
                        (true, false) => "ran".into(),
                    },
                    ran,
                ))
            }
        }
    }

    async fn put(
        &self,
        session: &Arc<Session>,
        files: &[PutFile],
        would_restart: &mut BTreeSet<String>,
    ) -> Result<(String, bool), HostOpError> {
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let states = host_ops::stat_files(session, &paths).await?;
        let mut changed: Vec<(&PutFile, bool)> = Vec::new();
        for (f, state) in files.iter().zip(&states) {
            let same = state.as_ref().is_some_and(|s| {
                s.sha256.eq_ignore_ascii_case(&f.sha256) && s.mode == f.mode && s.owner == f.owner
            });
            if !same {
                changed.push((f, state.is_none()));
            }
        }
        let unchanged = files.len() - changed.len();
        let c = &self.counters;
        c.unchanged.fetch_add(unchanged, Ordering::Relaxed);
        let units = steps::units_restarted_by(&changed.iter().map(|(f, _)| *f).collect::<Vec<_>>());
        if self.dry_run {
            would_restart.extend(units);
            c.written.fetch_add(changed.len(), Ordering::Relaxed);
            if changed.is_empty() {
                return Ok((format!("{unchanged} unchanged"), false));
            }
            let list: Vec<String> = changed
                .iter()
                .map(|(f, new)| format!("{} ({})", f.path, if *new { "new" } else { "changed" }))
                .collect();
            return Ok((
                format!("would write {}; {unchanged} unchanged", list.join(", ")),
                true,
            ));
        }
        // Noted before writing: a run cut short after the write still restarts next time.
        host_ops::mark_pending(session, &units).await?;
        for (f, _) in &changed {
            let spec = FileSpec::new(f.mode, Some(&f.owner));
            match &f.content {
                Content::Bytes(bytes) => {
                    let mut reader: &[u8] = bytes;
                    session
                        .write_from(&mut reader, &f.sha256, &f.path, &spec)
                        .await?;
                }
                Content::Local(path) => {
                    let mut file =
                        tokio::fs::File::open(path)
                            .await
                            .map_err(|e| HostOpError::Failed {
                                summary: format!("cannot read {}: {e}", path.display()),
                                stderr: String::new(),
                            })?;
                    session
                        .write_from(&mut file, &f.sha256, &f.path, &spec)
                        .await?;
                }
            }
        }
        c.written.fetch_add(changed.len(), Ordering::Relaxed);
        Ok((
            format!("{} written, {unchanged} unchanged", changed.len()),
            !changed.is_empty(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sel: PhaseSelection) -> Result<Vec<String>, String> {
        let book = super::super::playbook::load("stacked", None).unwrap();
        select(&book, &sel)
            .map(|phases| phases.into_iter().map(|p| p.name).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn phases_are_picked_by_skip_only_and_from() {
        assert_eq!(names(PhaseSelection::default()).unwrap().len(), 8);
        assert_eq!(
            names(PhaseSelection {
                from: Some("load-balancer".into()),
                ..Default::default()
            })
            .unwrap(),
            ["load-balancer", "control-plane"]
        );
        assert_eq!(
            names(PhaseSelection {
                only: Some("etcd".into()),
                ..Default::default()
            })
            .unwrap(),
            ["etcd"]
        );
        assert_eq!(
            names(PhaseSelection {
                skip: vec!["preflight".into(), "time-sync".into()],
                from: Some("pki".into()),
                ..Default::default()
            })
            .unwrap(),
            [
                "pki",
                "certificates",
                "etcd",
                "etcd-static-pod",
                "load-balancer",
                "control-plane"
            ]
        );
        let err = names(PhaseSelection {
            skip: vec!["etdc".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.starts_with("no phase `etdc` in playbook stacked; phases: preflight, pki"),
            "{err}"
        );
    }
}
