//! Rolling restarts. A component the table marks rolling (etcd, haproxy, keepalived, static
//! pods) is restarted, reloaded or given its new manifest one host at a time, and a host that
//! restarts gets its files just before its turn (hosts with nothing to restart get theirs at
//! once): a roll that stops on a bad file leaves the hosts after it with the files they run.
//! The next host goes only once the last serves again (etcd:
//! member healthy and caught up with the leader; haproxy: frontend answering; keepalived: the
//! VIP on exactly one host; static pods: the phase's own waits). The etcd leader and the VIP
//! holder go last, and before each etcd restart the quorum guard asks whether etcd stays
//! writable without that member. The order and the guard's arithmetic are pure
//! ([`crate::planning::restart_order`]); this file carries them out.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::event::{Event, RestartKind, wall_clock};
use super::host_job::{HostFailure, decide};
use super::host_ops::{HostOpError, HostOps, SshHost, UnitAction};
use super::outcome::StepOutcome;
use super::playbook::Phase;
use super::run_context::{Engine, JobOptions, RunOptions, RunState, phase_components};
use super::run_error::RunError;
use super::verify::{self, WaitError};
use crate::components::{self, ComponentId, GoesLast, Healthy, Rolling, UnitRow};
use crate::etcd::{self, ClientTls};
use crate::host_paths;
use crate::planning::restart_order::{self, QuorumRefusal};

pub mod apiserver;
mod etcd_guard;
mod images;
mod kubelet_settle;
mod node;
mod static_pods;
mod turn;

use turn::Turn;

/// One etcd request.
const REQUEST: Duration = Duration::from_secs(2);
/// How long a restarted etcd member may take to serve and catch up.
const ETCD_BACK: Duration = Duration::from_secs(120);
/// How long haproxy or keepalived may take to serve again.
const LOAD_BALANCER_BACK: Duration = Duration::from_secs(30);

/// What a phase rolls.
pub enum RollingPhase {
    /// Nothing: hosts converge at once.
    No,
    /// Units: their restarts and reloads are held, then done one host at a time.
    Units,
    /// Static pods: a changed manifest is the restart, so hosts whose manifests change go one
    /// at a time (a first deploy, every manifest new, goes at once).
    StaticPods(&'static components::Component),
}

impl RollingPhase {
    pub fn of(phase: &Phase) -> RollingPhase {
        let rolling: Vec<&'static components::Component> = phase_components(phase)
            .filter(|c| c.rolling.is_some())
            .collect();
        if let Some(pods) = rolling.iter().find(|c| c.static_pod) {
            RollingPhase::StaticPods(pods)
        } else if rolling.is_empty() {
            RollingPhase::No
        } else {
            RollingPhase::Units
        }
    }
}

/// A host's look-ahead replaces its kube-apiserver manifest (not a first one).
fn replaces_apiserver(steps: &[StepOutcome]) -> bool {
    steps.iter().any(|o| {
        matches!(o, StepOutcome::Files { written, .. }
            if written.iter().any(|w| !w.new && w.path == host_paths::KUBE_APISERVER_MANIFEST))
    })
}

/// A rolling step that failed on a host.
fn unit_failed(phase: &Phase, host: &str, step: String, e: &HostOpError) -> RunError {
    RunError::Hosts {
        phase: phase.name.clone(),
        failures: vec![HostFailure::new(host, &step, e)],
    }
}

impl Engine {
    /// A phase of units. A quiet look ahead finds the hosts that would restart or reload a
    /// unit; the others converge at once, and each of those gets its files just before its
    /// first turn in the roll (a dry run shows every host at once, as before).
    pub(super) async fn roll_units(
        &self,
        phase: &Phase,
        hosts: &[String],
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let guards_etcd = phase_components(phase)
            .any(|c| c.rolling.is_some_and(|r| r.healthy == Healthy::EtcdMember));
        if guards_etcd {
            self.refuse_while_degraded(phase, hosts, opts, state)
                .await?;
        }
        let jobs = JobOptions::visible(opts, true, phase.serial);
        let (outcomes, mut unwritten) = if opts.dry_run {
            (
                self.run_jobs(phase, hosts, &jobs, state).await?,
                Unwritten::new(),
            )
        } else {
            self.converge_hosts_without_restarts(phase, hosts, &jobs, opts, state)
                .await?
        };
        for c in phase_components(phase) {
            for unit in c.units {
                let held = held_on(&outcomes, unit.name);
                if held.is_empty() {
                    continue;
                }
                // A unit that need not roll in a rolling phase: done in config order, no waits.
                let rolling = c.rolling.unwrap_or(Rolling {
                    healthy: Healthy::PhaseWaits,
                    last: GoesLast::None,
                });
                let roll = UnitRoll {
                    rolling,
                    unit,
                    held: &held,
                };
                self.roll_unit(phase, roll, &mut unwritten, opts, state)
                    .await?;
            }
        }
        // Every host the look ahead held a restart for was written at its turn; one the look
        // ahead was wrong about still gets its files.
        let left: Vec<String> = unwritten.into_iter().collect();
        if !left.is_empty() {
            self.run_jobs(phase, &left, &jobs, state).await?;
        }
        Ok(())
    }

