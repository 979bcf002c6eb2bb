//! A static-pod component's roll: the kubelet replaces a pod when its manifest changes, so the
//! hosts whose manifests change get theirs one at a time (the apiserver drained first and put
//! back once the new one is ready), in the component's rolling order; the others at once.

use super::{RestartStep, replaces_apiserver, unit_failed};
use crate::components::{self, ComponentId};
use crate::engine::event::{Event, RestartKind};
use crate::engine::outcome::StepOutcome;
use crate::engine::playbook::Phase;
use crate::engine::run_context::{Engine, JobOptions, RunOptions, RunState};
use crate::engine::run_error::RunError;
use crate::planning::restart_order;

impl Engine {
    /// Look ahead at what the phase would write: the hosts where no manifest is replaced run
    /// now, all at once; those where one is (with their look-ahead steps) are returned, to go
    /// one at a time.
    async fn run_unchanged_at_once(
        &self,
        phase: &Phase,
        hosts: &[String],
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<Vec<(String, Vec<StepOutcome>)>, RunError> {
        let ahead = self
            .run_jobs(phase, hosts, &JobOptions::look_ahead(opts), state)
            .await?;
        let replaces = |steps: &[StepOutcome]| {
            steps.iter().any(|o| {
                matches!(o, StepOutcome::Files { written, .. } if written.iter().any(|w| !w.new))
            })
        };
        let changing: Vec<String> = ahead
            .iter()
            .filter(|(_, steps)| replaces(steps))
            .map(|(h, _)| h.clone())
            .collect();
        let at_once: Vec<String> = hosts
            .iter()
            .filter(|h| !changing.contains(h))
            .cloned()
            .collect();
        if !at_once.is_empty() {
            let jobs = JobOptions::visible(opts, false, phase.serial);
            self.run_jobs(phase, &at_once, &jobs, state).await?;
        }
        Ok(ahead
            .into_iter()
            .filter(|(h, _)| changing.contains(h))
            .collect())
    }

    /// A static-pod phase: hosts whose manifests exist and change go one at a time (the
    /// kubelet re-creates the pod), each after the last passes the phase's checks; hosts with
    /// a first manifest, or nothing to change, go at once.
    pub(in crate::engine) async fn roll_static_pods(
        &self,
        phase: &Phase,
        hosts: &[String],
        pods: &'static components::Component,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let rolling = pods.rolling.expect("a rolling component");
        let ahead = self
            .run_unchanged_at_once(phase, hosts, opts, state)
            .await?;
        let changing: Vec<String> = ahead.iter().map(|(h, _)| h.clone()).collect();
        if changing.is_empty() {
            return Ok(());
        }
        let special = self.goes_last(rolling.last).await;
        let order = restart_order::restart_order(&changing, rolling.last, special.as_deref());
        self.emit(Event::RestartOrder {
            phase: phase.name.clone(),
            what: pods.name,
            action: RestartKind::NewManifest,
            hosts: order.clone(),
            last: restart_order::why_last(rolling.last, special.as_deref(), &order),
            together: Vec::new(),
        });
        // Hosts whose apiserver the kubelet replaces: drained from every haproxy first, put
        // back once the new one is ready, as a unit's restart is.
        let apiserver_moves: Vec<&String> = ahead
            .iter()
            .filter(|(_, steps)| replaces_apiserver(steps))
            .map(|(h, _)| h)
            .collect();
        let one = JobOptions::visible(opts, false, true);
        for (i, host) in order.iter().enumerate() {
            if self.cancel.is_cancelled() {
                return Err(RunError::Interrupted);
            }
            if opts.dry_run {
                self.run_jobs(phase, std::slice::from_ref(host), &one, state)
                    .await?;
                continue;
            }
            let turn = PodTurn {
                phase,
                pods,
                host,
                replaces_apiserver: apiserver_moves.contains(&host),
                order: &order,
                special: special.as_deref(),
                done: &order[..i],
            };
            self.new_manifest_on(turn, opts, state).await?;
        }
        Ok(())
    }
}

/// One host's turn in a static-pod roll.
#[derive(Clone, Copy)]
struct PodTurn<'a> {
    phase: &'a Phase,
    pods: &'static components::Component,
    host: &'a str,
    /// Its look-ahead replaces its kube-apiserver manifest.
    replaces_apiserver: bool,
    /// The roll's order, for the restart's end event.
    order: &'a [String],
    /// The host that goes last (etcd: the leader's).
    special: Option<&'a str>,
    /// The hosts done before this one.
    done: &'a [String],
}

