//! Runs the playbook: phases in order; a phase's hosts in parallel (up to a limit), each host's
//! steps in order; then the phase's waits. A phase that fails on any host stops the run once
//! every host of that phase is done; the failure names the host, the step and what the host said.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::cluster_lock::{self, LockFailure};
use super::event::Event;
use super::host_job::{DryNotes, HostFailure, HostJob};
use super::host_ops::{HostOpError, SshHost};
use super::lock::LockOwner;
use super::operator;
use super::outcome::StepOutcome;
use super::outcome::{RunSummary, Tally};
use super::phase_runner::{self, DryRun, Interrupted, RunPhase};
use super::pki_workspace::PkiWorkspace;
use super::plan::{self, PlanInputs};
use super::playbook::{OperatorStep, Phase};
use super::select::select;
use super::up_phase::{RenewalContext, UpPhase};
use super::waits;
use crate::bundle::Bundle;
use crate::fanout::{self, FanoutError};
use crate::inventory::Inventory;
use crate::ssh::{HostTarget, Pool};

pub use super::run_context::{Engine, RunOptions};
use super::run_context::{JobOptions, RunState, phase_components};
pub use super::run_error::{OperatorError, RunError};

impl Engine {
    /// Run the selected phases. The lock is taken first (not for a dry run) and released at the
    /// end however the run ends.
    pub async fn run(&mut self, opts: &RunOptions) -> Result<RunSummary, RunError> {
        let start = Instant::now();
        let phases = select(&self.playbook, &opts.selection)?;
        let mut bundle = Bundle::open(self.inventory.bundle.as_deref())?;
        // Every binary the selected phases upload is checked before any host is touched.
        for phase in &phases {
            for c in phase_components(phase) {
                if !c.hosts(&self.inventory).is_empty() && c.lacking(&bundle).is_empty() {
                    let present: Vec<_> = c
                        .binaries
                        .iter()
                        .filter(|b| !b.optional || bundle.has(b.file))
                        .collect();
                    for b in present {
                        bundle.verify(&phase.name, b.file)?;
                    }
                }
            }
        }
        self.inventory.etcd_cluster_token =
            crate::pki::cluster_token::load(&self.inventory.pki_dir)
                .map_err(RunError::ClusterToken)?;

        let owner = LockOwner::current("up");
        let locked = if opts.dry_run {
            Vec::new()
        } else {
            cluster_lock::take_all(
                &self.pool,
                &self.targets,
                &owner,
                opts.break_lock,
                opts.concurrency,
                &self.cancel,
                self.observer.as_ref(),
            )
            .await
            .map_err(|e| match e {
                LockFailure::Interrupted => RunError::Interrupted,
                LockFailure::Hosts(failures) => RunError::Hosts {
                    phase: "lock".into(),
                    failures,
                },
            })?
        };
        let checked = match self.check_joins(&phases).await {
            Ok(()) => self.check_etcd_version(&phases, &mut bundle).await,
            refused => refused,
        };
        let checked = match checked {
            Ok(()) => self.check_kubernetes_version(&phases, &mut bundle).await,
            Err(refused) => Err(refused),
        };
        let upgrading = match checked {
            Ok(upgrading) => upgrading,
            Err(e) => {
                cluster_lock::release_all(&locked, &owner).await;
                return Err(e);
            }
        };
        let (phases, moved) = super::playbook::for_run(phases, upgrading);
        for (phase, message) in moved {
            self.emit(Event::Note { phase, message });
        }
        let mut state = RunState {
            upgrading,
            bundle,
            pki: PkiWorkspace::real(&self.inventory.pki_dir),
            rendered: None,
            tally: Tally::default(),
            dry_notes: BTreeMap::new(),
        };
        let renewal = self.renew.take();
        let listed = UpPhase::list(renewal.as_ref(), &phases);
        let result = self.run_phases(&listed, opts, &mut state).await;
        cluster_lock::release_all(&locked, &owner).await;
        result?;
        Ok(state.tally.finish(
            opts.dry_run,
            listed
                .iter()
                .map(|p| RunPhase::<UpRun<'_>>::name(p).to_string())
                .collect(),
            start.elapsed().as_secs_f64(),
        ))
    }

    async fn run_phases(
        &mut self,
        phases: &[UpPhase<'_, Phase>],
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let (observer, cancel) = (self.observer.clone(), self.cancel.clone());
        let mut run = UpRun {
            engine: self,
            opts,
            state,
        };
        // Up's phases know a dry run themselves (every host says what would change).
        phase_runner::run_phases(&mut run, phases, false, observer.as_ref(), &cancel).await
    }

    /// The hosts a phase works on: all hosts for certificates, else those the table places its
    /// components on.
    fn hosts_of(&self, phase: &Phase) -> Vec<String> {
        let inv = &self.inventory;
        inv.hosts
            .iter()
            .filter(|h| phase.certificates || phase_components(phase).any(|c| c.runs_on(inv, h)))
            .map(|h| h.name.clone())
            .collect()
    }

    /// Why none of a phase's components runs here, in the config's words.
    fn absent_because(&self, phase: &Phase) -> String {
        let mut reasons: Vec<String> = phase_components(phase)
            .map(|c| c.absent_because(&self.inventory))
            .collect();
        reasons.dedup();
        reasons.join("; ")
    }

    async fn operator_phase(
        &mut self,
        phase: &Phase,
        step: OperatorStep,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        match step {
            OperatorStep::Preflight => {
                let targets: Vec<HostTarget> = self
                    .inventory
                    .hosts
                    .iter()
                    .map(|h| self.targets[&h.name].clone())
                    .collect();
                let note =
                    operator::preflight(&self.inventory, &self.pool, targets, opts, &self.cancel)
                        .await?;
                for message in note {
                    self.emit(Event::Note {
                        phase: phase.name.clone(),
                        message,
                    });
                }
            }
            OperatorStep::Pki => {
                if opts.dry_run {
                    state.pki = PkiWorkspace::scratch_copy(&self.inventory.pki_dir)
                        .map_err(|e| RunError::operator(phase, e))?;
                }
                let (token, message) = operator::pki(&self.inventory, &state.pki, opts.dry_run)
                    .map_err(|e| RunError::operator(phase, e))?;
                self.inventory.etcd_cluster_token = Some(token);
                // The PKI and the etcd token may have changed: render again.
                state.rendered = None;
                self.emit(Event::Note {
                    phase: phase.name.clone(),
                    message,
                });
            }
            // The cluster steps: each makes one note of what it did or found.
            OperatorStep::NodesReady | OperatorStep::ClusterDns | OperatorStep::ClusterAdmins => {
                let (inv, bundle) = (&self.inventory, &state.bundle);
                let message = match step {
                    OperatorStep::NodesReady => {
                        operator::nodes_ready(inv, bundle, opts, &self.cancel).await
                    }
                    OperatorStep::ClusterDns => {
                        operator::cluster_dns(inv, bundle, opts, &self.cancel).await
                    }
                    OperatorStep::ClusterAdmins => {
                        operator::cluster_admins(inv, bundle, opts).await
                    }
                    OperatorStep::Preflight | OperatorStep::Pki => unreachable!("matched above"),
                }
                .map_err(|e| RunError::operator(phase, e))?;
                self.emit(Event::Note {
                    phase: phase.name.clone(),
                    message,
                });
            }
        }
        Ok(())
    }

    async fn host_phase(
        &self,
        phase: &Phase,
        hosts: &[String],
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        self.converge(phase, hosts, opts, state).await?;
        self.wait_for(phase, hosts, opts, state).await
    }

    /// Bring `hosts` to the phase's state: in parallel (one at a time for a `serial` phase),
    /// except that the restarts of a component the table marks rolling go one host at a time
    /// behind health checks ([`super::rolling`]).
    pub(super) async fn converge(
        &self,
        phase: &Phase,
        hosts: &[String],
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let rolling = super::rolling::RollingPhase::of(phase);
        match rolling {
            super::rolling::RollingPhase::No => {
                let jobs = JobOptions::visible(opts, false, phase.serial);
                self.run_jobs(phase, hosts, &jobs, state).await?;
                Ok(())
            }
            super::rolling::RollingPhase::Units => self.roll_units(phase, hosts, opts, state).await,
            super::rolling::RollingPhase::StaticPods(rolling) => {
                self.roll_static_pods(phase, hosts, rolling, opts, state)
                    .await
            }
        }
    }

    /// Run the phase's job on each of `hosts`; each host's outcomes (tallied), or the failures.
    pub(super) async fn run_jobs(
        &self,
        phase: &Phase,
        hosts: &[String],
        jobs: &JobOptions,
        state: &mut RunState,
    ) -> Result<Vec<(String, Vec<StepOutcome>)>, RunError> {
        if state.rendered.is_none() {
            let all =
                crate::render::render_all_from(&self.inventory, state.pki.dir(), &self.templates)
                    .map_err(|e| RunError::operator(phase, e))?;
            state.rendered = Some(all.into_iter().collect());
        }
        let rendered = state.rendered.as_ref().expect("rendered above");
        let mut inputs = PlanInputs {
            inventory: &self.inventory,
            pki_dir: state.pki.dir(),
            bundle: &mut state.bundle,
        };
        let mut items = Vec::new();
        for name in hosts {
            let host = self.inventory.host(name).expect("an inventory host");
            let files = rendered.get(name).map(Vec::as_slice).unwrap_or_default();
            let steps = plan::for_host(phase, host, files, &mut inputs).map_err(|source| {
                RunError::operator(
                    phase,
                    OperatorError::Plan {
                        host: name.clone(),
                        source,
                    },
                )
            })?;
            let carried = state.dry_notes.entry(name.clone()).or_default();
            // A look ahead starts from what the run carries but keeps its own notes to itself.
            let dry_notes = match (jobs.dry_run, jobs.quiet, jobs.run_dry) {
                (false, _, _) | (true, true, false) => DryNotes::default(),
                (true, true, true) => Arc::new(std::sync::Mutex::new(
                    carried.lock().expect("not poisoned").clone(),
                )),
                (true, false, _) => carried.clone(),
            };
            let job = HostJob {
                phase: phase.name.clone(),
                host: name.clone(),
                steps,
                dry_run: jobs.dry_run,
                hold_restarts: jobs.hold_restarts,
                dry_notes,
                observer: if jobs.quiet {
                    Arc::new(super::event::Quiet)
                } else {
                    self.observer.clone()
                },
            };
            items.push((
                name.clone(),
                (job, self.pool.clone(), self.targets[name].clone()),
            ));
        }
        let results = fanout::run(
            items,
            jobs.limit,
            &self.cancel,
            |(job, pool, target): (HostJob, Arc<Pool>, HostTarget)| async move {
                let session = pool
                    .get(&target)
                    .await
                    .map_err(|e| HostFailure::new(&job.host, "connect", &HostOpError::Ssh(e)))?;
                job.run(&SshHost(session)).await
            },
        )
        .await;
        if self.cancel.is_cancelled() {
            return Err(RunError::Interrupted);
        }
        let mut done =
            tally_results(phase, results, jobs, &mut state.tally).map_err(|failures| {
                RunError::Hosts {
                    phase: phase.name.clone(),
                    failures,
                }
            })?;
        // Config order, whatever order the hosts finished in.
        done.sort_by_key(|(h, _)| self.inventory.hosts.iter().position(|x| &x.name == h));
        Ok(done)
    }

    /// The phase's `wait` checks on `hosts`.
    pub(super) async fn wait_for(
        &self,
        phase: &Phase,
        hosts: &[String],
        opts: &RunOptions,
        state: &RunState,
    ) -> Result<(), RunError> {
        for wait in &phase.wait {
            let ctx = waits::WaitContext {
                inventory: &self.inventory,
                pool: &self.pool,
                targets: &self.targets,
                bundle: &state.bundle,
                dry_run: opts.dry_run,
                cancel: &self.cancel,
            };
            if let Some(message) = waits::wait(phase, hosts, wait, &ctx).await? {
                self.emit(Event::Note {
                    phase: phase.name.clone(),
                    message,
                });
            }
        }
        Ok(())
    }
}

/// What each host's job ended with.
type JobResults = Vec<(String, Result<Vec<StepOutcome>, FanoutError<HostFailure>>)>;

/// Each host's outcomes (tallied unless the jobs were a look ahead), or every host's failure.
fn tally_results(
    phase: &Phase,
    results: JobResults,
    jobs: &JobOptions,
    tally: &mut Tally,
) -> Result<Vec<(String, Vec<StepOutcome>)>, Vec<HostFailure>> {
    let mut failures = Vec::new();
    let mut done = Vec::new();
    for (host, r) in results {
        match r {
            Ok(outcomes) => {
                if !jobs.quiet {
                    for o in &outcomes {
                        tally.add(&phase.name, &host, o);
                    }
                }
                done.push((host, outcomes));
            }
            Err(FanoutError::Failed(f)) => failures.push(f),
            Err(other) => failures.push(HostFailure {
                host,
                step: "?".into(),
                error: other.to_string(),
                stderr_tail: None,
            }),
        }
    }
    if failures.is_empty() {
        Ok(done)
    } else {
        Err(failures)
    }
}

/// What `up`'s phases run on: the engine, the run's options and what its phases share.
struct UpRun<'a> {
    engine: &'a mut Engine,
    opts: &'a RunOptions,
    state: &'a mut RunState,
}

impl RenewalContext for UpRun<'_> {
    fn inventory(&self) -> &Inventory {
        &self.engine.inventory
    }

