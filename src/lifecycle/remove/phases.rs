//! A removal's steps as phases of the engine's one phase loop (the events `kinit up` gives, the
//! same `-o json` stream). The phases that only ask (the Nodes, the members, the files to
//! render) run in a dry run too; the apiservers' drain says what it would do.

use std::collections::BTreeSet;

use super::update::{drain_apiservers, drain_grace, put_back_apiservers, update_rest};
use super::{HostUpdate, Removal, RemoveError, RemovePlan, RemoveReport, remove_members};
use super::{reset_removed, without};
use crate::config::Role;
use crate::engine::event::{Event, Observer};
use crate::engine::phase_runner::{DryRun, Interrupted, RunPhase};
use crate::inventory::Inventory;
use crate::lifecycle::reset::{self, NodeLeaving, ResetReport};

/// A removal's phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RemovePhase {
    DrainNodes,
    DrainApiservers,
    EtcdMembers,
    Reset,
    DeleteNodes,
    GoneNodes,
    Update,
}

impl RemovePhase {
    pub(super) const ALL: [RemovePhase; 7] = [
        RemovePhase::DrainNodes,
        RemovePhase::DrainApiservers,
        RemovePhase::EtcdMembers,
        RemovePhase::Reset,
        RemovePhase::DeleteNodes,
        RemovePhase::GoneNodes,
        RemovePhase::Update,
    ];
}

/// What a removal's phases work with, and what each leaves for the report.
pub(super) struct RemoveRun<'r, 'a> {
    pub removal: &'r Removal<'a>,
    /// Where the phases say what they did as they go, and the undo what it put back.
    pub observer: &'r dyn Observer,
    pub plan: RemovePlan,
    /// The inventory without the hosts that leave.
    pub rest: Inventory,
    /// The client that drained the leaving Nodes, to delete them with once reset.
    pub node_api: Option<crate::kube::ApiClient>,
    pub nodes: Vec<NodeLeaving>,
    pub drained: Vec<String>,
    pub removed_members: Vec<String>,
    /// The reset phase began: from here on the leaving hosts are on their way out, and a
    /// cut-short run leaves them drained for the next removal to finish.
    pub resetting: bool,
    pub reset: Option<ResetReport>,
    pub gone_nodes: Vec<NodeLeaving>,
    pub updates: Vec<HostUpdate>,
}

impl<'r, 'a> RemoveRun<'r, 'a> {
    pub(super) fn new(
        removal: &'r Removal<'a>,
        plan: RemovePlan,
        observer: &'r dyn Observer,
    ) -> Self {
        let going: BTreeSet<String> = plan.hosts.iter().cloned().collect();
        RemoveRun {
            rest: without(removal.inv, &going),
            removal,
            observer,
            resetting: false,
            plan,
            node_api: None,
            nodes: Vec::new(),
            drained: Vec::new(),
            removed_members: Vec::new(),
            reset: None,
            gone_nodes: Vec::new(),
            updates: Vec::new(),
        }
    }

    pub(super) fn report(self) -> RemoveReport {
        RemoveReport {
            dry_run: self.removal.settings.dry_run,
            delete_from_config: self.plan.hosts.clone(),
            plan: self.plan,
            drained: self.drained,
            removed_members: self.removed_members,
            reset: self.reset,
            gone_nodes: self.gone_nodes,
            updates: self.updates,
        }
    }

    /// The leaving hosts that run an apiserver.
    fn leaving_apiservers(&self) -> Vec<String> {
        let inv = self.removal.inv;
        self.plan
            .hosts
            .iter()
            .filter(|h| inv.host(h).is_some_and(|h| h.has(Role::ControlPlane)))
            .cloned()
            .collect()
    }

    /// Hosts gone for good (`--unreachable`): never contacted.
    fn gone(&self) -> BTreeSet<String> {
        let resetting: BTreeSet<&String> = self.plan.reset.iter().collect();
        self.plan
            .hosts
            .iter()
            .filter(|h| !resetting.contains(h))
            .cloned()
            .collect()
    }
}

impl RemovePhase {
    /// The phase's name in events and in `--only-phase`-style selections.
    pub(super) const fn id(self) -> &'static str {
        match self {
            RemovePhase::DrainNodes => "drain-nodes",
            RemovePhase::DrainApiservers => "drain-apiservers",
            RemovePhase::EtcdMembers => "etcd-members",
            RemovePhase::Reset => "reset",
            RemovePhase::DeleteNodes => "delete-nodes",
            RemovePhase::GoneNodes => "gone-nodes",
            RemovePhase::Update => "update",
        }
    }
}

impl From<Interrupted> for RemoveError {
    fn from(_: Interrupted) -> Self {
        RemoveError::Interrupted
    }
}

impl RunPhase<RemoveRun<'_, '_>> for RemovePhase {
    type Error = RemoveError;

    fn name(&self) -> &str {
        self.id()
    }