    /// Look ahead; converge the hosts that would hold no restart now. Returns every host's
    /// outcomes (the look ahead's for the others) and the hosts not written yet.
    async fn converge_hosts_without_restarts(
        &self,
        phase: &Phase,
        hosts: &[String],
        jobs: &JobOptions,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(Vec<(String, Vec<StepOutcome>)>, Unwritten), RunError> {
        let ahead = self
            .run_jobs(phase, hosts, &JobOptions::look_ahead(opts), state)
            .await?;
        let holds =
            |steps: &[StepOutcome]| steps.iter().any(|o| matches!(o, StepOutcome::Held { .. }));
        let (rolls, at_once): (Vec<_>, Vec<_>) =
            ahead.into_iter().partition(|(_, steps)| holds(steps));
        let at_once: Vec<String> = at_once.into_iter().map(|(h, _)| h).collect();
        let mut outcomes = if at_once.is_empty() {
            Vec::new()
        } else {
            self.run_jobs(phase, &at_once, jobs, state).await?
        };
        let unwritten = rolls.iter().map(|(h, _)| h.clone()).collect();
        outcomes.extend(rolls);
        Ok((outcomes, unwritten))
    }

    /// Write `host`'s files (its restarts held) if it has not had them yet in this phase.
    async fn write_before_turn(
        &self,
        phase: &Phase,
        host: &str,
        unwritten: &mut Unwritten,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        if !unwritten.remove(host) {
            return Ok(());
        }
        let one = JobOptions::visible(opts, true, true);
        self.run_jobs(phase, &[host.to_string()], &one, state)
            .await?;
        Ok(())
    }

    async fn roll_unit(
        &self,
        phase: &Phase,
        roll: UnitRoll<'_>,
        unwritten: &mut Unwritten,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let (turns, special) = self.announce_unit_order(phase, roll).await;
        let order: Vec<String> = turns.concat();
        let node_roll = (roll.rolling.healthy == Healthy::NodeReady)
            .then(|| node::NodeRoll::new(&self.inventory));
        if let Some(nodes) = &node_roll {
            self.announce_drains(nodes, phase, &turns).await;
        }
        if opts.dry_run {
            return Ok(());
        }
        let mut done: Vec<String> = Vec::new();
        for turn in &turns {
            if self.cancel.is_cancelled() {
                return Err(RunError::Interrupted);
            }
            let at = Turn {
                phase,
                roll,
                order: &order,
                special: special.as_deref(),
                node_roll: node_roll.as_ref(),
                done: &done,
            };
            match turn.as_slice() {
                [host] => self.restart_one(at, host, unwritten, opts, state).await?,
                batch => {
                    self.restart_workers_together(at, batch, unwritten, opts, state)
                        .await?
                }
            }
            done.extend(turn.iter().cloned());
        }
        Ok(())
    }

    /// The turns a unit's roll takes (the host that goes last, when one must; workers together
    /// as `spec.rollout` allows), announced; and the host that goes last.
    async fn announce_unit_order(
        &self,
        phase: &Phase,
        roll: UnitRoll<'_>,
    ) -> (Vec<Vec<String>>, Option<String>) {
        let kind = if roll.held.iter().any(|(_, a)| *a == UnitAction::Restart) {
            RestartKind::Restart
        } else {
            RestartKind::Reload
        };
        let last = roll.rolling.last;
        let hosts: Vec<String> = roll.held.iter().map(|(h, _)| h.clone()).collect();
        let special = self.goes_last(last).await;
        let order = restart_order::restart_order(&hosts, last, special.as_deref());
        let turns = self.turns(roll.rolling, &order);
        let order = turns.concat();
        self.emit(Event::RestartOrder {
            phase: phase.name.clone(),
            what: roll.unit.name,
            action: kind,
            hosts: order.clone(),
            last: restart_order::why_last(last, special.as_deref(), &order),
            together: turns.iter().filter(|t| t.len() > 1).cloned().collect(),
        });
        (turns, special)
    }

    /// An etcd member's restart: the quorum guard first; the leader (which goes last) hands
    /// its leadership to a member already done.
    async fn before_member_restart(
        &self,
        phase: &Phase,
        host: &str,
        leader: Option<&str>,
        done: &[String],
        force: bool,
    ) -> Result<(), RunError> {
        self.guard_restart(phase, host, force).await?;
        if leader == Some(host) {
            let handing_over = self.hand_over(phase, host, done);
            verify::or_cancelled(&self.cancel, (), handing_over).await;
        }
        Ok(())
    }

    /// Restart or reload what the host's notes ask of `unit`, now.
    async fn apply_held(
        &self,
        phase: &Phase,
        host: &str,
        unit: &UnitRow,
    ) -> Result<StepOutcome, RunError> {
        let step = format!("restart {}", unit.name);
        let session = self
            .pool
            .get(&self.targets[host])
            .await
            .map_err(|e| unit_failed(phase, host, step.clone(), &HostOpError::Ssh(e)))?;
        let ssh = SshHost(session);
        let state = ssh
            .unit_state(unit.name)
            .await
            .map_err(|e| unit_failed(phase, host, step.clone(), &e))?;
        let plan = decide(unit, &state);
        ssh.apply_unit(unit.name, &plan)
            .await
            .map_err(|e| unit_failed(phase, host, step, &e))?;
        Ok(StepOutcome::Unit {
            unit: unit.name,
            action: plan.action,
            enabled: plan.enable,
            start: unit.start,
        })
    }

    /// Wait until `host` serves again as the component's row says.
    async fn serving_again(
        &self,
        phase: &Phase,
        host: &str,
        healthy: Healthy,
        opts: &RunOptions,
        state: &RunState,
    ) -> Result<String, WaitError> {
        let inv = &self.inventory;
        let address = inv.host(host).expect("an inventory host").address;
        match healthy {
            Healthy::EtcdMember => {
                let tls = ClientTls::from_pki_dir(&inv.pki_dir)
                    .map_err(|e| WaitError::Invalid(e.to_string()))?;
                let member = inv
                    .etcd_members()
                    .into_iter()
                    .find(|m| m.name == host)
                    .ok_or_else(|| WaitError::Invalid(format!("{host} is no etcd member")))?;
                verify::etcd_member_caught_up(&tls, &member.client_url(), ETCD_BACK, &self.cancel)
                    .await
            }
            Healthy::Port(port) => {
                let addr = SocketAddr::new(address, port.number(inv));
                verify::tcp(
                    vec![(host.to_string(), addr)],
                    LOAD_BALANCER_BACK,
                    &self.cancel,
                )
                .await
            }
            Healthy::Vip => {
                let targets = self.targets_of(ComponentId::Keepalived);
                verify::vip(inv, &self.pool, &targets, LOAD_BALANCER_BACK, &self.cancel).await
            }
            Healthy::ApiserverReady => self.apiserver_back(host, address).await,
            Healthy::NodeReady => {
                self.node_back(&node::NodeVisit::look(&self.inventory, host))
                    .await
            }
            Healthy::PhaseWaits => self
                .wait_for(phase, &[host.to_string()], opts, state)
                .await
                .map(|()| "the phase's checks pass".to_string())
                .map_err(|e| match e {
                    RunError::Interrupted => WaitError::Cancelled,
                    e => WaitError::Invalid(e.to_string()),
                }),
        }
    }

    /// In the stacked topology a host's apiserver reads only its own etcd member: while that
    /// member restarts, the requests haproxy sends it hang until etcd answers again. True when
    /// `host` runs such an apiserver now (a unit of the table whose bundle gate holds, active;
    /// or a static pod whose process runs): it is drained before the member restarts and back
    /// once it is ready again.
    async fn apiserver_reads_only_local_etcd(&self, host: &str, state: &RunState) -> bool {
        let inv = &self.inventory;
        if inv.topology != crate::config::Topology::Stacked {
            return false;
        }
        let Some(h) = inv.host(host) else {
            return false;
        };
        if components::component(ComponentId::ControlPlane).runs_on(inv, h) {
            return self.apiserver_processes(host).await.is_some();
        }
        let Some(unit) = components::on_host(inv, h)
            .filter(|c| {
                c.rolling
                    .is_some_and(|r| r.healthy == Healthy::ApiserverReady)
            })
            .filter(|c| c.lacking(&state.bundle).is_empty())
            .find_map(|c| c.units.first())
        else {
            return false;
        };
        let Ok(session) = self.pool.get(&self.targets[host]).await else {
            return false;
        };
        SshHost(session)
            .unit_state(unit.name)
            .await
            .is_ok_and(|u| u.running)
    }

    /// The SSH targets of the hosts running a component.
    fn targets_of(&self, id: ComponentId) -> Vec<(String, crate::ssh::HostTarget)> {
        components::component(id)
            .hosts(&self.inventory)
            .into_iter()
            .map(|h| (h.name.clone(), self.targets[&h.name].clone()))
            .collect()
    }

    /// The host that goes last: the etcd leader's, or the VIP holder.
    async fn goes_last(&self, last: GoesLast) -> Option<String> {
        match last {
            GoesLast::None => None,
            GoesLast::StaticPodEtcdLeader if !self.runs_static_pod_etcd() => None,
            GoesLast::EtcdLeader | GoesLast::StaticPodEtcdLeader => {
                let (tls, via, members) = self.etcd_members().await?;
                let leader = etcd::status(&tls, &via, REQUEST).await.ok()?.leader;
                let m = members.iter().find(|m| m.id == leader)?;
                self.host_of(m)
            }
            GoesLast::VipHolder => {
                let vip: IpAddr = self.inventory.endpoint.address.parse().ok()?;
                let targets = self.targets_of(ComponentId::Keepalived);
                let holders = verify::vip_holders(&self.pool, &targets, vip).await.ok()?;
                match holders.as_slice() {
                    [one] => Some(one.clone()),
                    _ => None,
                }
            }
        }
    }

    pub(super) fn note(&self, phase: &Phase, message: String) {
        self.emit(Event::Note {
            phase: phase.name.clone(),
            message,
        });
    }
}

/// One host's restart in a rolling order, from its start to the host serving again: the two
/// events, or the error naming the hosts not done yet.
struct RestartStep<'a> {
    phase: &'a Phase,
    host: &'a str,
    what: &'static str,
    kind: RestartKind,
    started: Instant,
}

impl<'a> RestartStep<'a> {
    fn begin(
        engine: &Engine,
        phase: &'a Phase,
        host: &'a str,
        what: &'static str,
        kind: RestartKind,
    ) -> RestartStep<'a> {
        engine.emit(Event::RestartStarted {
            phase: phase.name.clone(),
            host: host.to_string(),
            what,
            action: kind,
            at: wall_clock(),
        });
        RestartStep {
            phase,
            host,
            what,
            kind,
            started: Instant::now(),
        }
    }

