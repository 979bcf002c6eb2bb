//! Playbooks: a deployment as data. Each phase names the roles it runs on and a list of actions
//! from a small closed set the engine implements (packages, artifact, files, pki, service,
//! command), plus checks made from the operator machine once every host is done (`wait`).
//! `playbooks/*.yaml` are embedded in the binary; `--playbooks DIR` reads them from a directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::Role;
use crate::config::duration::ConfigDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub phases: Vec<Phase>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Stable name: `--skip-phases`, `--only-phase` and `--from-phase` take it.
    pub name: String,
    pub title: String,
    /// A step the operator machine runs itself instead of host actions.
    #[serde(default)]
    pub run: Option<OperatorStep>,
    /// Hosts with any of these roles run the actions.
    #[serde(default)]
    pub on: Vec<Role>,
    /// The phase runs only when this holds for the cluster.
    #[serde(default)]
    pub when: Option<Condition>,
    // `- files: {...}`: one-key maps name the variant (serde_yaml's default would be YAML tags).
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub actions: Vec<Action>,
    /// Checked from the operator after every host finished the actions.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub wait: Vec<Wait>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorStep {
    /// Every preflight check; failures stop the run (see --ignore-preflight-errors).
    Preflight,
    /// `kinit certs generate` and the etcd cluster token.
    Pki,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// spec.timeSync.servers is not empty.
    TimeServers,
    /// controlPlaneEndpoint.loadBalancer is haproxy-keepalived.
    HaproxyKeepalived,
    /// etcd.mode is systemd.
    EtcdSystemd,
    /// etcd.mode is static-pod (the kubelet runs etcd).
    EtcdStaticPod,
}

impl Condition {
    pub fn holds(self, inv: &crate::inventory::Inventory) -> bool {
        use crate::config::{EtcdMode, LoadBalancerKind};
        match self {
            Condition::TimeServers => !inv.time_servers.is_empty(),
            Condition::HaproxyKeepalived => {
                inv.endpoint.load_balancer == LoadBalancerKind::HaproxyKeepalived
            }
            Condition::EtcdSystemd => inv.etcd.mode == EtcdMode::Systemd,
            Condition::EtcdStaticPod => inv.etcd.mode == EtcdMode::StaticPod,
        }
    }

