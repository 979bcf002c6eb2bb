//! The etcd side of rolling restarts: the live members and their health, the quorum guard
//! before each restart, the look ahead that refuses a change while a member is already down,
//! and the leader's handover before its own restart.

use std::time::{Duration, Instant};

use super::super::etcd_members;
use super::super::playbook::Phase;
use super::super::run_context::{Engine, JobOptions, RunOptions, RunState};
use super::super::run_error::RunError;
use super::{BoxedRefusal, REQUEST};
use crate::engine::outcome::StepOutcome;
use crate::etcd::{self, ClientTls, Member};
use crate::planning::membership;
use crate::planning::quorum::Unjudged;
use crate::planning::restart_order::{self, GuardVerdict, Voter};

/// How long a handed-over leadership may take to show.
const HANDOVER: Duration = Duration::from_secs(10);

impl Engine {
    pub(super) async fn etcd_members(&self) -> Option<(ClientTls, String, Vec<Member>)> {
        let tls = ClientTls::from_pki_dir(&self.inventory.pki_dir).ok()?;
        let (via, members) = etcd_members::live_members(&self.inventory, &tls, REQUEST).await?;
        Some((tls, via, members))
    }

    /// The member's host; `None` also for a member two hosts claim (the guard refuses on
    /// those through [`Self::voters`]).
    pub(super) fn host_of(&self, m: &Member) -> Option<String> {
        membership::host_of(&self.inventory, m)
            .ok()
            .flatten()
            .map(|h| h.name.clone())
    }

    /// Every member with its health (learners marked), named by its host; why not, when there
    /// is no client certificate, no member answers, or a member cannot be placed.
    pub(super) async fn voters(&self) -> Result<Vec<Voter>, Unjudged> {
        let tls =
            ClientTls::from_pki_dir(&self.inventory.pki_dir).map_err(|_| Unjudged::NoClient {
                pki_dir: self.inventory.pki_dir.display().to_string(),
            })?;
        let Some((_, members)) = etcd_members::live_members(&self.inventory, &tls, REQUEST).await
        else {
            return Err(Unjudged::NoAnswer {
                endpoints: membership::client_endpoints(&self.inventory)
                    .into_iter()
                    .map(|(_, e)| e)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let mut voters = Vec::new();
        for m in &members {
            let host = membership::host_of(&self.inventory, m)?;
            voters.push(Voter {
                name: host
                    .map(|h| h.name.clone())
                    .unwrap_or_else(|| format!("{} ({:x})", m.name, m.id)),
                healthy: etcd_members::member_healthy(&tls, m, REQUEST).await,
                learner: m.is_learner,
            });
        }
        Ok(voters)
    }

    /// Before `host`'s member restarts: refuse when etcd would not stay writable without it,
    /// and when the members cannot be counted (fails closed; `--force` goes on, said).
    pub(super) async fn guard_restart(
        &self,
        phase: &Phase,
        host: &str,
        force: bool,
    ) -> Result<(), RunError> {
        let voters = match self.voters().await {
            Ok(voters) => voters,
            Err(reason) if force => {
                self.note(
                    phase,
                    format!(
                        "warning: --force: {host} restarts without the quorum guard, which \
                         cannot count etcd's members: {reason}"
                    ),
                );
                return Ok(());
            }
            Err(reason) => {
                return Err(RunError::QuorumUnjudged {
                    phase: phase.name.clone(),
                    host: host.to_string(),
                    reason,
                });
            }
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
        let voters = match self.voters().await {
            Ok(voters) if voters.iter().all(|v| v.healthy) => return Ok(()),
            Ok(voters) => Ok(voters),
            Err(reason) => Err(reason),
        };
        let ahead = self
            .run_jobs(phase, hosts, &JobOptions::look_ahead(opts), state)
            .await?;
        for (host, steps) in &ahead {
            if steps.iter().any(|o| matches!(o, StepOutcome::Held { .. })) {
                // Members that cannot be counted: refused before anything is written.
                let voters = match &voters {
                    Ok(voters) => voters,
                    Err(reason) if opts.force => {
                        self.note(
                            phase,
                            format!(
                                "warning: --force: etcd restarts without the quorum guard, which \
                                 cannot count etcd's members: {reason}"
                            ),
                        );
                        return Ok(());
                    }
                    Err(reason) => {
                        return Err(RunError::QuorumUnjudged {
                            phase: phase.name.clone(),
                            host: host.clone(),
                            reason: reason.clone(),
                        });
                    }
                };
                self.judge(phase, host, voters, opts.force)
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