    // RunError is what every step of a run returns; the async ones are not linted for its size.
    #[allow(clippy::result_large_err)]
    fn end(
        self,
        engine: &Engine,
        healthy: Result<String, WaitError>,
        order: &[String],
    ) -> Result<(), RunError> {
        if let Err(WaitError::Cancelled) = healthy {
            return Err(RunError::Interrupted);
        }
        let healthy = healthy.map_err(|error| RunError::NotBack {
            phase: self.phase.name.clone(),
            host: self.host.to_string(),
            what: self.what,
            action: self.kind,
            error,
            left: order
                .iter()
                .skip_while(|h| *h != self.host)
                .skip(1)
                .cloned()
                .collect(),
        })?;
        engine.emit(Event::RestartFinished {
            phase: self.phase.name.clone(),
            host: self.host.to_string(),
            what: self.what,
            action: self.kind,
            at: wall_clock(),
            seconds: self.started.elapsed().as_secs_f64(),
            healthy,
        });
        Ok(())
    }
}

/// The hosts of a rolling phase whose files are still to be written.
type Unwritten = std::collections::BTreeSet<String>;

/// One unit's roll: its rule and the hosts holding a restart or reload of it.
#[derive(Clone, Copy)]
struct UnitRoll<'a> {
    rolling: Rolling,
    unit: &'static UnitRow,
    held: &'a [(String, UnitAction)],
}

/// The hosts whose outcomes hold a restart or reload of `unit`, with which.
fn held_on(outcomes: &[(String, Vec<StepOutcome>)], unit: &str) -> Vec<(String, UnitAction)> {
    outcomes
        .iter()
        .filter_map(|(host, steps)| {
            steps.iter().find_map(|o| match o {
                StepOutcome::Held { unit: u, action } if *u == unit => {
                    Some((host.clone(), *action))
                }
                _ => None,
            })
        })
        .collect()
}

/// A refusal of the guard, boxed for [`RunError`].
pub type BoxedRefusal = Box<QuorumRefusal>;

/// What the notes held for `host` ask: a reload only when nothing asked for a restart.
fn held_kind(held: &[(String, UnitAction)], host: &str) -> RestartKind {
    let action = held
        .iter()
        .find(|(h, _)| h == host)
        .map(|(_, a)| *a)
        .unwrap_or(UnitAction::Restart);
    if action == UnitAction::Reload {
        RestartKind::Reload
    } else {
        RestartKind::Restart
    }
}

#[cfg(test)]
mod tests;