    fn emit(&self, event: Event) {
        self.engine.emit(event)
    }
}

impl From<Interrupted> for RunError {
    fn from(_: Interrupted) -> Self {
        RunError::Interrupted
    }
}

impl RunPhase<UpRun<'_>> for Phase {
    type Error = RunError;

    fn name(&self) -> &str {
        &self.name
    }

    fn title(&self) -> &str {
        &self.title
    }

    fn hosts(&self, run: &UpRun<'_>) -> Vec<String> {
        if self.run.is_some() {
            Vec::new()
        } else {
            run.engine.hosts_of(self)
        }
    }

    fn skipped(&self, run: &UpRun<'_>) -> Option<String> {
        if self.upgrade_only && !run.state.upgrading {
            let names: Vec<&str> = phase_components(self).map(|c| c.name).collect();
            return Some(format!(
                "no Kubernetes upgrade in this run: {} converged in an earlier phase",
                names.join(", ")
            ));
        }
        (self.run.is_none() && run.engine.hosts_of(self).is_empty())
            .then(|| run.engine.absent_because(self))
    }

    fn dry_run(&self, _: &UpRun<'_>) -> DryRun {
        DryRun::Runs
    }

    async fn run(&self, run: &mut UpRun<'_>) -> Result<(), RunError> {
        let (engine, opts) = (&mut *run.engine, run.opts);
        let state = &mut *run.state;
        match self.run {
            Some(step) => engine.operator_phase(self, step, opts, state).await,
            None => {
                let hosts = engine.hosts_of(self);
                if super::etcd_join::joins_etcd(self) {
                    engine.etcd_phase(self, &hosts, opts, state).await
                } else {
                    if super::stray_backends::writes_haproxy(self) {
                        engine.report_stray_backends(self, &hosts).await;
                    }
                    engine.host_phase(self, &hosts, opts, state).await
                }
            }
        }
    }
}
