//! `kinit exec` output: each host's output grouped under a header, then a one-line summary.

use std::fmt::Write;

use crate::ssh::{ExecOutput, ExitStatus};

/// One host's result as the command hands it over.
pub struct HostRun<'a> {
    pub name: &'a str,
    pub address: String,
    pub result: Result<&'a ExecOutput, String>,
}

impl HostRun<'_> {
    pub fn succeeded(&self) -> bool {
        matches!(self.result, Ok(out) if out.success())
    }
}

pub fn render_text(runs: &[HostRun]) -> String {
    let mut text = String::new();
    for run in runs {
        let verdict = match &run.result {
            Ok(out) => out.status.to_string(),
            Err(_) => "failed".to_string(),
        };
        let _ = writeln!(text, "=== {} ({}): {verdict}", run.name, run.address);
        match &run.result {
            Ok(out) => {
                push_block(&mut text, &out.stdout, out.stdout_dropped, "");
                push_block(&mut text, &out.stderr, out.stderr_dropped, "stderr: ");
            }
            Err(message) => {
                let _ = writeln!(text, "error: {message}");
            }
        }
    }
    text
}

fn push_block(text: &mut String, bytes: &[u8], dropped: u64, prefix: &str) {
    if dropped > 0 {
        let _ = writeln!(
            text,
            "{prefix}[{dropped} earlier bytes dropped: only the last {} MiB are kept]",
            crate::ssh::KEPT_OUTPUT / (1024 * 1024)
        );
    }
    if bytes.is_empty() {
        return;
    }
    for line in String::from_utf8_lossy(bytes).lines() {
        let _ = writeln!(text, "{prefix}{line}");
    }
}

/// `3 hosts: 2 succeeded, 1 failed (cp2: exit 3)`.
pub fn summary(runs: &[HostRun], interrupted: bool) -> String {
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| !r.succeeded())
        .map(|r| match &r.result {
            Ok(out) => format!("{}: {}", r.name, out.status),
            Err(_) => format!("{}: error", r.name),
        })
        .collect();
    let total = runs.len();
    let mut line = format!(
        "{total} host{}: {} succeeded, {} failed",
        if total == 1 { "" } else { "s" },
        total - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        let _ = write!(line, " ({})", failed.join(", "));
    }
    if interrupted {
        line.push_str("; interrupted");
    }
    line
}

pub fn render_json(runs: &[HostRun], interrupted: bool) -> String {
    let hosts: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| match &r.result {
            Ok(out) => serde_json::json!({
                "host": r.name,
                "address": r.address,
                "ok": out.success(),
                "exitCode": match &out.status { ExitStatus::Code(c) => Some(*c), _ => None },
                "signal": match &out.status { ExitStatus::Signal(s) => Some(s.as_str()), _ => None },
                "stdout": String::from_utf8_lossy(&out.stdout),
                "stderr": String::from_utf8_lossy(&out.stderr),
                "stdoutDroppedBytes": out.stdout_dropped,
                "stderrDroppedBytes": out.stderr_dropped,
            }),
            Err(message) => serde_json::json!({
                "host": r.name,
                "address": r.address,
                "ok": false,
                "error": message,
            }),
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "hosts": hosts,
        "succeeded": runs.iter().all(HostRun::succeeded) && !interrupted,
        "interrupted": interrupted,
    }))
    .expect("serializable")
}
