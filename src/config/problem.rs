//! Problems found in a cluster.yaml, and their rendering as miette diagnostics with source spans.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use super::line_index::LineIndex;
use super::source_map::{ByteSpan, SourceMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// What a label underlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The key naming a field (`address:`), for fields that should not be there.
    Key(String),
    /// A field's value, or the nearest existing ancestor when the field is absent.
    Value(String),
    /// A place the YAML parser named itself (syntax errors).
    Bytes(ByteSpan),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub target: Target,
    pub text: String,
}

/// One thing wrong (or doubtful) in the config, located by its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub severity: Severity,
    /// Stable identifier, e.g. `config::unknown-field`.
    pub code: &'static str,
    /// The field the problem is about, e.g. `spec.hosts[1].address`.
    pub path: String,
    pub message: String,
    pub help: Option<String>,
    /// The first label is the primary one; more point at related places (the other duplicate).
    pub labels: Vec<Label>,
}

impl ConfigProblem {
    pub fn error(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        ConfigProblem {
            severity: Severity::Error,
            code,
            labels: vec![Label {
                target: Target::Value(path.clone()),
                text: String::new(),
            }],
            path,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigProblem {
            severity: Severity::Warning,
            ..Self::error(code, path, message)
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Text for the primary label.
    pub fn label(mut self, text: impl Into<String>) -> Self {
        self.labels[0].text = text.into();
        self
    }

    /// Underline the key rather than the value.
    pub fn on_key(mut self) -> Self {
        self.labels[0].target = Target::Key(self.path.clone());
        self
    }

    /// Point at a byte range instead of a field (for errors the parser located itself).
    pub fn at_bytes(mut self, span: ByteSpan) -> Self {
        self.labels[0].target = Target::Bytes(span);
        self
    }

    /// Point at a second, related place.
    pub fn also(mut self, path: impl Into<String>, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            target: Target::Value(path.into()),
            text: text.into(),
        });
        self
    }
}

/// The problems of one config file, with its text so that they can be shown in place.
#[derive(Debug)]
pub struct ConfigReport {
    pub file: PathBuf,
    source: Arc<String>,
    map: SourceMap,
    lines: LineIndex,
    pub problems: Vec<ConfigProblem>,
}

/// Where a problem sits, for plain and JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemLocation {
    pub line: usize,
    pub column: usize,
}

impl ConfigReport {
    pub fn new(file: &Path, source: String, problems: Vec<ConfigProblem>) -> Self {
        let map = SourceMap::build(&source);
        Self::with_map(file, source, map, problems)
    }

    /// A report on `source` whose nodes were already indexed.
    pub fn with_map(
        file: &Path,
        source: String,
        map: SourceMap,
        problems: Vec<ConfigProblem>,
    ) -> Self {
        let lines = LineIndex::new(&source);
        ConfigReport {
            file: file.to_path_buf(),
            source: Arc::new(source),
            map,
            lines,
            problems,
        }
    }

    /// A report that does not look into `source` (a text too large to index): its problems are
    /// about the file as a whole and point at its start.
    pub fn unindexed(file: &Path, source: String, problems: Vec<ConfigProblem>) -> Self {
        ConfigReport {
            file: file.to_path_buf(),
            source: Arc::new(source),
            map: SourceMap::default(),
            lines: LineIndex::default(),
            problems,
        }
    }

    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &ConfigProblem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &ConfigProblem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }

    fn span_of(&self, label: &Label) -> Option<ByteSpan> {
        match &label.target {
            Target::Key(path) => self
                .map
                .key_or_value(path)
                .or_else(|| self.map.value_or_ancestor(path)),
            // The whole document (or a file too empty to have nodes): its start.
            Target::Value(path) => self
                .map
                .value_or_ancestor(path)
                .or(Some(ByteSpan { offset: 0, len: 0 })),
            Target::Bytes(span) => Some(*span),
        }
    }

    /// Line and column (1-based) of a problem's primary label.
    pub fn location(&self, problem: &ConfigProblem) -> Option<ProblemLocation> {
        let span = problem.labels.first().and_then(|l| self.span_of(l))?;
        let (line, column) = self.lines.locate(span.offset);
        Some(ProblemLocation { line, column })
    }

    /// Each problem as a miette diagnostic pointing into the file.
    pub fn diagnostics(&self) -> Vec<ProblemDiagnostic> {
        let name = self.file.display().to_string();
        self.problems
            .iter()
            .map(|p| ProblemDiagnostic {
                problem: p.clone(),
                location: self.location(p),
                source: NamedSource::new(name.clone(), self.source.clone()),
                labels: p
                    .labels
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| {
                        let span: SourceSpan = self.span_of(l)?.into();
                        let text = (!l.text.is_empty()).then(|| l.text.clone());
                        Some(if i == 0 {
                            LabeledSpan::new_primary_with_span(text, span)
                        } else {
                            LabeledSpan::new_with_span(text, span)
                        })
                    })
                    .collect(),
            })
            .collect()
    }
}

/// A [`ConfigProblem`] bound to its source, as miette renders it.
#[derive(Debug)]
pub struct ProblemDiagnostic {
    pub problem: ConfigProblem,
    pub location: Option<ProblemLocation>,
    source: NamedSource<Arc<String>>,
    labels: Vec<LabeledSpan>,
}

impl fmt::Display for ProblemDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problem.path.is_empty() {
            write!(f, "{}", self.problem.message)
        } else {
            write!(f, "{}: {}", self.problem.path, self.problem.message)
        }
    }
}

impl std::error::Error for ProblemDiagnostic {}

impl Diagnostic for ProblemDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.problem.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.problem.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        (!self.labels.is_empty()).then_some(&self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty())
            .then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
}
