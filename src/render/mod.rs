//! Every file kinit puts on a host, rendered from templates (`templates/*.tera`) before anything
//! is touched. Inventory + templates in, files out; the one thing read from disk is the PKI dir,
//! for the hash static-pod manifests carry of the certificates their pods read
//! ([`certificates`]). Writing them for review is [`write::write_host`]; deploying them is the
//! engine's job.

pub mod certificates;
pub mod context;
pub mod error;
pub mod failover;
pub mod filters;
pub mod flags;
pub mod manifest;
pub mod templates;
pub mod vrrp;
pub mod write;

use std::path::Path;

use serde::Serialize;

pub use error::{RenderError, TemplateError};
pub use templates::{TemplateSource, Templates};

use crate::components::{self, FilesPer, OnChange};
use crate::inventory::{Host, Inventory};

/// One file as it must be on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    /// Absolute path on the host.
    pub path: String,
    pub content: String,
    pub mode: u32,
    pub owner: &'static str,
    /// What a change to the content asks of a unit (from the component table).
    pub on_change: OnChange,
    /// The template it came from.
    pub template: &'static str,
}

/// Every file `host` receives, with the certificates of the inventory's PKI dir.
pub fn render_host(
    inv: &Inventory,
    host: &Host,
    templates: &Templates,
) -> Result<Vec<RenderedFile>, RenderError> {
    let cluster = context::cluster(inv)?;
    render_with(&cluster, inv, host, &inv.pki_dir, templates)
}

/// Every host's files, in config order, with the certificates of the inventory's PKI dir.
pub fn render_all(
    inv: &Inventory,
    templates: &Templates,
) -> Result<Vec<(String, Vec<RenderedFile>)>, RenderError> {
    render_all_from(inv, &inv.pki_dir, templates)
}

/// Every host's files, with the certificates of `pki_dir` (a dry run's scratch copy of the
/// PKI, where renewals it would make already happened).
pub fn render_all_from(
    inv: &Inventory,
    pki_dir: &Path,
    templates: &Templates,
) -> Result<Vec<(String, Vec<RenderedFile>)>, RenderError> {
    let cluster = context::cluster(inv)?;
    inv.hosts
        .iter()
        .map(|h| {
            Ok((
                h.name.clone(),
                render_with(&cluster, inv, h, pki_dir, templates)?,
            ))
        })
        .collect()
}

/// The template variable holding a file's [`certificates::ANNOTATION`] value.
const CERTIFICATES_SHA256: &str = "certificates_sha256";

fn render_with(
    cluster: &context::Cluster,
    inv: &Inventory,
    host: &Host,
    pki_dir: &Path,
    templates: &Templates,
) -> Result<Vec<RenderedFile>, RenderError> {
    let mut ctx = tera::Context::new();
    ctx.insert("cluster", cluster);
    ctx.insert("host", &context::host(inv, host));
    ctx.insert("paths", &cluster.paths);
    if host.has(crate::config::Role::ControlPlane) {
        ctx.insert("flags", &flags::render(templates, &ctx)?);
    }
    let pki = certificates::HostPki::of(pki_dir, &host.name);
    let mut out = Vec::new();
    for p in components::files_on(inv, host) {
        // Only the files whose pods read certificates see the variable: a template using
        // it anywhere else fails to render instead of carrying an empty value.
        match pki.for_file(p)? {
            Some(sha) => ctx.insert(CERTIFICATES_SHA256, &sha),
            None => {
                ctx.remove(CERTIFICATES_SHA256);
            }
        }
        let registries = cluster.registries.iter();
        let copies: Vec<(String, Option<&context::Registry>)> = match p.per {
            FilesPer::Host => vec![(p.path.to_string(), None)],
            FilesPer::Registry => registries
                .map(|r| (per_registry(p.path, r), Some(r)))
                .collect(),
            FilesPer::RegistryWithCa => registries
                .filter(|r| r.ca.is_some())
                .map(|r| (per_registry(p.path, r), Some(r)))
                .collect(),
        };
        for (path, registry) in copies {
            match registry {
                Some(r) => ctx.insert("registry", r),
                None => {
                    ctx.remove("registry");
                }
            }
            let content = templates.tera.render(p.template, &ctx).map_err(|e| {
                let source = templates
                    .source(p.template)
                    .cloned()
                    .unwrap_or(TemplateSource::Embedded);
                error::template_error(p.template, &source, e)
            })?;
            out.push(RenderedFile {
                path,
                content,
                mode: p.mode,
                owner: "root:root",
                on_change: p.on_change,
                template: p.template,
            });
        }
    }
    Ok(out)
}

/// A per-registry row's path for `registry` (its name is the `certs.d` directory's).
fn per_registry(pattern: &str, registry: &context::Registry) -> String {
    pattern.replace("{registry}", &registry.name)
}
