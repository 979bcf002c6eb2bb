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
        for host in &order {
            if self.cancel.is_cancelled() {
                return Err(RunError::Interrupted);
            }
            if opts.dry_run {
                self.run_jobs(phase, std::slice::from_ref(host), &one, state)
                    .await?;
                continue;
            }
            if pods.id == ComponentId::EtcdStaticPod {
                self.guard_restart(phase, host, opts.force).await?;
            }
            if pods.id == ComponentId::ControlPlane {
                // Before anything is drained: a failed import leaves the host as it was.
                self.import_control_plane_images(host).await.map_err(|e| {
                    unit_failed(phase, host, "import the control plane's images".into(), &e)
                })?;
            }
            let apiserver = apiserver_moves.contains(&host);
            let before = if apiserver {
                let before = self.apiserver_processes(host).await;
                self.drain_apiserver(phase, host, "the kubelet replaces its kube-apiserver")
                    .await;
                before
            } else {
                None
            };
            let step = RestartStep::begin(self, phase, host, pods.name, RestartKind::NewManifest);
            if let Err(e) = self
                .run_jobs(phase, std::slice::from_ref(host), &one, state)
                .await
            {
                if apiserver {
                    self.undrain_after_failure(phase, host).await;
                }
                return Err(e);
            }
            let back = if apiserver {
                self.static_apiserver_back(host, before).await.map(Some)
            } else {
                Ok(None)
            };
            let healthy = match back {
                Ok(back) => self
                    .serving_again(phase, host, rolling.healthy, opts, state)
                    .await
                    .map(|checks| match back {
                        Some(back) => format!("{back}; {checks}"),
                        None => checks,
                    }),
                Err(e) => Err(e),
            };
            if apiserver && healthy.is_err() {
                self.undrain_after_failure(phase, host).await;
            }
            step.end(self, healthy, &order)?;
        }
        Ok(())
    }
}