/// What ran on a host before its new manifest, for the waits after it.
struct PodsBefore {
    /// The kube-apiserver manifest changed: the processes of the apiserver that ran.
    apiserver: Option<Option<String>>,
    /// The etcd manifest changed: the processes of the member that ran.
    member: Option<Option<String>>,
    /// The host's apiserver was drained because it reads only that member.
    reads_member: bool,
}

/// The images a static-pod component's manifests name, shipped by another row of the table.
fn images_of(pods: ComponentId) -> Option<ComponentId> {
    match pods {
        ComponentId::ControlPlane => Some(ComponentId::ControlPlaneImages),
        ComponentId::EtcdStaticPod => Some(ComponentId::EtcdImage),
        _ => None,
    }
}

impl Engine {
    /// `host`'s new manifest: guarded (etcd), its images imported, its apiserver drained when
    /// the kubelet replaces it or the only etcd member it reads, the manifest written, then the
    /// pod back (and the apiserver ready and back in every haproxy) before the next host.
    async fn new_manifest_on(
        &self,
        turn: PodTurn<'_>,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let PodTurn {
            phase,
            pods,
            host,
            replaces_apiserver: apiserver,
            order,
            special,
            done,
        } = turn;
        let rolling = pods.rolling.expect("a rolling component");
        if pods.id == ComponentId::EtcdStaticPod {
            // The quorum guard; the leader hands over to a member already done.
            self.before_member_restart(phase, host, special, done, opts.force)
                .await?;
        }
        if let Some(images) = images_of(pods.id) {
            // Before anything is drained: a failed import leaves the host as it was.
            self.import_images(host, images).await.map_err(|e| {
                let step = format!("import {}'s images", pods.name);
                unit_failed(phase, host, step, &e)
            })?;
        }
        // Stacked: the host's apiserver reads only the member the kubelet replaces.
        let reads_member = pods.id == ComponentId::EtcdStaticPod
            && self.apiserver_reads_only_local_etcd(host, state).await;
        let before = if apiserver {
            let before = self.apiserver_processes(host).await;
            self.drain_apiserver(phase, host, "the kubelet replaces its kube-apiserver")
                .await;
            before
        } else {
            if reads_member {
                let why =
                    "the kubelet replaces its etcd member (its apiserver reads only that member)";
                self.drain_apiserver(phase, host, why).await;
            }
            None
        };
        let drained = apiserver || reads_member;
        // The member that runs now: the phase's checks pass on it until the kubelet replaces
        // it, so the roll waits for its replacement first.
        let member_before = if pods.id == ComponentId::EtcdStaticPod {
            Some(self.processes(host, "etcd").await)
        } else {
            None
        };
        let one = JobOptions::visible(opts, false, true);
        let step = RestartStep::begin(self, phase, host, pods.name, RestartKind::NewManifest);
        if let Err(e) = self.run_jobs(phase, &[host.to_string()], &one, state).await {
            if drained {
                self.undrain_after_failure(phase, host).await;
            }
            return Err(e);
        }
        let healthy = self
            .pod_back(
                host,
                rolling.healthy,
                PodsBefore {
                    apiserver: apiserver.then_some(before),
                    member: member_before,
                    reads_member,
                },
                phase,
                opts,
                state,
            )
            .await;
        if drained && healthy.is_err() {
            self.undrain_after_failure(phase, host).await;
        }
        step.end(self, healthy, order)
    }

    /// After `host`'s new manifest: a replaced apiserver running anew (and back in every
    /// haproxy), a replaced etcd member running anew, the phase's checks, then an apiserver
    /// drained for its etcd member ready and back in every haproxy.
    async fn pod_back(
        &self,
        host: &str,
        healthy: crate::components::Healthy,
        before: PodsBefore,
        phase: &Phase,
        opts: &RunOptions,
        state: &RunState,
    ) -> Result<String, crate::engine::verify::WaitError> {
        let mut said = Vec::new();
        if let Some(apiserver) = before.apiserver {
            said.push(self.static_apiserver_back(host, apiserver).await?);
        }
        if let Some(member) = before.member {
            said.push(self.static_pod_replaced(host, "etcd", member).await?);
        }
        said.push(
            self.serving_again(phase, host, healthy, opts, state)
                .await?,
        );
        if before.reads_member {
            said.push(self.apiserver_back_after_etcd(host).await?);
        }
        Ok(said.join("; "))
    }
}
