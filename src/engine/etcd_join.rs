//! The etcd phase when etcd already runs: the members that vote keep the settings they started
//! with (so a longer member list in cluster.yaml restarts none of them), and each etcd host
//! that is not a member yet joins as a learner, one at a time: added through a healthy member,
//! started with `initial-cluster-state: existing` and the current member list, promoted once
//! etcd says it caught up. A run cut short in the middle resumes without a second member for
//! the same host ([`crate::planning::join_plan`]).

use std::time::{Duration, Instant};

use super::etcd_members;
use super::event::Event;
use super::playbook::Phase;
use super::run_context::{Engine, RunOptions, RunState};
pub use super::run_error::JoinError;
use super::run_error::{OperatorError, RunError};
use super::verify;
use crate::components::ComponentId;
use crate::etcd::{self, ClientTls, EtcdError, Member};
use crate::inventory::EtcdBootstrap;
use crate::planning::join_plan::{self, JoinPlan, Joiner};
use crate::planning::membership;
use crate::ssh::ExecOptions;

/// One etcd request.
const REQUEST: Duration = Duration::from_secs(5);
/// One etcd request of the check before the run (a new cluster: nothing answers).
const PRECHECK: Duration = Duration::from_secs(2);
/// How long a learner may take to start (it then has a name in the member list).
const START_WAIT: Duration = Duration::from_secs(60);
/// How long a learner may take to catch up with the leader (a snapshot of a large store).
const PROMOTE_WAIT: Duration = Duration::from_secs(300);
/// How long a membership change etcd refuses as unsafe for now ("unhealthy cluster": members
/// that just started) is retried.
const RECONFIG_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

/// Whether `phase` converges etcd (as a unit or a static pod).
pub fn joins_etcd(phase: &Phase) -> bool {
    phase
        .converge
        .iter()
        .any(|c| matches!(c, ComponentId::Etcd | ComponentId::EtcdStaticPod))
}

