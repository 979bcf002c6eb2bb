//! A reset's steps as phases of the engine's one phase loop (the events `kinit up` gives, the
//! same `-o json` stream). Every phase knows a dry run itself: etcd is asked what would leave,
//! the Nodes are looked up, and each host's steps say what they would take off.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    HostReset, HostResetOutcome, NodeLeaving, ResetError, ResetReport, ResetRequest,
    check_data_dirs, delete_nodes, drain_nodes, reset_hosts, uncordon_nodes,
};
use crate::engine::etcd_members::{self, MembershipError};
use crate::engine::event::{Event, Observer};
use crate::engine::phase_runner::{DryRun, Interrupted, RunPhase};
use crate::fanout::FanoutError;
use crate::planning::membership::{self, ResetMembership};

/// A reset's phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResetPhase {
    EtcdMembers,
    DrainNodes,
    Hosts,
    DeleteNodes,
}

impl ResetPhase {
    pub(super) const ALL: [ResetPhase; 4] = [
        ResetPhase::EtcdMembers,
        ResetPhase::DrainNodes,
        ResetPhase::Hosts,
        ResetPhase::DeleteNodes,
    ];
}

/// What a reset's phases work with, and what each leaves for the report.
pub(super) struct ResetRun<'a> {
    pub request: ResetRequest<'a>,
    /// Where the hosts' steps report, and the undo says what it put back.
    pub observer: std::sync::Arc<dyn Observer>,
    /// Selected hosts that did not answer, and why: reported, never changed.
    pub unreachable: BTreeMap<String, String>,
    pub membership: Option<ResetMembership>,
    /// The client that drained the Nodes, to delete them with once their hosts are reset.
    pub api: Option<crate::kube::ApiClient>,
    pub nodes: Vec<NodeLeaving>,
    /// The hosts phase began: from here on the hosts are on their way out, and a cut-short
    /// run leaves their Nodes cordoned for the next reset to finish.
    pub resetting: bool,
    pub hosts: Vec<HostResetOutcome>,
}

impl ResetRun<'_> {
    fn selected(&self) -> BTreeSet<String> {
        self.request.plans.iter().map(|p| p.host.clone()).collect()
    }

    fn reachable(&self) -> BTreeSet<String> {
        self.selected()
            .into_iter()
            .filter(|h| !self.unreachable.contains_key(h))
            .collect()
    }

    pub(super) fn report(self) -> ResetReport {
        ResetReport {
            dry_run: self.request.settings.dry_run,
            membership: self
                .membership
                .expect("the etcd-members phase ran (never skipped)"),
            hosts: self.hosts,
            nodes: self.nodes,
        }
    }

    /// Which members leave (asked of etcd, or judged without a client); a partial reset's
    /// members are removed before any host changes, once no host would refuse.
    async fn etcd_members(&mut self) -> Result<(), ResetError> {
        let selected = self.selected();
        let settings = self.request.settings;
        let membership = match self.request.tls {
            Some(tls) => {
                etcd_members::plan_reset(self.request.inv, tls, &selected, settings.etcd_timeout)
                    .await?
            }
            None => membership::without_client(self.request.inv, &selected)
                .map_err(MembershipError::from)?,
        };
        if let (ResetMembership::Remove { members, via }, Some(tls), false) =
            (&membership, self.request.tls, settings.dry_run)
        {
            // A host that would refuse must refuse before its member is gone.
            check_data_dirs(
                &self.request.plans,
                self.request.targets,
                &self.request.pool,
                settings,
                self.request.cancel,
            )
            .await?;
            if self.request.cancel.is_cancelled() {
                return Err(ResetError::Interrupted);
            }
            etcd_members::remove(tls, members, via, settings.etcd_timeout).await?;
        }
        self.membership = Some(membership);
        Ok(())
    }

    /// Every reachable selected host's steps, all hosts at once; the unreachable ones reported.
    async fn reset_hosts(&mut self) {
        let kept: BTreeMap<String, Vec<String>> = self
            .request
            .plans
            .iter()
            .map(|p| (p.host.clone(), p.kept.clone()))
            .collect();
        let reached: Vec<HostReset> = self
            .request
            .plans
            .iter()
            .filter(|p| !self.unreachable.contains_key(&p.host))
            .cloned()
            .collect();
        let results = reset_hosts(
            reached,
            self.request.targets,
            &self.request.pool,
            self.request.settings,
            self.request.cancel,
            self.observer.clone(),
        )
        .await;
        let kept_on = |host: &str| kept.get(host).cloned().unwrap_or_default();
        self.hosts = results
            .into_iter()
            .map(|(host, r)| {
                let (actions, error) = match r {
                    Ok(actions) => (actions, None),
                    Err(FanoutError::Failed(f)) => (Vec::new(), Some(f.message())),
                    Err(FanoutError::Cancelled) => (
                        Vec::new(),
                        Some(FanoutError::<String>::Cancelled.to_string()),
                    ),
                    Err(FanoutError::Panicked(p)) => (
                        Vec::new(),
                        Some(FanoutError::<String>::Panicked(p).to_string()),
                    ),
                };
                HostResetOutcome {
                    kept: kept_on(&host),
                    host,
                    actions,
                    error,
                }
            })
            .collect();
        self.hosts
            .extend(self.unreachable.iter().map(|(host, e)| HostResetOutcome {
                host: host.clone(),
                actions: Vec::new(),
                kept: kept_on(host),
                error: Some(format!("{e}; nothing was changed on this host")),
            }));
    }
}

