//! A run of the engine's phases (`up`, `reset`, `remove`, `etcd snapshot save` and `restore`)
//! as the operator sees it: a spinner per host on a terminal, one line per step otherwise (CI
//! logs), or one JSON object per event with `-o json`, the command's result last.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::OutputFormat;
use crate::components::StartPolicy;
use crate::engine::host_ops::{PackagesState, UnitAction};
use crate::engine::{Event, Observer, RunError, RunSummary, StepOutcome};
use crate::ui::GlobalOptions;

enum Mode {
    Json,
    Bars(MultiProgress),
    Lines,
}

pub struct RunProgress {
    mode: Mode,
    quiet: bool,
    dry_run: bool,
    color: bool,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    /// When the run began: each JSON line says how long after it (`elapsed`, seconds), so a
    /// run's phases, turns and waits can be timed from its output alone.
    began: Instant,
}

fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

impl RunProgress {
    pub fn new(global: &GlobalOptions, dry_run: bool) -> RunProgress {
        let mode = match global.output {
            OutputFormat::Json => Mode::Json,
            OutputFormat::Text if std::io::stdout().is_terminal() && global.verbosity >= 0 => {
                Mode::Bars(MultiProgress::new())
            }
            OutputFormat::Text => Mode::Lines,
        };
        RunProgress {
            mode,
            quiet: global.verbosity < 0,
            dry_run,
            color: global.color.enabled_for_stderr() && std::io::stdout().is_terminal(),
            bars: Mutex::new(BTreeMap::new()),
            began: Instant::now(),
        }
    }

    fn line(&self, text: String) {
        if self.quiet {
            return;
        }
        match &self.mode {
            Mode::Bars(multi) => {
                let _ = multi.println(text);
            }
            _ => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
            }
        }
    }

    fn json(&self, mut value: serde_json::Value) {
        // Stamped while stdout is held: hosts' events come from several tasks at once, and a
        // line stamped before it waited for the lock could follow a later one.
        let mut out = std::io::stdout().lock();
        if let Some(fields) = value.as_object_mut() {
            // Milliseconds are enough to time a step; more digits would be noise.
            let ms = self.began.elapsed().as_millis() as f64;
            fields.insert("elapsed".into(), serde_json::json!(ms / 1000.0));
        }
        let _ = writeln!(out, "{value}");
    }

    /// A command's result with `-o json`: one more JSON line, `value` with `"event": event`
    /// (after the run's events, so a reader takes the last line).
    pub fn last_event(&self, event: &str, value: &impl serde::Serialize) {
        let mut v = serde_json::to_value(value).expect("serializable");
        v["event"] = event.into();
        self.json(v);
    }

    pub fn finish(&self) {
        for (_, bar) in std::mem::take(&mut *self.bars.lock().expect("not poisoned")) {
            bar.finish_and_clear();
        }
    }

    pub fn summary(&self, s: &RunSummary) {
        if let Mode::Json = self.mode {
            let mut v = serde_json::to_value(s).expect("serializable");
            v["event"] = "summary".into();
            self.json(v);
            return;
        }
        let mut out = String::new();
        if !s.not_done.is_empty() {
            out.push_str("\nNot done:\n");
            for n in &s.not_done {
                out.push_str(&format!("  - {n}\n"));
            }
        }
        let verb = if s.dry_run { "would be " } else { "" };
        out.push_str(&format!(
            "\n{} in {:.1} s: {} file(s) {verb}written, {} unchanged{}; {} service(s) {verb}started, {} {verb}restarted, {} {verb}reloaded, {} {verb}enabled; {} package(s) {verb}installed\n",
            if s.dry_run {
                paint(self.color, "1", "dry run (nothing was changed)")
            } else {
                paint(self.color, "1;32", "up: done")
            },
            s.seconds,
            s.files_written,
            s.files_unchanged,
            if s.files_removed > 0 {
                format!(", {} stale {verb}removed", s.files_removed)
            } else {
                String::new()
            },
            s.services_started,
            s.services_restarted,
            s.services_reloaded,
            s.services_enabled,
            s.packages_installed
        ));
        print!("{out}");
    }

    pub fn interrupted(&self) {
        match self.mode {
            Mode::Json => self.json(serde_json::json!({"event": "interrupted"})),
            _ => eprintln!(
                "interrupted; the hosts keep what was written so far (re-run `kinit up` to continue)"
            ),
        }
    }

    pub fn failure(&self, e: &RunError, resume: &Option<String>) {
        if let Mode::Json = self.mode {
            let mut v = serde_json::json!({"event": "failed", "error": e.to_string()});
            if let Some(p) = e.phase() {
                v["phase"] = p.into();
            }
            if let RunError::Hosts { failures, .. } = e {
                v["failures"] = serde_json::to_value(failures).expect("serializable");
            }
            if let RunError::Preflight { report } = e {
                v["preflight"] = serde_json::to_value(report).expect("serializable");
            }
            if let Some(r) = resume {
                v["resume"] = r.as_str().into();
            }
            self.json(v);
            return;
        }
        let mut out = String::new();
        match e {
            RunError::Hosts { phase, failures } => {
                for f in failures {
                    out.push_str(&format!(
                        "error: phase {phase} failed on {}\n  step:  {}\n  error: {}\n",
                        f.host, f.step, f.error
                    ));
                    if let Some(tail) = &f.stderr_tail {
                        out.push_str("  the host said:\n");
                        for l in tail.lines() {
                            out.push_str(&format!("    {l}\n"));
                        }
                    }
                }
            }
            RunError::Preflight { report } => {
                // Only what stopped the run; `kinit preflight` shows everything.
                let failures = crate::preflight::PreflightReport {
                    findings: report
                        .findings
                        .iter()
                        .filter(|f| f.status == crate::preflight::Status::Fail)
                        .cloned()
                        .collect(),
                };
                out.push_str(&crate::ui::preflight::render(&failures, false));
                out.push_str(&format!(
                    "error: {e}; fix them, or pass --ignore-preflight-errors=NAME,... to go on anyway\n"
                ));
            }
            other => out.push_str(&format!("error: {other}\n")),
        }
        if let Some(r) = resume {
            out.push_str(&format!("Fix the cause, then resume with:\n  {r}\n"));
        }
        eprint!("{out}");
    }

    fn bar_for(&self, multi: &MultiProgress, host: &str) -> ProgressBar {
        let mut bars = self.bars.lock().expect("not poisoned");
        bars.entry(host.to_string())
            .or_insert_with(|| {
                let pb = multi.add(
                    ProgressBar::new_spinner().with_style(
                        ProgressStyle::with_template("  {spinner} {prefix:<10} {wide_msg}")
                            .expect("valid template"),
                    ),
                );
                pb.set_prefix(host.to_string());
                pb.enable_steady_tick(Duration::from_millis(120));
                pb
            })
            .clone()
    }
}

