//! What one run of the engine works with: the options, the engine itself (inventory,
//! playbook, templates, SSH pool, observer, cancel token) and the state its phases share. The
//! phase modules (etcd_join, rolling, waits, operator, ...) read these; the runner, which calls
//! them, is above them all.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::event::{Event, Observer};
use super::host_job::DryNotes;
use super::outcome::Tally;
use super::pki_workspace::PkiWorkspace;
use super::playbook::{Phase, Playbook};
use super::select::PhaseSelection;
use super::up_phase::Renewal;
use crate::bundle::Bundle;
use crate::components::{self, Component};
use crate::inventory::Inventory;
use crate::preflight::IgnoreSet;
use crate::render::{RenderedFile, Templates};
use crate::ssh::{HostTarget, Pool};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub selection: PhaseSelection,
    pub dry_run: bool,
    pub concurrency: usize,
    pub ignore_preflight: IgnoreSet,
    /// How long each host's preflight probe may take.
    pub probe_timeout: std::time::Duration,
    /// Remove any lock, not only stale ones of this machine.
    pub break_lock: bool,
    /// Restart etcd members even when the quorum guard refuses (said as a warning).
    pub force: bool,
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
    /// Certificates renewed as the run's first phase (`kinit certs renew --rollout`).
    pub renew: Option<Renewal>,
}

/// What the phases of one run share.
pub(super) struct RunState {
    pub(super) bundle: Bundle,
    pub(super) pki: PkiWorkspace,
    /// Every host's files, rendered once and again after the PKI phase (and whenever the
    /// inventory's etcd bootstrap settings change).
    pub(super) rendered: Option<BTreeMap<String, Vec<RenderedFile>>>,
    pub(super) tally: Tally,
    /// A dry run's notes per host, carried from phase to phase.
    pub(super) dry_notes: BTreeMap<String, DryNotes>,
    /// The run moves the control plane to another Kubernetes release (`upgrade-only` phases run).
    pub(super) upgrading: bool,
}

impl Engine {
    pub(super) fn emit(&self, e: Event) {
        self.observer.event(&e);
    }
}

/// How [`Engine::run_jobs`] runs a phase's jobs.
pub(super) struct JobOptions {
    pub dry_run: bool,
    pub hold_restarts: bool,
    /// Hosts at once.
    pub limit: usize,
    /// A look ahead (what a run would restart): no events, nothing tallied.
    pub quiet: bool,
    /// The run itself is a dry run.
    pub run_dry: bool,
}

impl JobOptions {
    pub fn visible(opts: &RunOptions, hold_restarts: bool, serial: bool) -> JobOptions {
        JobOptions {
            dry_run: opts.dry_run,
            hold_restarts,
            limit: if serial { 1 } else { opts.concurrency },
            quiet: false,
            run_dry: opts.dry_run,
        }
    }

    /// A quiet dry run of every host at once.
    pub fn look_ahead(opts: &RunOptions) -> JobOptions {
        JobOptions {
            dry_run: true,
            hold_restarts: true,
            limit: opts.concurrency,
            quiet: true,
            run_dry: opts.dry_run,
        }
    }
}

/// The rows of the components a phase converges.
pub fn phase_components(phase: &Phase) -> impl Iterator<Item = &'static Component> + '_ {
    phase.converge.iter().map(|id| components::component(*id))
}