impl From<Interrupted> for ResetError {
    fn from(_: Interrupted) -> Self {
        ResetError::Interrupted
    }
}

impl RunPhase<ResetRun<'_>> for ResetPhase {
    type Error = ResetError;

    fn name(&self) -> &str {
        match self {
            ResetPhase::EtcdMembers => "etcd-members",
            ResetPhase::DrainNodes => "drain-nodes",
            ResetPhase::Hosts => "hosts",
            ResetPhase::DeleteNodes => "delete-nodes",
        }
    }

    fn title(&self) -> &str {
        match self {
            ResetPhase::EtcdMembers => {
                "The reset hosts' etcd members leave first (a partial reset keeps quorum)"
            }
            ResetPhase::DrainNodes => "Drain the reset hosts' Nodes while the API answers",
            ResetPhase::Hosts => {
                "Take kinit's units, files, binaries and etcd data off every selected host"
            }
            ResetPhase::DeleteNodes => "Delete the Nodes of the hosts that were reset",
        }
    }

    fn hosts(&self, run: &ResetRun<'_>) -> Vec<String> {
        match self {
            ResetPhase::Hosts => run.reachable().into_iter().collect(),
            ResetPhase::EtcdMembers | ResetPhase::DrainNodes | ResetPhase::DeleteNodes => {
                Vec::new()
            }
        }
    }

    fn skipped(&self, run: &ResetRun<'_>) -> Option<String> {
        match self {
            ResetPhase::DeleteNodes if run.api.is_none() || run.nodes.is_empty() => Some(
                "no Node to delete (no reset host ran a kubelet, or no apiserver answered)".into(),
            ),
            _ => None,
        }
    }

    fn dry_run(&self, _: &ResetRun<'_>) -> DryRun {
        DryRun::Runs
    }

    async fn run(&self, run: &mut ResetRun<'_>) -> Result<(), ResetError> {
        match self {
            ResetPhase::EtcdMembers => run.etcd_members().await?,
            ResetPhase::DrainNodes => {
                (run.api, run.nodes) = drain_nodes(
                    run.request.inv,
                    &run.reachable(),
                    run.request.settings.dry_run,
                    run.request.cancel,
                )
                .await;
            }
            ResetPhase::Hosts => {
                run.resetting = true;
                run.reset_hosts().await
            }
            ResetPhase::DeleteNodes => {
                if let Some(api) = &run.api {
                    delete_nodes(api, &mut run.nodes, &run.hosts).await;
                }
            }
        }
        Ok(())
    }

    /// A run stopped after the drain and before any host was reset: the Nodes it cordoned are
    /// schedulable again.
    async fn undo(&self, run: &mut ResetRun<'_>) {
        if let (ResetPhase::DrainNodes, Some(api), false) = (self, &run.api, run.resetting) {
            for message in uncordon_nodes(api, &run.nodes).await {
                run.observer.event(&Event::Note {
                    phase: "drain-nodes".into(),
                    message,
                });
            }
        }
    }
}