impl Observer for RunProgress {
    fn event(&self, event: &Event) {
        if let Mode::Json = self.mode {
            self.json(serde_json::to_value(event).expect("serializable"));
            return;
        }
        match event {
            Event::PhaseStarted {
                phase,
                title,
                hosts,
            } => {
                let on = if hosts.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", hosts.join(", "))
                };
                self.line(paint(self.color, "1", &format!("== {phase}: {title}{on}")));
            }
            Event::PhaseSkipped { phase, reason } => {
                self.line(format!("-- {phase}: skipped ({reason})"))
            }
            Event::Note { phase, message } | Event::EtcdMember { phase, message, .. } => {
                self.line(format!("   {phase}: {message}"))
            }
            Event::CertificatesRenewed { phase, report } => {
                for l in crate::ui::certs::generate_text(report, false).lines() {
                    self.line(format!("   {phase}: {}", l.trim_start()));
                }
            }
            Event::KubernetesUpgrade {
                phase,
                message,
                upgrade,
            } => {
                self.line(format!("   {phase}: {message}"));
                for s in &upgrade.skew {
                    let verdict = if s.allowed { "ok" } else { "refused" };
                    self.line(format!(
                        "   {phase}:   skew {verdict}: {}: {}",
                        s.rule, s.detail
                    ));
                }
            }
            Event::StepStarted { host, step, .. } => {
                if let Mode::Bars(multi) = &self.mode {
                    self.bar_for(multi, host).set_message(step.clone());
                }
            }
            Event::StepFinished {
                host,
                step,
                outcome,
                changed,
                ..
            } => {
                let detail = describe(outcome, self.dry_run);
                let mark = if *changed {
                    paint(self.color, "33", if self.dry_run { "~" } else { "+" })
                } else {
                    paint(self.color, "32", "=")
                };
                self.line(format!("   {mark} {host:<10} {step:<28} {detail}"));
            }
            Event::StepFailed {
                host, step, error, ..
            } => self.line(format!(
                "   {} {host:<10} {step:<28} {error}",
                paint(self.color, "31", "x")
            )),
            Event::RestartOrder { .. }
            | Event::RestartStarted { .. }
            | Event::RestartFinished { .. } => self.line(self.restart_line(event)),
            Event::PhaseFinished { phase, seconds, ok } => {
                self.finish();
                self.line(format!(
                    "-- {phase}: {} in {seconds:.1} s",
                    if *ok { "done" } else { "FAILED" }
                ));
            }
        }
    }
}

