//! The etcd side of rolling restarts: the live members and their health, the quorum guard
//! before each restart, the look ahead that refuses a change while a member is already down,
//! and the leader's handover before its own restart.

use std::time::{Duration, Instant};

use super::super::playbook::Phase;
use super::super::runner::{Engine, JobOptions, RunError, RunOptions, RunState};
use super::{BoxedRefusal, REQUEST};
use crate::engine::outcome::StepOutcome;
use crate::etcd::{self, ClientTls, Member};
use crate::lifecycle::membership;
use crate::lifecycle::restart_order::{self, GuardVerdict, Voter};

/// How long a handed-over leadership may take to show.
const HANDOVER: Duration = Duration::from_secs(10);

impl Engine {
    pub(super) async fn etcd_members(&self) -> Option<(ClientTls, String, Vec<Member>)> {
        let tls = ClientTls::from_pki_dir(&self.inventory.pki_dir).ok()?;
        let (via, members) = membership::live_members(&self.inventory, &tls, REQUEST).await?;
        Some((tls, via, members))
    }

    pub(super) fn host_of(&self, m: &Member) -> Option<String> {
        membership::host_of(&self.inventory, m).map(|h| h.name.clone())
    }

    /// Every voting member with its health, named by its host; `None` when no member answers.
    pub(super) async fn voters(&self) -> Option<Vec<Voter>> {
        let (tls, _, members) = self.etcd_members().await?;
        let mut voters = Vec::new();
        for m in members.iter().filter(|m| !m.is_learner) {
            voters.push(Voter {
                name: self
                    .host_of(m)
                    .unwrap_or_else(|| format!("{} ({:x})", m.name, m.id)),
                healthy: membership::member_healthy(&tls, m, REQUEST).await,
            });
        }
        Some(voters)
    }

    /// Before `host`'s member restarts: refuse when etcd would not stay writable without it.
    pub(super) async fn guard_restart(
        &self,
        phase: &Phase,
        host: &str,
        force: bool,
    ) -> Result<(), RunError> {
        let Some(voters) = self.voters().await else {
            self.note(
                phase,
                format!("no etcd member answers: {host} restarts without the quorum guard"),
            );
            return Ok(());
        };
        self.judge(phase, host, &voters, force)
            .map_err(|refusal| RunError::Quorum {
                phase: phase.name.clone(),
                refusal,
            })
    }

    /// The guard's verdict on restarting `host`'s member: said, or the refusal.
    pub(super) fn judge(
        &self,
        phase: &Phase,
        host: &str,
        voters: &[Voter],
        force: bool,
    ) -> Result<(), BoxedRefusal> {
        match restart_order::restart_guard(host, voters) {
            Ok(GuardVerdict::Safe) => Ok(()),
            Ok(GuardVerdict::SingleMember) => {
                self.note(
                    phase,
                    format!(
                        "etcd has one member ({host}): it cannot serve while it restarts (3 or 5 \
                         members can)"
                    ),
                );
                Ok(())
            }
            Err(refusal) if force => {
                self.note(phase, format!("warning: --force: {refusal}"));
                Ok(())
            }
            Err(refusal) => Err(Box::new(refusal)),
        }
    }

    /// With a member unhealthy before anything is written, look ahead: a healthy member the
    /// phase would restart is refused now, so a refused change leaves every host as it was.
    pub(super) async fn refuse_while_degraded(
        &self,
        phase: &Phase,
        hosts: &[String],
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let Some(voters) = self.voters().await else {
            return Ok(());
        };
        if voters.iter().all(|v| v.healthy) {
            return Ok(());
        }
        let ahead = self
            .run_jobs(phase, hosts, &JobOptions::look_ahead(opts), state)
            .await?;
        for (host, steps) in &ahead {
            if steps.iter().any(|o| matches!(o, StepOutcome::Held { .. })) {
                self.judge(phase, host, &voters, opts.force)
                    .map_err(|refusal| RunError::Quorum {
                        phase: phase.name.clone(),
                        refusal,
                    })?;
            }
        }
        Ok(())
    }

    /// Before the leader restarts: hand leadership to the member restarted last (it is caught
    /// up), so clients see a planned handover instead of an election. Best effort: a failure
    /// is said, and the restart goes on (etcd then elects a leader itself).
    pub(super) async fn hand_over(&self, phase: &Phase, host: &str, done: &[String]) {
        let Some((tls, _, members)) = self.etcd_members().await else {
            return;
        };
        let of = |name: &str| {
            members
                .iter()
                .find(|m| self.host_of(m).as_deref() == Some(name))
        };
        let Some(leader) = of(host) else { return };
        let Some(target) = done
            .iter()
            .rev()
            .filter_map(|h| of(h))
            .find(|m| !m.is_learner)
        else {
            return;
        };
        let Some(url) = leader.client_urls.first() else {
            return;
        };
        let target_name = self.host_of(target).unwrap_or_default();
        if let Err(e) = etcd::move_leader(&tls, url, target.id, REQUEST).await {
            self.note(
                phase,
                format!(
                    "could not hand etcd's leadership from {host} to {target_name} ({e}): {host} \
                     restarts anyway and etcd elects a leader"
                ),
            );
            return;
        }
        let deadline = Instant::now() + HANDOVER;
        while Instant::now() < deadline {
            if let Some(s) = target.client_urls.first()
                && let Ok(s) = etcd::status(&tls, s, REQUEST).await
                && s.leader == target.id
            {
                self.note(
                    phase,
                    format!(
                        "etcd leadership handed from {host} to {target_name} before its restart"
                    ),
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
