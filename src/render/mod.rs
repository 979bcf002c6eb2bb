//! Every file kinit puts on a host, rendered from templates (`templates/*.tera`) before anything
//! is touched. Pure: inventory + templates in, files out. Writing them for review is
//! [`write::write_host`]; deploying them is the engine's job.

pub mod context;
pub mod error;
pub mod manifest;
pub mod templates;
pub mod vrrp;
pub mod write;

use serde::Serialize;

pub use error::{RenderError, TemplateError};
pub use templates::{TemplateSource, Templates};

use crate::config::{EtcdMode, LoadBalancerKind, Role};
use crate::host_paths as paths;
use crate::inventory::{Host, Inventory};

/// One file as it must be on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    /// Absolute path on the host.
    pub path: &'static str,
    pub content: String,
    pub mode: u32,
    pub owner: &'static str,
    /// The systemd unit to restart when the content changes. None: nothing to restart (static
    /// pod manifests are picked up by the kubelet itself; scripts are read on each run).
    pub restart: Option<&'static str>,
    /// The template it came from.
    pub template: &'static str,
}

/// What a host receives: which template becomes which file, with what mode and restart.
#[derive(Debug, Clone, Copy)]
struct Planned {
    template: &'static str,
    path: &'static str,
    mode: u32,
    restart: Option<&'static str>,
}

const fn planned(
    template: &'static str,
    path: &'static str,
    mode: u32,
    restart: Option<&'static str>,
) -> Planned {
    Planned {
        template,
        path,
        mode,
        restart,
    }
}

/// The files for `host`, in a fixed order.
fn plan(inv: &Inventory, host: &Host) -> Vec<Planned> {
    let cp = host.has(Role::ControlPlane);
    let etcd = host.has(Role::Etcd);
    let static_pod_etcd = etcd && inv.etcd.mode == EtcdMode::StaticPod;
    // The kubelet runs on every Kubernetes node, and on etcd hosts that run etcd as a static pod.
    let kubelet = cp || host.has(Role::Worker) || static_pod_etcd;
    let mut files = Vec::new();
    if etcd {
        match inv.etcd.mode {
            EtcdMode::Systemd => {
                files.push(planned(
                    "etcd.service.tera",
                    paths::ETCD_UNIT,
                    0o644,
                    Some("etcd"),
                ));
                files.push(planned(
                    "etcd.conf.yml.tera",
                    paths::ETCD_CONFIG,
                    0o644,
                    Some("etcd"),
                ));
            }
            // Manifests are 0600 as kubeadm writes them (`WriteStaticPodToDisk`).
            EtcdMode::StaticPod => {
                files.push(planned("etcd.yaml.tera", paths::ETCD_MANIFEST, 0o600, None))
            }
        }
    }
    if cp {
        files.push(planned(
            "kube-apiserver.yaml.tera",
            paths::KUBE_APISERVER_MANIFEST,
            0o600,
            None,
        ));
        files.push(planned(
            "kube-controller-manager.yaml.tera",
            paths::KUBE_CONTROLLER_MANAGER_MANIFEST,
            0o600,
            None,
        ));
        files.push(planned(
            "kube-scheduler.yaml.tera",
            paths::KUBE_SCHEDULER_MANIFEST,
            0o600,
            None,
        ));
        if inv.endpoint.load_balancer == LoadBalancerKind::HaproxyKeepalived {
            files.push(planned(
                "haproxy.cfg.tera",
                paths::HAPROXY_CFG,
                0o644,
                Some("haproxy"),
            ));
            files.push(planned(
                "keepalived.conf.tera",
                paths::KEEPALIVED_CONF,
                0o644,
                Some("keepalived"),
            ));
            // keepalived with enable_script_security runs only root-owned, not group/other
            // writable scripts.
            files.push(planned(
                "check_apiserver.sh.tera",
                paths::CHECK_APISERVER_SH,
                0o755,
                None,
            ));
        }
    }
    if kubelet {
        files.push(planned(
            "kubelet.service.tera",
            paths::KUBELET_UNIT,
            0o644,
            Some("kubelet"),
        ));
        files.push(planned(
            "kubelet-config.yaml.tera",
            paths::KUBELET_CONFIG,
            0o644,
            Some("kubelet"),
        ));
        files.push(planned(
            "sysctl-kubernetes.conf.tera",
            paths::SYSCTL_CONF,
            0o644,
            Some("systemd-sysctl"),
        ));
        files.push(planned(
            "modules-load-kubernetes.conf.tera",
            paths::MODULES_LOAD_CONF,
            0o644,
            Some("systemd-modules-load"),
        ));
    }
    if !inv.time_servers.is_empty() {
        files.push(planned(
            "chrony.conf.tera",
            paths::CHRONY_CONF,
            0o644,
            Some("chrony"),
        ));
    }
    files
}

/// Every file `host` receives.
pub fn render_host(
    inv: &Inventory,
    host: &Host,
    templates: &Templates,
) -> Result<Vec<RenderedFile>, RenderError> {
    let cluster = context::cluster(inv)?;
    render_with(&cluster, inv, host, templates)
}

/// Every host's files, in config order.
pub fn render_all(
    inv: &Inventory,
    templates: &Templates,
) -> Result<Vec<(String, Vec<RenderedFile>)>, RenderError> {
    let cluster = context::cluster(inv)?;
    inv.hosts
        .iter()
        .map(|h| Ok((h.name.clone(), render_with(&cluster, inv, h, templates)?)))
        .collect()
}

fn render_with(
    cluster: &context::Cluster,
    inv: &Inventory,
    host: &Host,
    templates: &Templates,
) -> Result<Vec<RenderedFile>, RenderError> {
    let mut ctx = tera::Context::new();
    ctx.insert("cluster", cluster);
    ctx.insert("host", &context::host(inv, host));
    ctx.insert("paths", &cluster.paths);
    plan(inv, host)
        .into_iter()
        .map(|p| {
            let content = templates.tera.render(p.template, &ctx).map_err(|e| {
                let source = templates
                    .source(p.template)
                    .cloned()
                    .unwrap_or(TemplateSource::Embedded);
                error::template_error(p.template, &source, e)
            })?;
            Ok(RenderedFile {
                path: p.path,
                content,
                mode: p.mode,
                owner: "root:root",
                restart: p.restart,
                template: p.template,
            })
        })
        .collect()
}