impl RunProgress {
    /// The line of a restart event (an order, a restart begun, a host serving again).
    fn restart_line(&self, event: &Event) -> String {
        match event {
            Event::RestartOrder {
                phase,
                what,
                action,
                hosts,
                last,
                together,
            } => {
                let why = last.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
                let verb = if self.dry_run { "would go" } else { "goes" };
                let groups: Vec<String> = together.iter().map(|g| g.join(" + ")).collect();
                let together = if groups.is_empty() {
                    String::new()
                } else {
                    format!("; together: {}", groups.join(", then "))
                };
                format!(
                    "   {phase}: {} {what} {verb} one host at a time: {}{why}{together}",
                    action.verb(),
                    hosts.join(", ")
                )
            }
            Event::RestartStarted {
                host, what, action, ..
            } => format!(
                "   {} {host:<10} {} {what}",
                paint(self.color, "33", ">"),
                action.verb()
            ),
            Event::RestartFinished {
                host,
                what,
                seconds,
                healthy,
                ..
            } => format!(
                "   {} {host:<10} {what} serves again after {seconds:.1} s: {healthy}",
                paint(self.color, "32", "+")
            ),
            _ => unreachable!("only restart events come here"),
        }
    }
}

/// One step's outcome as a line's tail: `2 written, 5 unchanged`, `restarted (an input changed)`.
fn describe(outcome: &StepOutcome, dry_run: bool) -> String {
    match outcome {
        StepOutcome::NotStarted { reason, .. } => format!("skipped: {reason}"),
        StepOutcome::Held { action, .. } => {
            let verb = if *action == UnitAction::Reload {
                "reload"
            } else {
                "restart"
            };
            format!("{verb} rolls: one host at a time, below")
        }
        StepOutcome::Packages { state } => match state {
            PackagesState::Present => "present".into(),
            PackagesState::Missing(p) => format!("would install {}", p.join(" ")),
            PackagesState::Installed(p) => format!("installed {}", p.join(" ")),
        },
        StepOutcome::Files { written, unchanged } if dry_run => {
            if written.is_empty() {
                format!("{unchanged} unchanged")
            } else {
                let list: Vec<String> = written
                    .iter()
                    .map(|f| format!("{} ({})", f.path, if f.new { "new" } else { "changed" }))
                    .collect();
                format!("would write {}; {unchanged} unchanged", list.join(", "))
            }
        }
        StepOutcome::Files { written, unchanged } => {
            format!("{} written, {unchanged} unchanged", written.len())
        }
        StepOutcome::Lifecycle { actions } if actions.is_empty() => "nothing to take off".into(),
        StepOutcome::Lifecycle { actions } => {
            let text = if dry_run {
                crate::ui::lifecycle::dry_text
            } else {
                crate::ui::lifecycle::action_text
            };
            actions.iter().map(text).collect::<Vec<_>>().join(", ")
        }
        StepOutcome::Pruned { removed, .. } if removed.is_empty() => "nothing stale".into(),
        StepOutcome::Pruned { removed, .. } => format!(
            "{} {} (no longer in cluster.yaml)",
            if dry_run { "would remove" } else { "removed" },
            removed.join(", ")
        ),
        StepOutcome::Unit {
            action,
            enabled,
            start,
            ..
        } => {
            let verb = match action {
                UnitAction::None if *start == StartPolicy::OnChange => "unchanged",
                UnitAction::None => "running, unchanged",
                UnitAction::Start => "started",
                UnitAction::Restart => "restarted (an input changed)",
                UnitAction::Reload => "reloaded (an input changed)",
            };
            let mut detail = if dry_run && *action != UnitAction::None {
                format!("would be {verb}")
            } else {
                verb.to_string()
            };
            if *enabled {
                detail.push_str(if dry_run {
                    ", would be enabled"
                } else {
                    ", enabled"
                });
            }
            detail
        }
    }
}