    /// Why a phase with this condition does not run, in the config's words.
    pub fn unmet(self) -> &'static str {
        match self {
            Condition::TimeServers => "spec.timeSync.servers is empty",
            Condition::HaproxyKeepalived => {
                "controlPlaneEndpoint.loadBalancer is not haproxy-keepalived"
            }
            Condition::EtcdSystemd => "etcd.mode is not systemd",
            Condition::EtcdStaticPod => "etcd.mode is not static-pod",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Distribution packages that must be installed (installed when missing).
    Packages(Vec<String>),
    /// A binary from the artifacts bundle, checked against SHA256SUMS here and on the host.
    Artifact(ArtifactAction),
    /// Rendered files, by template (templates a host does not receive are skipped).
    Files(FilesAction),
    /// The host's tree from the PKI dir (certificates, keys, kubeconfigs).
    Pki(PkiAction),
    /// A systemd unit: enabled, running, restarted when one of its inputs changed.
    Service(ServiceAction),
    /// A command, skipped when `unless` succeeds.
    Command(CommandAction),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactAction {
    /// Name in the bundle (and in SHA256SUMS).
    pub file: String,
    /// Absolute path on the host.
    pub to: String,
    #[serde(default = "mode_755", deserialize_with = "octal")]
    pub mode: u32,
    /// The unit to restart when the binary changes.
    #[serde(default)]
    pub restart: Option<String>,
    /// A bundle without it is fine: the action is skipped and says so.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesAction {
    pub templates: Vec<String>,
    /// Skipped unless the bundle holds all of these.
    #[serde(default)]
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiAction {
    /// Files under these prefixes (relative to /etc/kubernetes) restart the unit when changed.
    #[serde(default)]
    pub restart: Vec<RestartRule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartRule {
    pub under: String,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAction {
    pub unit: String,
    #[serde(default = "yes")]
    pub enable: bool,
    #[serde(default)]
    pub start: StartPolicy,
    /// Do not wait for the unit to report ready (etcd members must start together).
    #[serde(default)]
    pub no_block: bool,
    /// Skipped unless the bundle holds all of these.
    #[serde(default)]
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartPolicy {
    /// Running after the action; restarted when an input changed.
    #[default]
    Always,
    /// Only (re)started when an input changed (one-shot units such as systemd-sysctl).
    OnChange,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandAction {
    pub run: String,
    #[serde(default)]
    pub unless: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Every etcd member healthy over mTLS from the operator, and the member list is the
    /// inventory's etcd hosts.
    EtcdHealthy(EtcdWait),
    /// Each host of the phase accepts TCP connections on the port.
    Tcp(TcpWait),
    /// Exactly one host holds the VIP, and VIP:port accepts connections.
    Vip(Timeout),
    /// Each host of the phase answers HTTPS on the port and path (verified against the CA).
    Https(HttpsWait),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdWait {
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Skipped (and said so) unless the bundle holds all of these.
    #[serde(default)]
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpWait {
    pub port: u16,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsWait {
    pub port: u16,
    pub path: String,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub needs: Vec<String>,
}

fn yes() -> bool {
    true
}

fn mode_755() -> u32 {
    0o755
}

fn octal<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let text = String::deserialize(d)?;
    u32::from_str_radix(&text, 8).map_err(|_| {
        serde::de::Error::custom(format!("`{text}` is not an octal mode like \"0755\""))
    })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<ConfigDuration>()
        .map(|c| c.as_duration())
        .map_err(serde::de::Error::custom)
}

/// Where a playbook came from, for messages.
#[derive(Debug, Clone)]
pub enum PlaybookSource {
    Embedded(&'static str),
    File(PathBuf),
}

impl std::fmt::Display for PlaybookSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaybookSource::Embedded(name) => write!(f, "playbooks/{name} (built in)"),
            PlaybookSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

const STACKED: &str = include_str!("../../playbooks/stacked.yaml");
const EXTERNAL: &str = include_str!("../../playbooks/external.yaml");

/// The playbook for a topology: `<dir>/<name>.yaml` when a directory is given, else built in.
pub fn load(name: &str, dir: Option<&Path>) -> Result<Playbook, PlaybookError> {
    let file = format!("{name}.yaml");
    let (text, source) = match dir {
        Some(dir) => {
            let path = dir.join(&file);
            let text = std::fs::read_to_string(&path).map_err(|source| PlaybookError::Read {
                path: path.clone(),
                source,
            })?;
            (text, PlaybookSource::File(path))
        }
        None => {
            let text = match name {
                "stacked" => STACKED,
                "external" => EXTERNAL,
                other => {
                    return Err(PlaybookError::Invalid {
                        source_name: format!("playbooks/{other}.yaml"),
                        message: "no such built-in playbook (stacked, external)".into(),
                    });
                }
            };
            (
                text.to_string(),
                PlaybookSource::Embedded(if name == "stacked" {
                    "stacked.yaml"
                } else {
                    "external.yaml"
                }),
            )
        }
    };
    parse(&text, &source)
}

/// Parse and check a playbook: names unique, operator steps without host actions, templates
/// known.
pub fn parse(text: &str, source: &PlaybookSource) -> Result<Playbook, PlaybookError> {
    let invalid = |message: String| PlaybookError::Invalid {
        source_name: source.to_string(),
        message,
    };
    let book: Playbook = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut seen = Vec::new();
    for (i, phase) in book.phases.iter().enumerate() {
        let at = format!("phases[{i}] ({})", phase.name);
        if seen.contains(&phase.name.as_str()) {
            return Err(invalid(format!("{at}: the phase name is used twice")));
        }
        seen.push(phase.name.as_str());
        match phase.run {
            Some(_) if !phase.actions.is_empty() || !phase.on.is_empty() => {
                return Err(invalid(format!(
                    "{at}: a phase with `run` runs on this machine and takes no `on` or `actions`"
                )));
            }
            None if phase.on.is_empty() => {
                return Err(invalid(format!(
                    "{at}: `on` must name the roles whose hosts run the actions"
                )));
            }
            _ => {}
        }
        for action in &phase.actions {
            match action {
                Action::Files(f) => {
                    let known = crate::render::templates::EMBEDDED;
                    if let Some(t) = f
                        .templates
                        .iter()
                        .find(|t| !known.iter().any(|(name, _)| name == t))
                    {
                        let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                        return Err(invalid(format!(
                            "{at}: files: no template named `{t}` (known: {})",
                            names.join(", ")
                        )));
                    }
                }
                Action::Artifact(a) if !a.to.starts_with('/') => {
                    return Err(invalid(format!(
                        "{at}: artifact {}: `to` must be an absolute path",
                        a.file
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(book)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_playbooks_parse() {
        for name in ["stacked", "external"] {
            let book = load(name, None).unwrap();
            assert_eq!(book.name, name);
            assert!(book.phases.iter().any(|p| p.name == "etcd"));
        }
    }

    fn inventory(topology: &str, etcd_mode: &str) -> crate::inventory::Inventory {
        use crate::config::template::{InitShape, render};
        let text = render(InitShape {
            topology: if topology == "external" {
                crate::config::Topology::External
            } else {
                crate::config::Topology::Stacked
            },
            control_planes: 3,
            workers: 0,
            etcd_hosts: 3,
        })
        .unwrap()
        .replace("mode: systemd", &format!("mode: {etcd_mode}"));
        let (cfg, report) = crate::config::check(Path::new("c.yaml"), text);
        assert!(!report.has_errors(), "{report:?}");
        crate::inventory::Inventory::from_config(&cfg.unwrap(), Path::new("/tmp"), None).unwrap()
    }

    fn phases_run(book: &Playbook, inv: &crate::inventory::Inventory) -> Vec<String> {
        book.phases
            .iter()
            .filter(|p| p.when.is_none_or(|c| c.holds(inv)))
            .map(|p| p.name.clone())
            .collect()
    }

    #[test]
    fn the_etcd_mode_picks_the_etcd_phase_and_no_time_servers_skips_chrony() {
        for topology in ["stacked", "external"] {
            let book = load(topology, None).unwrap();
            let systemd = inventory(topology, "systemd");
            assert_eq!(
                phases_run(&book, &systemd),
                [
                    "preflight",
                    "pki",
                    "certificates",
                    "etcd",
                    "load-balancer",
                    "control-plane"
                ]
            );
            let static_pod = inventory(topology, "static-pod");
            assert_eq!(
                phases_run(&book, &static_pod),
                [
                    "preflight",
                    "pki",
                    "certificates",
                    "etcd-static-pod",
                    "load-balancer",
                    "control-plane"
                ]
            );
        }
    }

    #[test]
    fn an_unknown_action_names_the_place() {
        let text = "name: x\nphases:\n  - name: a\n    title: A\n    on: [etcd]\n    actions:\n      - upload: {}\n";
        let err = parse(text, &PlaybookSource::Embedded("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `upload`"), "{err}");
        assert!(err.contains("line 7"), "{err}");
    }

    #[test]
    fn an_unknown_template_is_refused() {
        let text = "name: x\nphases:\n  - name: a\n    title: A\n    on: [etcd]\n    actions:\n      - files: {templates: [nope.tera]}\n";
        let err = parse(text, &PlaybookSource::Embedded("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no template named `nope.tera`"), "{err}");
    }

    #[test]
    fn durations_and_modes_are_read() {
        let text = "name: x\nphases:\n  - name: a\n    title: A\n    on: [etcd]\n    actions:\n      - artifact: {file: etcd, to: /usr/local/bin/etcd, mode: \"0700\"}\n    wait:\n      - etcd-healthy: {timeout: 2m}\n";
        let book = parse(text, &PlaybookSource::Embedded("x.yaml")).unwrap();
        let phase = &book.phases[0];
        assert!(matches!(&phase.actions[0], Action::Artifact(a) if a.mode == 0o700));
        assert_eq!(
            phase.wait[0],
            Wait::EtcdHealthy(EtcdWait {
                timeout: Duration::from_secs(120),
                needs: Vec::new(),
            })
        );
    }
}
