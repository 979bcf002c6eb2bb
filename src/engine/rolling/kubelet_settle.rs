//! After a kubelet restarted under its host's static pods: a kubelet of another release may
//! re-create their containers (their hashes differ) shortly after it starts, or keep them. The
//! roll goes on only once every static pod of the host (kube-apiserver, kube-controller-manager,
//! kube-scheduler, and etcd where it is a static pod) has run the same process for a while: the
//! next host's turn must not start while this one's controller-manager or scheduler is still
//! being replaced.

use std::time::{Duration, Instant};

use super::super::run_context::Engine;
use super::super::verify::WaitError;
use super::apiserver::replaced;
use crate::components;
use crate::engine::host_ops::run_script;

/// How long every static pod's process must stay the same after the kubelet restarted before
/// the host counts as settled (a kubelet of another release re-creates containers within seconds
/// of its start).
const KUBELET_SETTLE: Duration = Duration::from_secs(15);
/// How long the host may take to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(180);
/// One look at the processes.
const LOOK: Duration = Duration::from_secs(5);

/// For each program named in the arguments, a line: the name, then its PIDs in order.
const PROCESSES_BY_PROGRAM: &str =
    r#"for p in "$@"; do printf '%s %s\n' "$p" "$(pgrep -x "$p" | sort -n | tr '\n' ' ')"; done"#;

/// A static pod's program: the process name `pgrep -x` matches (the kernel keeps 15
/// characters: `kube-controller`) and the name an operator knows it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Program {
    process: &'static str,
    name: &'static str,
}

/// The processes of a host's static pods: (program, its PIDs one per line), in the table's
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StaticPodProcesses(Vec<(Program, String)>);

impl StaticPodProcesses {
    /// Read from [`PROCESSES_BY_PROGRAM`]'s output for `programs`: a program missing from the
    /// output has no process.
    fn parse(programs: &[Program], out: &str) -> Self {
        let pids = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map(|p| p.split_whitespace().collect::<Vec<_>>().join("\n"))
                .unwrap_or_default()
        };
        Self(programs.iter().map(|p| (*p, pids(p.process))).collect())
    }

    /// The programs with no process.
    fn missing(&self) -> Vec<&'static str> {
        self.0
            .iter()
            .filter(|(_, pids)| pids.is_empty())
            .map(|(p, _)| p.name)
            .collect()
    }

    /// The programs whose processes are all new since `before`.
    fn recreated_since(&self, before: &Self) -> Vec<&'static str> {
        self.0
            .iter()
            .filter(|(p, now)| {
                before
                    .0
                    .iter()
                    .any(|(b, old)| b == p && !old.is_empty() && replaced(old, now))
            })
            .map(|(p, _)| p.name)
            .collect()
    }
}

/// The programs of the static pods the table puts on `host` (a static-pod component's ports
/// name the process that holds them), each once.
fn static_pod_programs(inv: &crate::inventory::Inventory, host: &str) -> Vec<Program> {
    let mut out: Vec<Program> = Vec::new();
    let Some(h) = inv.host(host) else {
        return out;
    };
    for c in components::on_host(inv, h).filter(|c| c.static_pod) {
        for p in c.ports {
            if !out.iter().any(|o| o.process == p.process) {
                out.push(Program {
                    process: p.process,
                    name: p.label,
                });
            }
        }
    }
    out
}

impl Engine {
    /// The processes of `host`'s static pods now; None when the host does not answer.
    pub(super) async fn static_pod_processes(&self, host: &str) -> Option<StaticPodProcesses> {
        let programs = static_pod_programs(&self.inventory, host);
        let session = self.pool.get(&self.targets[host]).await.ok()?;
        let processes: Vec<&str> = programs.iter().map(|p| p.process).collect();
        let out = run_script(&session, PROCESSES_BY_PROGRAM, &processes, LOOK)
            .await
            .ok()?;
        Some(StaticPodProcesses::parse(&programs, &out.stdout_text()))
    }

    /// After `host`'s kubelet restarted: wait until every static pod of the host runs and has
    /// kept its process for [`KUBELET_SETTLE`], then the apiserver ready and back in every
    /// haproxy. `before`: the processes before the restart, to say which pods were re-created.
    pub(super) async fn static_pods_settled_after_kubelet(
        &self,
        host: &str,
        before: Option<StaticPodProcesses>,
    ) -> Result<String, WaitError> {
        let started = Instant::now();
        let mut seen = self.static_pod_processes(host).await;
        let mut since = Instant::now();
        loop {
            let missing = seen.as_ref().map(|s| s.missing());
            if since.elapsed() >= KUBELET_SETTLE && missing.as_ref().is_some_and(|m| m.is_empty()) {
                break;
            }
            if started.elapsed() > SETTLE_LIMIT {
                let last = match missing {
                    Some(m) if !m.is_empty() => format!("no {} runs on {host}", m.join(", ")),
                    Some(_) => format!(
                        "{host}'s static pods did not keep their processes for {} s",
                        KUBELET_SETTLE.as_secs()
                    ),
                    None => format!("{host} did not answer"),
                };
                return Err(WaitError::TimedOut {
                    waited: started.elapsed(),
                    last: format!("{last} after its kubelet restarted"),
                });
            }
            if self.cancel.is_cancelled() {
                return Err(WaitError::Cancelled);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.static_pod_processes(host).await;
            if now != seen {
                seen = now;
                since = Instant::now();
            }
        }
        let recreated = match (&before, &seen) {
            (Some(old), Some(now)) => now.recreated_since(old),
            _ => Vec::new(),
        };
        let settled = if recreated.is_empty() {
            format!("the kubelet kept {host}'s static pods")
        } else {
            format!("the kubelet re-created {host}'s {}", recreated.join(", "))
        };
        let back = self.apiserver_back_named(host).await?;
        Ok(format!("{settled}; {back}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAMS: &[Program] = &[
        Program {
            process: "kube-apiserver",
            name: "kube-apiserver",
        },
        Program {
            process: "kube-controller",
            name: "kube-controller-manager",
        },
        Program {
            process: "kube-scheduler",
            name: "kube-scheduler",
        },
    ];

    #[test]
    fn each_program_gets_its_own_processes_and_a_silent_one_none() {
        let read = StaticPodProcesses::parse(
            PROGRAMS,
            "kube-apiserver 12 40 \nkube-controller \nkube-scheduler 77 \n",
        );
        assert_eq!(read.missing(), vec!["kube-controller-manager"]);
        assert_eq!(read.0[0].1, "12\n40");
        assert_eq!(read.0[2].1, "77");
    }

    #[test]
    fn only_programs_whose_every_process_is_new_count_as_recreated() {
        let before = StaticPodProcesses::parse(
            PROGRAMS,
            "kube-apiserver 12 \nkube-controller 20 \nkube-scheduler 30 \n",
        );
        let after = StaticPodProcesses::parse(
            PROGRAMS,
            "kube-apiserver 50 \nkube-controller 20 \nkube-scheduler 61 \n",
        );
        assert_eq!(
            after.recreated_since(&before),
            vec!["kube-apiserver", "kube-scheduler"]
        );
        assert!(after.recreated_since(&after).is_empty());
    }
}
