//! Operator's moves the lab scenarios share: a drill or another run cut short by SIGTERM, an
//! operator's flag through `up --templates`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{Lab, text, wait_for};
use crate::support::hang_guard::{Watchdog, spawn_guarded};

/// A `kinit -o json drill ...` running in the background, past the point where it stopped its
/// unit.
pub struct RunningDrill {
    child: Child,
    watchdog: Watchdog,
}

/// A `kinit -o json ARGS` running in the background, past a line it printed.
pub struct RunningKinit {
    child: Child,
    watchdog: Watchdog,
    /// Every stdout line so far, then the rest as they come.
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lab {
    /// Start `kinit -o json ARGS` and wait (up to 120 s) until it prints a line that contains
    /// every one of `needles`.
    pub fn kinit_until(&self, args: &[&str], needles: &[&str]) -> RunningKinit {
        let config = self.config.to_str().unwrap();
        let mut child = spawn_guarded(
            Command::new(env!("CARGO_BIN_EXE_kinit"))
                .args(["-c", config, "-o", "json"])
                .args(args)
                .env("NO_COLOR", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let watchdog = Watchdog::arm(&child, Duration::from_secs(300));
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    let found = needles.iter().all(|n| line.contains(n));
                    seen.push(line);
                    if found {
                        break;
                    }
                }
                Err(e) => panic!(
                    "kinit {args:?} never printed {needles:?} ({e}):\n{}",
                    seen.join("\n")
                ),
            }
        }
        RunningKinit {
            child,
            watchdog,
            lines,
            seen,
        }
    }

    /// Start `kinit -o json drill ARGS --yes` and wait until `unit` on `host` is stopped by it.
    pub fn drill_stopping(&self, args: &[&str], host: &str, unit: &str) -> RunningDrill {
        let config = self.config.to_str().unwrap();
        let child = spawn_guarded(
            Command::new(env!("CARGO_BIN_EXE_kinit"))
                .args(["-c", config, "-o", "json", "drill"])
                .args(args)
                .arg("--yes")
                .env("NO_COLOR", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let watchdog = Watchdog::arm(&child, Duration::from_secs(300));
        wait_for(
            &format!("{host}'s {unit} stopped by the drill"),
            Duration::from_secs(60),
            || match self.unit_state(host, unit).as_str() {
                "inactive" | "failed" => Ok(()),
                other => Err(other.to_string()),
            },
        );
        RunningDrill { child, watchdog }
    }

    /// A copy of the built-in kube-apiserver flags with `flag` added, in a templates dir for
    /// `up --templates`.
    pub fn templates_with_apiserver_flag(&self, flag: &str) -> PathBuf {
        let templates = self.dir().join("templates");
        std::fs::create_dir_all(&templates).unwrap();
        let flags = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates/kube-apiserver.flags.tera"),
        )
        .unwrap();
        std::fs::write(
            templates.join("kube-apiserver.flags.tera"),
            format!("{flags}\n- {flag}\n"),
        )
        .unwrap();
        templates
    }
}

impl RunningDrill {
    /// SIGTERM, as an operator's Ctrl-C or a stopping service manager: the drill must put back
    /// what it stopped and exit 143, without hanging.
    pub fn terminate(self) -> Output {
        // SAFETY: kill(2) signals the one process this drill started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let out = self.child.wait_with_output().unwrap();
        assert!(
            !self.watchdog.disarm(),
            "the interrupted drill hung: {}",
            text(&out)
        );
        assert_eq!(out.status.code(), Some(143), "{}", text(&out));
        out
    }
}

impl RunningKinit {
    /// SIGTERM: the run must stop, put back what it leaves half done and exit 143 without
    /// hanging. Every line it printed on stdout, and its stderr.
    pub fn terminate(mut self) -> (Vec<String>, String) {
        // SAFETY: kill(2) signals the one process this test started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
        }
        // The reader ends with stdout's end.
        self.seen.extend(self.lines.iter());
        let all = format!("{}\n--- stderr\n{stderr}", self.seen.join("\n"));
        assert!(!self.watchdog.disarm(), "the interrupted run hung: {all}");
        assert_eq!(status.code(), Some(143), "{all}");
        (self.seen, stderr)
    }
}

/// A drill's report (`kinit -o json drill ...`) as the `figures:` lines the notes quote: what
/// was measured, then each event with its time.
pub fn drill_figures(r: &serde_json::Value) -> String {
    let mut out = format!(
        "figures: drill={} target={} recovered_after_ms={} healthy_after_ms={}",
        r["drill"]["kind"], r["target"]["host"], r["recoveredAfterMs"], r["healthyAfterMs"],
    );
    if let Some(ms) = r["nodeNotReadyAfterMs"].as_u64() {
        out.push_str(&format!(" node_not_ready_after_ms={ms}"));
    }
    out.push_str(&format!(
        " api: requests={} failed={} longest_gap_ms={} | etcd writes: requests={} failed={} \
         longest_gap_ms={} | allowed gap {} ms",
        r["api"]["requests"],
        r["api"]["failed"],
        r["api"]["longestGapMs"],
        r["etcdWrites"]["requests"],
        r["etcdWrites"]["failed"],
        r["etcdWrites"]["longestGapMs"],
        r["thresholds"]["maxGapMs"],
    ));
    for e in r["events"].as_array().into_iter().flatten() {
        let what = e["what"].as_str().unwrap_or_default();
        out.push_str(&format!("\nfigures:   {:>6} ms  {what}", e["atMs"]));
    }
    out
}
