//! Before `up` rewrites haproxy.cfg from cluster.yaml, the backend servers the live file has
//! that cluster.yaml no longer names are said (an apiserver dropped from the load balancer is
//! never a silent side effect of `up`; `kinit remove` is the way to take a control plane out).

use std::time::Duration;

use super::event::Event;
use super::playbook::Phase;
use super::run_context::Engine;
use crate::components::ComponentId;
use crate::host_paths;
use crate::ssh::ExecOptions;

const READ_LIMIT: Duration = Duration::from_secs(10);

/// Whether the phase writes haproxy's config.
pub fn writes_haproxy(phase: &Phase) -> bool {
    phase.converge.contains(&ComponentId::Haproxy)
}

/// `(name, address)` of each `server` line of a haproxy.cfg.
pub fn backend_servers(cfg: &str) -> Vec<(String, String)> {
    cfg.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "server").then_some(())?;
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

impl Engine {
    /// One note per host whose live haproxy.cfg has servers cluster.yaml does not name. A host
    /// that cannot be read is left to the phase itself to report.
    pub(super) async fn report_stray_backends(&self, phase: &Phase, hosts: &[String]) {
        let named: Vec<&str> = self
            .inventory
            .control_plane()
            .map(|h| h.name.as_str())
            .collect();
        let command = format!("cat {} 2>/dev/null || true", host_paths::HAPROXY_CFG);
        let opts = ExecOptions {
            timeout: Some(READ_LIMIT),
            ..Default::default()
        };
        for host in hosts {
            let Some(target) = self.targets.get(host) else {
                continue;
            };
            let Ok(session) = self.pool.get(target).await else {
                continue;
            };
            let Ok(out) = session.exec(&command, &opts).await else {
                continue;
            };
            let strays: Vec<String> = backend_servers(&out.stdout_text())
                .into_iter()
                .filter(|(name, _)| !named.contains(&name.as_str()))
                .map(|(name, address)| format!("{name} ({address})"))
                .collect();
            if !strays.is_empty() {
                self.emit(Event::Note {
                    phase: phase.name.clone(),
                    message: format!(
                        "{host}: haproxy's backend server(s) {} are not in cluster.yaml: this run \
                         drops them from haproxy.cfg. To take a control plane out, put it back \
                         in cluster.yaml and run `kinit remove HOST`",
                        strays.join(", ")
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lines_give_name_and_address() {
        let cfg = "backend apiserver\n    default-server inter 2s\n    server cp1 10.0.0.11:6443 check verify none\n    server cp4 10.0.0.14:6443 check\n# server x y\n";
        assert_eq!(
            backend_servers(cfg),
            [
                ("cp1".to_string(), "10.0.0.11:6443".to_string()),
                ("cp4".into(), "10.0.0.14:6443".into())
            ]
        );
    }
}
