//! One turn of a roll: a host alone (guarded, written, drained, restarted, back before the
//! next), or workers together (`spec.rollout.maxUnavailableWorkers`): their files written at
//! once, every node cordoned and drained at once (PodDisruptionBudgets still decide each
//! eviction), their kubelets restarted together, and the turn over when every node is Ready
//! again. Only hosts that are nothing but workers go together: a control plane or an etcd host
//! always has a turn of its own, after the quorum guard or its apiserver's drain.

use super::super::playbook::Phase;
use super::super::run_context::{Engine, JobOptions, RunOptions, RunState};
use super::super::run_error::RunError;
use super::super::verify::WaitError;
use super::{RestartStep, UnitRoll, Unwritten, held_kind, node};
use crate::components::{ComponentId, GoesLast, Healthy, Rolling, component};
use crate::config::Role;
use crate::fanout::join_all;
use crate::planning::restart_order;

/// Where a roll is when a turn begins: the roll, its whole order, the host that goes last, the
/// node roll's API client, and the hosts done.
#[derive(Clone, Copy)]
pub(super) struct Turn<'a> {
    pub phase: &'a Phase,
    pub roll: UnitRoll<'a>,
    pub order: &'a [String],
    pub special: Option<&'a str>,
    pub node_roll: Option<&'a node::NodeRoll>,
    pub done: &'a [String],
}

impl Engine {
    /// Whether `host` runs a static-pod etcd member (component `etcd-static-pod`).
    fn runs_pod_member(&self, host: &crate::inventory::Host) -> bool {
        component(ComponentId::EtcdStaticPod).runs_on(&self.inventory, host)
    }

    /// Whether this cluster runs etcd as static pods (on some host).
    pub(super) fn runs_static_pod_etcd(&self) -> bool {
        self.inventory.hosts.iter().any(|h| self.runs_pod_member(h))
    }

    /// Whether `host`'s turn in `roll` may restart its static-pod etcd member: a roll whose
    /// table row says so (the kubelet's) on a host that runs one.
    fn restarts_pod_member(&self, roll: UnitRoll<'_>, host: &str) -> bool {
        roll.rolling.last == GoesLast::StaticPodEtcdLeader
            && self
                .inventory
                .host(host)
                .is_some_and(|h| self.runs_pod_member(h))
    }

    /// `order` in turns: one host each, except the workers of a node roll, which go together
    /// as many at a time as `spec.rollout.maxUnavailableWorkers` allows.
    pub(super) fn turns(&self, rolling: Rolling, order: &[String]) -> Vec<Vec<String>> {
        let inv = &self.inventory;
        let only_worker = |name: &str| {
            inv.host(name).is_some_and(|h| {
                h.has(Role::Worker) && !h.has(Role::ControlPlane) && !h.has(Role::Etcd)
            })
        };
        let size = if rolling.healthy == Healthy::NodeReady {
            // A share is of the cluster's workers, not only of those this roll restarts.
            let workers = inv.hosts.iter().filter(|h| only_worker(&h.name)).count();
            inv.rollout.max_unavailable_workers.of(workers)
        } else {
            1
        };
        restart_order::turns(order, only_worker, size)
    }

    /// One host's turn: guarded (etcd), written, drained, restarted, back.
    pub(super) async fn restart_one(
        &self,
        at: Turn<'_>,
        host: &str,
        unwritten: &mut Unwritten,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let Turn {
            phase,
            roll,
            order,
            special,
            node_roll,
            done,
        } = at;
        let kind = held_kind(roll.held, host);
        if roll.rolling.healthy == Healthy::EtcdMember || self.restarts_pod_member(roll, host) {
            self.before_member_restart(phase, host, special, done, opts.force)
                .await?;
        }
        if self.cancel.is_cancelled() {
            return Err(RunError::Interrupted);
        }
        // Before anything is drained or cordoned: a write that fails leaves the host serving.
        self.write_before_turn(phase, host, unwritten, opts, state)
            .await?;
        let drains = self
            .drain_before_restart(
                phase,
                roll.rolling.healthy,
                host,
                kind,
                node_roll.is_some(),
                state,
            )
            .await;
        let drained = drains.any();
        let step = RestartStep::begin(self, phase, host, roll.unit.name, kind);
        let visit = match node_roll {
            Some(nodes) => match self.node_leaves(nodes, phase, host).await {
                Ok(v) => Some(v),
                Err(e) => {
                    if drained {
                        self.undrain_after_failure(phase, host).await;
                    }
                    return step.end(self, Err(e), order);
                }
            },
            None => None,
        };
        let outcome = match self.apply_held(phase, host, roll.unit).await {
            Ok(outcome) => outcome,
            Err(e) => {
                if drained {
                    self.undrain_after_failure(phase, host).await;
                }
                return Err(e);
            }
        };
        state.tally.add(&phase.name, host, &outcome);
        let healthy = self
            .healthy_after_restart(
                phase,
                roll.rolling.healthy,
                host,
                visit.as_ref(),
                &drains,
                opts,
                state,
            )
            .await;
        if drained && healthy.is_err() {
            self.undrain_after_failure(phase, host).await;
        }
        step.end(self, healthy, order)
    }

    /// Workers' kubelets together: written, cordoned and drained, restarted, Ready again. A
    /// node that would not drain stops the turn before any kubelet restarts (the others are
    /// uncordoned again); a kubelet that fails leaves its batch's nodes cordoned by kinit, for
    /// the next run to finish.
    pub(super) async fn restart_workers_together(
        &self,
        at: Turn<'_>,
        batch: &[String],
        unwritten: &mut Unwritten,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let Turn {
            phase,
            roll,
            order,
            node_roll,
            ..
        } = at;
        let nodes = node_roll.expect("only a node roll has turns of several hosts");
        let write: Vec<String> = batch
            .iter()
            .filter(|h| unwritten.remove(h.as_str()))
            .cloned()
            .collect();
        if !write.is_empty() {
            let jobs = JobOptions::visible(opts, true, false);
            self.run_jobs(phase, &write, &jobs, state).await?;
        }
        let mut steps: Vec<RestartStep> = batch
            .iter()
            .map(|h| RestartStep::begin(self, phase, h, roll.unit.name, held_kind(roll.held, h)))
            .collect();
        let leaving = join_all(
            batch
                .iter()
                .map(|h| self.node_leaves(nodes, phase, h))
                .collect(),
        )
        .await;
        if let Some(i) = leaving.iter().position(Result::is_err) {
            for visit in leaving.iter().flatten() {
                self.node_stays(visit).await;
            }
            let error = leaving.into_iter().nth(i).and_then(Result::err);
            let error = error.unwrap_or(WaitError::Cancelled);
            return steps.swap_remove(i).end(self, Err(error), order);
        }
        let visits: Vec<node::NodeVisit> = leaving.into_iter().flatten().collect();
        self.restart_batch(phase, roll, batch, state).await?;
        let back = join_all(visits.iter().map(|v| self.node_back(v)).collect()).await;
        for (step, healthy) in steps.into_iter().zip(back) {
            step.end(self, healthy, order)?;
        }
        Ok(())
    }

    /// Every held restart of a batch at once; the first failure is the run's.
    async fn restart_batch(
        &self,
        phase: &Phase,
        roll: UnitRoll<'_>,
        batch: &[String],
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let outcomes = join_all(
            batch
                .iter()
                .map(|h| self.apply_held(phase, h, roll.unit))
                .collect(),
        )
        .await;
        let mut failed = None;
        for (host, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(o) => state.tally.add(&phase.name, host, &o),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }
}
