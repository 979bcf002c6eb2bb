//! What can go wrong while rendering, each naming the template (and line) or file involved.

use std::fmt;
use std::path::PathBuf;

use super::templates::TemplateSource;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read the template directory {}: {source}", dir.display())]
    OverrideDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} does not replace any kinit template; the names are: {}",
        path.display(),
        known.join(", ")
    )]
    UnknownTemplate {
        path: PathBuf,
        known: Vec<&'static str>,
    },
    #[error("cannot read template {}: {source}", path.display())]
    ReadTemplate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Template(TemplateError),
    #[error("cannot read {} (a static pod's manifest carries a hash of it): {source}", path.display())]
    ReadPki {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spec.registries: the CA file {} of registry `{registry}` cannot be used: {reason}", path.display())]
    RegistryCa {
        registry: String,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot read the bundle's {} (etcd's image, whose tag the etcd manifest names): {source}", path.display())]
    ReadBundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no host named `{0}` in the config")]
    UnknownHost(String),
    #[error("{0}")]
    Unsupported(String),
}

/// A template that does not parse or does not render: which one, where it came from, which line.
#[derive(Debug)]
pub struct TemplateError {
    pub template: String,
    pub source: TemplateSource,
    /// 1-based; None when tera reports no position.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template {}", self.template)?;
        if let TemplateSource::Override(path) = &self.source {
            write!(f, " ({})", path.display())?;
        }
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

pub(super) fn template_error(name: &str, source: &TemplateSource, e: tera::Error) -> RenderError {
    let (line, message) = match e.kind() {
        tera::ErrorKind::SyntaxError(report) | tera::ErrorKind::RenderingError(report) => {
            (Some(report.span().start_line), report.message().to_string())
        }
        other => (None, other.to_string()),
    };
    RenderError::Template(TemplateError {
        template: name.to_string(),
        source: source.clone(),
        line,
        message,
    })
}
