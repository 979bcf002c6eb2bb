//! The templates kinit renders from: the ones built into the binary, each replaceable by a file
//! of the same name in an override directory (`--templates DIR`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{RenderError, template_error};

/// Every template kinit knows, by file name, with its built-in text.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "kube-proxy.service.tera",
        include_str!("../../templates/kube-proxy.service.tera"),
    ),
    (
        "kube-proxy-config.yaml.tera",
        include_str!("../../templates/kube-proxy-config.yaml.tera"),
    ),
    (
        "pod-network.sh.tera",
        include_str!("../../templates/pod-network.sh.tera"),
    ),
    (
        "kinit-pod-network.service.tera",
        include_str!("../../templates/kinit-pod-network.service.tera"),
    ),
    (
        "containerd.service.tera",
        include_str!("../../templates/containerd.service.tera"),
    ),
    (
        "containerd-config.toml.tera",
        include_str!("../../templates/containerd-config.toml.tera"),
    ),
    (
        "containerd-hosts.toml.tera",
        include_str!("../../templates/containerd-hosts.toml.tera"),
    ),
    (
        "containerd-registry-ca.crt.tera",
        include_str!("../../templates/containerd-registry-ca.crt.tera"),
    ),
    (
        "crictl.yaml.tera",
        include_str!("../../templates/crictl.yaml.tera"),
    ),
    (
        "cni-bridge.conflist.tera",
        include_str!("../../templates/cni-bridge.conflist.tera"),
    ),
    (
        "etcd.service.tera",
        include_str!("../../templates/etcd.service.tera"),
    ),
    (
        "etcd.conf.yml.tera",
        include_str!("../../templates/etcd.conf.yml.tera"),
    ),
    (
        "etcd-snapshot.sh.tera",
        include_str!("../../templates/etcd-snapshot.sh.tera"),
    ),
    (
        "kinit-etcd-snapshot.service.tera",
        include_str!("../../templates/kinit-etcd-snapshot.service.tera"),
    ),
    (
        "kinit-etcd-snapshot.timer.tera",
        include_str!("../../templates/kinit-etcd-snapshot.timer.tera"),
    ),
    (
        "kubelet.service.tera",
        include_str!("../../templates/kubelet.service.tera"),
    ),
    (
        "etcd.yaml.tera",
        include_str!("../../templates/etcd.yaml.tera"),
    ),
    (
        "kube-apiserver.yaml.tera",
        include_str!("../../templates/kube-apiserver.yaml.tera"),
    ),
    (
        "kube-controller-manager.yaml.tera",
        include_str!("../../templates/kube-controller-manager.yaml.tera"),
    ),
    (
        "kube-scheduler.yaml.tera",
        include_str!("../../templates/kube-scheduler.yaml.tera"),
    ),
    (
        "kube-apiserver.flags.tera",
        include_str!("../../templates/kube-apiserver.flags.tera"),
    ),
    (
        "kube-apiserver.service.tera",
        include_str!("../../templates/kube-apiserver.service.tera"),
    ),
    (
        "kube-controller-manager.flags.tera",
        include_str!("../../templates/kube-controller-manager.flags.tera"),
    ),
    (
        "kube-controller-manager.service.tera",
        include_str!("../../templates/kube-controller-manager.service.tera"),
    ),
    (
        "kube-scheduler.flags.tera",
        include_str!("../../templates/kube-scheduler.flags.tera"),
    ),
    (
        "kube-scheduler.service.tera",
        include_str!("../../templates/kube-scheduler.service.tera"),
    ),
    (
        "haproxy.cfg.tera",
        include_str!("../../templates/haproxy.cfg.tera"),
    ),
    (
        "keepalived.conf.tera",
        include_str!("../../templates/keepalived.conf.tera"),
    ),
    (
        "check_apiserver.sh.tera",
        include_str!("../../templates/check_apiserver.sh.tera"),
    ),
    (
        "kubelet-config.yaml.tera",
        include_str!("../../templates/kubelet-config.yaml.tera"),
    ),
    (
        "sysctl-kubernetes.conf.tera",
        include_str!("../../templates/sysctl-kubernetes.conf.tera"),
    ),
    (
        "modules-load-kubernetes.conf.tera",
        include_str!("../../templates/modules-load-kubernetes.conf.tera"),
    ),
    (
        "chrony.conf.tera",
        include_str!("../../templates/chrony.conf.tera"),
    ),
];

/// Where a template's text came from, for messages and `kinit render` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    Embedded,
    Override(PathBuf),
}

/// The parsed templates, ready to render.
pub struct Templates {
    pub(super) tera: tera::Tera,
    sources: BTreeMap<&'static str, TemplateSource>,
}

impl Templates {
    /// The templates built into kinit.
    pub fn embedded() -> Result<Self, RenderError> {
        Self::build(
            EMBEDDED
                .iter()
                .map(|(name, text)| (*name, (*text).to_string(), TemplateSource::Embedded)),
        )
    }

    /// What every command that renders reads: the built-in templates, overridden from `dir`
    /// when the operator gave `--templates DIR`. (A command that re-renders files `up` wrote
    /// must see the same overrides, or it would undo them.)
    pub fn load(dir: Option<&Path>) -> Result<Self, RenderError> {
        match dir {
            Some(dir) => Self::with_overrides(dir),
            None => Self::embedded(),
        }
    }

    /// The built-in templates, with each `*.tera` file in `dir` replacing the one of the same
    /// name. A `.tera` file kinit does not know is an error (most likely a misspelt name that
    /// would otherwise be silently ignored).
    pub fn with_overrides(dir: &Path) -> Result<Self, RenderError> {
        let read_dir = |e| RenderError::OverrideDir {
            dir: dir.to_path_buf(),
            source: e,
        };
        let mut overrides: BTreeMap<String, PathBuf> = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".tera") {
                continue;
            }
            if !EMBEDDED.iter().any(|(known, _)| *known == name) {
                return Err(RenderError::UnknownTemplate {
                    path: path.clone(),
                    known: EMBEDDED.iter().map(|(n, _)| *n).collect(),
                });
            }
            overrides.insert(name.to_string(), path);
        }
        let mut entries = Vec::with_capacity(EMBEDDED.len());
        for (name, text) in EMBEDDED {
            match overrides.get(*name) {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|e| RenderError::ReadTemplate {
                            path: path.clone(),
                            source: e,
                        })?;
                    entries.push((*name, text, TemplateSource::Override(path.clone())));
                }
                None => entries.push((*name, (*text).to_string(), TemplateSource::Embedded)),
            }
        }
        Self::build(entries)
    }

    fn build(
        entries: impl IntoIterator<Item = (&'static str, String, TemplateSource)>,
    ) -> Result<Self, RenderError> {
        let mut tera = tera::Tera::new();
        // Nothing kinit renders is HTML.
        tera.autoescape_on(Vec::<&str>::new());
        super::filters::register(&mut tera);
        let mut sources = BTreeMap::new();
        // One at a time, so a syntax error names the template it is in.
        for (name, text, source) in entries {
            tera.add_raw_template(name, &text)
                .map_err(|e| template_error(name, &source, e))?;
            sources.insert(name, source);
        }
        Ok(Templates { tera, sources })
    }

    /// Where `name` came from (None for a name kinit does not know).
    pub fn source(&self, name: &str) -> Option<&TemplateSource> {
        self.sources.get(name)
    }

    /// The templates replaced from an override directory.
    pub fn overridden(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        self.sources.iter().filter_map(|(name, s)| match s {
            TemplateSource::Override(p) => Some((*name, p.as_path())),
            TemplateSource::Embedded => None,
        })
    }
}
