//! The lab's progress on stderr: a spinner on a terminal, plain lines otherwise (CI logs), and
//! nothing with -q.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::lab::Reporter;

pub struct LabProgress {
    mode: Mode,
    current: Mutex<String>,
    last_detail: Mutex<Option<Instant>>,
}

enum Mode {
    Spinner(ProgressBar),
    Plain,
    Quiet,
}

/// In plain mode, debootstrap's many lines are shown at most this often.
const PLAIN_DETAIL_EVERY: Duration = Duration::from_secs(10);

impl LabProgress {
    pub fn new(verbosity: i8) -> LabProgress {
        let mode = if verbosity < 0 {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let pb = ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} [{elapsed:>3}] {wide_msg}")
                    .expect("valid template"),
            );
            pb.enable_steady_tick(Duration::from_millis(120));
            Mode::Spinner(pb)
        } else {
            Mode::Plain
        };
        LabProgress {
            mode,
            current: Mutex::new(String::new()),
            last_detail: Mutex::new(None),
        }
    }

    /// Remove the spinner before the command prints its result.
    pub fn finish(&self) {
        if let Mode::Spinner(pb) = &self.mode {
            pb.finish_and_clear();
        }
    }
}

impl Drop for LabProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Reporter for LabProgress {
    fn step(&self, what: &str) {
        *self.current.lock().expect("not poisoned") = what.to_string();
        match &self.mode {
            Mode::Spinner(pb) => pb.set_message(what.to_string()),
            Mode::Plain => eprintln!("{what} ..."),
            Mode::Quiet => {}
        }
    }

    fn detail(&self, line: &str) {
        match &self.mode {
            Mode::Spinner(pb) => {
                let current = self.current.lock().expect("not poisoned");
                pb.set_message(format!("{current}: {line}"));
            }
            Mode::Plain => {
                let mut last = self.last_detail.lock().expect("not poisoned");
                if last.is_none_or(|t| t.elapsed() >= PLAIN_DETAIL_EVERY) {
                    *last = Some(Instant::now());
                    eprintln!("  {line}");
                }
            }
            Mode::Quiet => {}
        }
    }

    fn done(&self, what: &str, took: Duration) {
        let line = format!("{what} ({:.1}s)", took.as_secs_f64());
        match &self.mode {
            Mode::Spinner(pb) => pb.println(format!("✓ {line}")),
            Mode::Plain => eprintln!("{line}"),
            Mode::Quiet => {}
        }
    }
}