    fn title(&self) -> &str {
        match self {
            RemovePhase::DrainNodes => {
                "Drain the leaving hosts' Nodes while every apiserver serves"
            }
            RemovePhase::DrainApiservers => "Take the leaving apiservers out of every haproxy",
            RemovePhase::EtcdMembers => {
                "The leaving etcd members removed (the leader hands over first)"
            }
            RemovePhase::Reset => "Reset the leaving hosts",
            RemovePhase::DeleteNodes => "Delete the Nodes of the hosts that were reset",
            RemovePhase::GoneNodes => "Delete the Nodes of the hosts gone for good (no drain)",
            RemovePhase::Update => {
                "The hosts that stay: files rendered without the leaving hosts, reloads one host \
                 at a time"
            }
        }
    }

    fn hosts(&self, run: &RemoveRun<'_, '_>) -> Vec<String> {
        match self {
            RemovePhase::DrainApiservers => run.leaving_apiservers(),
            RemovePhase::Reset => run.plan.reset.clone(),
            RemovePhase::Update => run.plan.update.clone(),
            RemovePhase::DrainNodes
            | RemovePhase::EtcdMembers
            | RemovePhase::DeleteNodes
            | RemovePhase::GoneNodes => Vec::new(),
        }
    }

    fn skipped(&self, run: &RemoveRun<'_, '_>) -> Option<String> {
        let reason = match self {
            RemovePhase::DrainApiservers if run.leaving_apiservers().is_empty() => {
                "no leaving host runs an apiserver"
            }
            RemovePhase::EtcdMembers if run.plan.etcd.is_none() => {
                "no leaving host runs a live etcd member"
            }
            RemovePhase::Reset if run.plan.reset.is_empty() => {
                "the hosts are gone for good (--unreachable): not contacted"
            }
            RemovePhase::DeleteNodes
                if run.node_api.is_none()
                    || run.reset.as_ref().is_none_or(|r| r.nodes.is_empty()) =>
            {
                "no Node to delete (no reset host ran a kubelet, or no apiserver answered)"
            }
            RemovePhase::GoneNodes if !run.removal.settings.unreachable => {
                "every leaving host is reachable"
            }
            _ => return None,
        };
        Some(reason.into())
    }

    fn dry_run(&self, run: &RemoveRun<'_, '_>) -> DryRun {
        match self {
            RemovePhase::DrainApiservers => DryRun::Says(
                run.leaving_apiservers()
                    .into_iter()
                    .map(|h| format!("{h}: its apiserver would be drained from every haproxy"))
                    .collect(),
            ),
            _ => DryRun::Runs,
        }
    }

    async fn run(&self, run: &mut RemoveRun<'_, '_>) -> Result<(), RemoveError> {
        let (r, dry_run) = (run.removal, run.removal.settings.dry_run);
        match self {
            RemovePhase::DrainNodes => {
                let resetting: BTreeSet<String> = run.plan.reset.iter().cloned().collect();
                (run.node_api, run.nodes) =
                    reset::drain_nodes(r.inv, &resetting, dry_run, r.cancel).await;
            }
            RemovePhase::DrainApiservers => {
                run.drained = drain_apiservers(r, &run.plan).await;
                run.say(*self, &run.drained);
                drain_grace(r.cancel).await;
            }
            RemovePhase::EtcdMembers => run.removed_members = remove_members(r, &run.plan).await?,
            RemovePhase::Reset => {
                run.resetting = true;
                run.reset = reset_removed(r, &run.rest, &run.plan).await?;
                // The reset ran against the inventory without these hosts: their Nodes are
                // this removal's.
                if let Some(reset) = run.reset.as_mut() {
                    reset.nodes = std::mem::take(&mut run.nodes);
                }
            }
            RemovePhase::DeleteNodes => {
                if let (Some(api), Some(reset)) = (&run.node_api, run.reset.as_mut()) {
                    reset::delete_nodes(api, &mut reset.nodes, &reset.hosts).await;
                }
            }
            RemovePhase::GoneNodes => {
                run.gone_nodes = reset::delete_gone_nodes(r.inv, &run.gone(), dry_run).await;
            }
            RemovePhase::Update => run.updates = update_rest(r, &run.rest, &run.plan).await?,
        }
        Ok(())
    }

    /// A removal stopped after a drain and before the leaving hosts were reset: their
    /// apiservers back in every haproxy and their Nodes schedulable again, so the cluster serves
    /// as it did before the removal began.
    async fn undo(&self, run: &mut RemoveRun<'_, '_>) {
        if run.resetting {
            return;
        }
        let lines = match (self, &run.node_api) {
            (RemovePhase::DrainNodes, Some(api)) => reset::uncordon_nodes(api, &run.nodes).await,
            (RemovePhase::DrainApiservers, _) => put_back_apiservers(run.removal, &run.plan).await,
            _ => return,
        };
        run.say(*self, &lines);
    }
}

impl RemoveRun<'_, '_> {
    /// One note per line, under `phase`.
    fn say(&self, phase: RemovePhase, lines: &[String]) {
        for message in lines {
            self.observer.event(&Event::Note {
                phase: phase.name().into(),
                message: message.clone(),
            });
        }
    }
}