/// What etcd's own file on a host says about its first start: `initial-cluster` and
/// `initial-cluster-state`, from a config file (`key: value`) or a static pod (`--key=value`).
/// `None` when the file does not have both.
pub fn read_bootstrap(text: &str) -> Option<(String, String)> {
    let mut cluster = None;
    let mut state = None;
    for line in text.lines() {
        let line = line
            .trim()
            .trim_start_matches("- ")
            .trim_start_matches("--");
        let (key, value) = line
            .split_once(": ")
            .or_else(|| line.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap_or(("", ""));
        match key {
            "initial-cluster" => cluster = Some(value.to_string()),
            "initial-cluster-state" => state = Some(value.to_string()),
            _ => {}
        }
    }
    Some((cluster?, state?))
}

/// A value read back from a host goes into a rendered file only when it is what kinit writes:
/// `name=https://addr:port,...` and `new` or `existing`.
fn check_bootstrap(
    host: &str,
    path: &'static str,
    cluster: &str,
    state: &str,
) -> Result<EtcdBootstrap, JoinError> {
    let bad = |key, value: &str| JoinError::BadBootstrap {
        host: host.to_string(),
        path,
        key,
        value: value.to_string(),
    };
    let url_chars = |c: char| c.is_ascii_alphanumeric() || "-._:/[]=,".contains(c);
    if cluster.is_empty() || !cluster.chars().all(url_chars) {
        return Err(bad("initial-cluster", cluster));
    }
    if state != "new" && state != "existing" {
        return Err(bad("initial-cluster-state", state));
    }
    Ok(EtcdBootstrap {
        initial_cluster: cluster.to_string(),
        state: state.to_string(),
    })
}

fn etcd_step(
    host: &str,
    step: &'static str,
    endpoint: &str,
) -> impl FnOnce(EtcdError) -> JoinError {
    let host = host.to_string();
    let endpoint = endpoint.to_string();
    move |e| JoinError::Etcd {
        host,
        step,
        endpoint,
        source: Box::new(e),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

impl Engine {
    fn join_failed(phase: &Phase, e: impl Into<JoinError>) -> RunError {
        match e.into() {
            JoinError::Interrupted => RunError::Interrupted,
            e => RunError::Operator {
                phase: phase.name.clone(),
                error: OperatorError::Join(e),
            },
        }
    }

    fn member_event(
        &self,
        phase: &Phase,
        host: &str,
        action: &'static str,
        seconds: Option<f64>,
        message: String,
    ) {
        self.emit(Event::EtcdMember {
            phase: phase.name.clone(),
            host: host.to_string(),
            action,
            seconds,
            message,
        });
    }

    /// Refuse, before any host is touched, a cluster.yaml whose etcd hosts cannot join the
    /// running cluster (an address that is a member under another name).
    pub(super) async fn check_joins(&self, phases: &[Phase]) -> Result<(), RunError> {
        let Some(phase) = phases.iter().find(|p| joins_etcd(p)) else {
            return Ok(());
        };
        let Ok(tls) = ClientTls::from_pki_dir(&self.inventory.pki_dir) else {
            return Ok(());
        };
        let Some((_, live)) = etcd_members::live_members(&self.inventory, &tls, PRECHECK).await
        else {
            return Ok(());
        };
        join_plan::plan(&self.inventory, &live)
            .map(|_| ())
            .map_err(|e| Self::join_failed(phase, e))
    }

    /// The etcd phase: a plain converge when no member answers (a new cluster starts with
    /// every member), else the running members kept as they are and the new ones joined.
    pub(super) async fn etcd_phase(
        &mut self,
        phase: &Phase,
        hosts: &[String],
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let answer = match ClientTls::from_pki_dir(state.pki.dir()) {
            Ok(tls) => match self.live_members(&tls).await {
                Ok((via, live)) => Some((tls, via, live)),
                Err(why) => {
                    self.keep_running_bootstrap(phase, hosts, why).await?;
                    None
                }
            },
            Err(_) => None,
        };
        let Some((tls, via, live)) = answer else {
            state.rendered = None;
            self.converge(phase, hosts, opts, state).await?;
            return self.wait_for(phase, hosts, opts, state).await;
        };
        let plan =
            join_plan::plan(&self.inventory, &live).map_err(|e| Self::join_failed(phase, e))?;
        for s in &plan.strangers {
            self.member_event(
                phase,
                &s.name,
                "not-in-config",
                None,
                format!(
                    "member {} ({}, {}) is not in cluster.yaml: left as it is (to take it \
                     out, put its host back in cluster.yaml and run `kinit remove {}`)",
                    s.name,
                    s.id,
                    s.peer_urls.join(", "),
                    s.name
                ),
            );
        }
        let learners = plan
            .joiners
            .iter()
            .filter(|j| j.learner.is_some())
            .map(|j| &j.host);
        let started: Vec<String> = plan.members.iter().chain(learners).cloned().collect();
        self.keep_bootstrap(phase, &started).await?;
        let running: Vec<String> = hosts
            .iter()
            .filter(|h| !plan.joiners.iter().any(|j| &j.host == *h))
            .cloned()
            .collect();
        state.rendered = None;
        self.converge(phase, &running, opts, state).await?;
        for joiner in &plan.joiners {
            if opts.dry_run {
                self.member_event(
                    phase,
                    &joiner.host,
                    "would-join",
                    None,
                    format!(
                        "{} would be added as a learner and promoted once caught up",
                        joiner.host
                    ),
                );
                continue;
            }
            self.join(phase, joiner, &tls, &via, opts, state).await?;
        }
        self.wait_for(phase, hosts, opts, state).await
    }

    /// The live member list from the first etcd host that gives one, or why none did.
    async fn live_members(&self, tls: &ClientTls) -> Result<(String, Vec<Member>), String> {
        let mut errors = Vec::new();
        for (name, ep) in membership::client_endpoints(&self.inventory) {
            match etcd::member_list(tls, &ep, REQUEST).await {
                Ok(list) => return Ok((ep, list)),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        Err(errors.join("; "))
    }

    /// No member answers: a new cluster, or one that is down. Hosts whose etcd already has a
    /// config keep its `initial-*` settings (a restart would change nothing else); a host
    /// without one cannot join a cluster that does not answer, so the run stops.
    async fn keep_running_bootstrap(
        &mut self,
        phase: &Phase,
        hosts: &[String],
        why: String,
    ) -> Result<(), RunError> {
        let set_up = self.keep_bootstrap(phase, hosts).await?;
        if !set_up.is_empty() {
            self.emit(Event::Note {
                phase: phase.name.clone(),
                message: format!("no etcd member answers: {why}"),
            });
        }
        let fresh: Vec<String> = hosts
            .iter()
            .filter(|h| !set_up.contains(h))
            .cloned()
            .collect();
        if !set_up.is_empty() && !fresh.is_empty() {
            return Err(Self::join_failed(
                phase,
                JoinError::NoMemberAnswers {
                    running: set_up.join(", "),
                    joining: fresh.join(", "),
                    why,
                },
            ));
        }
        Ok(())
    }

    /// Members that run keep the `initial-*` settings their file has (etcd ignores them after
    /// the first start, and a changed file would restart the member). The hosts that have one.
    async fn keep_bootstrap(
        &mut self,
        phase: &Phase,
        hosts: &[String],
    ) -> Result<Vec<String>, RunError> {
        let path = crate::components::etcd_start_file(&self.inventory).path;
        let command = format!(
            "cat {} 2>/dev/null || true",
            crate::ssh::quote::quote(path).expect("a plain path")
        );
        let mut found = Vec::new();
        for host in hosts {
            let read = async {
                let session = self.pool.get(&self.targets[host]).await.ok()?;
                let opts = ExecOptions {
                    timeout: Some(REQUEST),
                    ..Default::default()
                };
                session.exec(&command, &opts).await.ok()
            };
            let Some(out) = read.await else { continue };
            if let Some((cluster, st)) = read_bootstrap(&out.stdout_text()) {
                let b = check_bootstrap(host, path, &cluster, &st)
                    .map_err(|e| Self::join_failed(phase, e))?;
                self.inventory.etcd_bootstrap.insert(host.clone(), b);
                found.push(host.clone());
            }
        }
        Ok(found)
    }

    /// Add `joiner` as a learner (after removing an unstarted member of its own), start its
    /// etcd with the current member list, and promote it once it caught up.
    async fn join(
        &mut self,
        phase: &Phase,
        joiner: &Joiner,
        tls: &ClientTls,
        via: &str,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<(), RunError> {
        let host = joiner.host.as_str();
        let failed = |e| Self::join_failed(phase, e);
        let started = Instant::now();
        let (id, members) = match joiner.learner {
            Some(id) => {
                let list = etcd::member_list(tls, via, REQUEST)
                    .await
                    .map_err(etcd_step(host, "listing members", via))
                    .map_err(failed)?;
                (id, list)
            }
            None => {
                if let Some(stale) = joiner.stale {
                    let removing = async {
                        retry_reconfig(|| etcd::member_remove(tls, via, stale, REQUEST))
                            .await
                            .map_err(etcd_step(host, "removing its unstarted member", via))
                    };
                    verify::or_cancelled(&self.cancel, Err(JoinError::Interrupted), removing)
                        .await
                        .map_err(failed)?;
                    self.member_event(
                        phase,
                        host,
                        "unstarted-removed",
                        None,
                        format!("{host}: removed member {stale:x}, added by an earlier run and never started"),
                    );
                }
                let peer = [joiner.peer_url.clone()];
                let adding = async {
                    retry_reconfig(|| etcd::member_add(tls, via, &peer, true, REQUEST))
                        .await
                        .map_err(etcd_step(host, "adding it as a learner", via))
                };
                let (m, list) =
                    verify::or_cancelled(&self.cancel, Err(JoinError::Interrupted), adding)
                        .await
                        .map_err(failed)?;
                self.member_event(
                    phase,
                    host,
                    "learner-added",
                    None,
                    format!("{host} added as learner {:x} ({})", m.id, joiner.peer_url),
                );
                (m.id, list)
            }
        };
        self.inventory.etcd_bootstrap.insert(
            host.to_string(),
            EtcdBootstrap {
                initial_cluster: JoinPlan::initial_cluster(&members, joiner),
                state: "existing".into(),
            },
        );
        state.rendered = None;
        self.converge(phase, &[host.to_string()], opts, state)
            .await?;
        let interrupted = Err(JoinError::Interrupted);
        verify::or_cancelled(
            &self.cancel,
            interrupted,
            self.wait_started(host, id, tls, via),
        )
        .await
        .map_err(failed)?;
        let interrupted = Err(JoinError::Interrupted);
        verify::or_cancelled(&self.cancel, interrupted, self.promote(host, id, tls, via))
            .await
            .map_err(failed)?;
        let took = started.elapsed();
        self.member_event(
            phase,
            host,
            "promoted",
            Some(took.as_secs_f64()),
            format!("{host} added as learner, promoted after {}", seconds(took)),
        );
        Ok(())
    }

    async fn wait_started(
        &self,
        host: &str,
        id: u64,
        tls: &ClientTls,
        via: &str,
    ) -> Result<(), JoinError> {
        let start = Instant::now();
        loop {
            let list = etcd::member_list(tls, via, REQUEST).await;
            if let Ok(list) = &list
                && list
                    .iter()
                    .any(|m: &Member| m.id == id && !m.name.is_empty())
            {
                return Ok(());
            }
            if start.elapsed() > START_WAIT {
                return Err(JoinError::NotStarted {
                    host: host.to_string(),
                    id: format!("{id:x}"),
                    after: START_WAIT,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn promote(
        &self,
        host: &str,
        id: u64,
        tls: &ClientTls,
        via: &str,
    ) -> Result<(), JoinError> {
        let start = Instant::now();
        loop {
            match etcd::member_promote(tls, via, id, REQUEST).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_learner_not_in_sync() || e.is_unhealthy_cluster() => {
                    if start.elapsed() > PROMOTE_WAIT {
                        return Err(JoinError::NotCaughtUp {
                            host: host.to_string(),
                            id: format!("{id:x}"),
                            after: PROMOTE_WAIT,
                        });
                    }
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(etcd_step(host, "promoting its learner", via)(e)),
            }
        }
    }
}

/// Retry a membership change etcd refuses for now as unsafe ("unhealthy cluster").
async fn retry_reconfig<T, F, Fut>(mut call: F) -> Result<T, EtcdError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, EtcdError>>,
{
    let start = Instant::now();
    loop {
        match call().await {
            Err(e) if e.is_unhealthy_cluster() && start.elapsed() < RECONFIG_WAIT => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_initial_settings_from_a_config_file_and_a_static_pod() {
        let conf = "name: cp1\ninitial-cluster: cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380\n\
                    initial-cluster-state: new\ninitial-cluster-token: t\n";
        assert_eq!(
            read_bootstrap(conf),
            Some((
                "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380".into(),
                "new".into()
            ))
        );
        let pod = "    - --initial-cluster=cp1=https://10.0.0.1:2380\n    - --initial-cluster-state=existing\n";
        assert_eq!(
            read_bootstrap(pod),
            Some(("cp1=https://10.0.0.1:2380".into(), "existing".into()))
        );
        assert_eq!(read_bootstrap("name: cp1\n"), None);
    }

    #[test]
    fn a_value_read_back_never_adds_a_line_or_a_key() {
        let p = crate::host_paths::ETCD_CONFIG;
        assert!(check_bootstrap("cp1", p, "cp1=https://10.0.0.1:2380", "new").is_ok());
        assert!(check_bootstrap("cp1", p, "cp1=https://[fd00::1]:2380", "existing").is_ok());
        assert!(check_bootstrap("cp1", p, "a\nlog-level: debug", "new").is_err());
        assert!(check_bootstrap("cp1", p, "cp1=https://x:2380 #", "new").is_err());
        assert!(check_bootstrap("cp1", p, "cp1=https://x:2380", "fresh").is_err());
    }
}
