//! The control-plane components' flags, stated once (`templates/<component>.flags.tera`, a YAML
//! list) and rendered twice: into the static pod's `command` (controlPlane.mode: static-pod)
//! and the systemd unit's `ExecStart=` (controlPlane.mode: systemd). Both templates see the
//! list as `flags.<component>`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::{RenderError, TemplateError, template_error};
use super::templates::{TemplateSource, Templates};

/// A control-plane component whose flags are stated in `<name>.flags.tera`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlagSet {
    /// The component's program name (`kube-apiserver`).
    pub program: &'static str,
    /// Its key under `flags.` in templates (`kube_apiserver`).
    pub key: &'static str,
    pub template: &'static str,
}

pub const FLAG_SETS: &[FlagSet] = &[
    FlagSet {
        program: "kube-apiserver",
        key: "kube_apiserver",
        template: "kube-apiserver.flags.tera",
    },
    FlagSet {
        program: "kube-controller-manager",
        key: "kube_controller_manager",
        template: "kube-controller-manager.flags.tera",
    },
    FlagSet {
        program: "kube-scheduler",
        key: "kube_scheduler",
        template: "kube-scheduler.flags.tera",
    },
];

/// Every flag set rendered for one host (`ctx` holds `cluster`, `host` and `paths`).
pub fn render(
    templates: &Templates,
    ctx: &tera::Context,
) -> Result<BTreeMap<&'static str, Vec<String>>, RenderError> {
    FLAG_SETS
        .iter()
        .map(|set| Ok((set.key, render_one(templates, ctx, set)?)))
        .collect()
}

fn render_one(
    templates: &Templates,
    ctx: &tera::Context,
    set: &FlagSet,
) -> Result<Vec<String>, RenderError> {
    let source = || {
        templates
            .source(set.template)
            .cloned()
            .unwrap_or(TemplateSource::Embedded)
    };
    let text = templates
        .tera
        .render(set.template, ctx)
        .map_err(|e| template_error(set.template, &source(), e))?;
    let flags: Vec<String> = serde_yaml::from_str::<Option<Vec<String>>>(&text)
        .map_err(|e| {
            RenderError::Template(TemplateError {
                template: set.template.to_string(),
                source: source(),
                line: e.location().map(|l| l.line()),
                message: format!("not a YAML list of flags: {e}"),
            })
        })?
        .unwrap_or_default();
    if let Some(bad) = flags.iter().find(|f| !f.starts_with("--")) {
        return Err(RenderError::Template(TemplateError {
            template: set.template.to_string(),
            source: source(),
            line: None,
            message: format!("`{bad}` is not a flag (every item starts with --)"),
        }));
    }
    Ok(flags)
}
