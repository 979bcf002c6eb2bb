//! `kinit bundle`: download progress on stderr (a bar with speed per file on a terminal, one line
//! per file otherwise, nothing with -q) and the listings and verification reports.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::bundle::fetch::{Event, FetchSummary, Reporter};
use crate::bundle::verify::{Listing, Verification};

pub struct FetchProgress {
    mode: Mode,
    bar: Mutex<Option<ProgressBar>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Plain,
    Quiet,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The last part of a URL, which names the file.
fn short(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

impl FetchProgress {
    pub fn new(verbosity: i8) -> FetchProgress {
        let mode = if verbosity < 0 {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Plain
        };
        FetchProgress {
            mode,
            bar: Mutex::new(None),
        }
    }

    fn line(&self, text: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("{text}"),
            Mode::Bars => match &*self.bar.lock().expect("bar lock") {
                Some(pb) => pb.println(text),
                None => eprintln!("{text}"),
            },
        }
    }

    /// Remove a bar left by an interrupted download.
    pub fn finish(&self) {
        if let Some(pb) = self.bar.lock().expect("bar lock").take() {
            pb.finish_and_clear();
        }
    }
}

impl Reporter for FetchProgress {
    fn on(&self, event: Event<'_>) {
        match event {
            Event::Started { url, from, total } => {
                if self.mode == Mode::Bars {
                    let pb = match total {
                        Some(t) => ProgressBar::new(t),
                        None => ProgressBar::no_length(),
                    }
                    .with_style(
                        ProgressStyle::with_template(
                            "{msg:30!} [{bar:25}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    )
                    .with_message(short(url).to_string());
                    pb.set_position(from);
                    pb.reset_eta();
                    pb.enable_steady_tick(Duration::from_millis(200));
                    if let Some(old) = self.bar.lock().expect("bar lock").replace(pb) {
                        old.finish_and_clear();
                    }
                } else if from > 0 {
                    self.line(&format!("resuming {url} from byte {from}"));
                }
            }
            Event::Progress { done, .. } => {
                if let Some(pb) = &*self.bar.lock().expect("bar lock") {
                    pb.set_position(done);
                }
            }
            Event::Retrying {
                url,
                attempt,
                of,
                reason,
            } => self.line(&format!(
                "retrying {url} ({attempt} of {of} failed: {reason})"
            )),
            Event::Downloaded {
                url,
                bytes,
                elapsed,
            } => {
                self.finish();
                let secs = elapsed.as_secs_f64().max(0.001);
                self.line(&format!(
                    "fetched {url}: {:.1} MiB in {:.1}s ({:.1} MiB/s), checking its sha256",
                    mib(bytes),
                    secs,
                    mib(bytes) / secs
                ));
            }
            Event::Present {
                component,
                version,
                asset,
            } => self.line(&format!(
                "{component} {version}: {asset} already in the bundle, unchanged"
            )),
            Event::Landed { name, version } => self.line(&format!("  + {name} {version}")),
        }
    }
}

pub fn fetch_summary(dir: &std::path::Path, s: &FetchSummary, elapsed: Duration) -> String {
    format!(
        "bundle {}: {} files added, {} downloads already there; {:.1} MiB downloaded in {:.1}s\n",
        dir.display(),
        s.landed.len(),
        s.present.len(),
        mib(s.downloaded_bytes),
        elapsed.as_secs_f64()
    )
}

pub fn listing(l: &Listing) -> String {
    let mut rows = vec![[
        "FILE".to_string(),
        "COMPONENT".into(),
        "VERSION".into(),
        "ARCH".into(),
        "SHA256".into(),
    ]];
    for f in &l.files {
        let (c, v, a) = match &f.entry {
            Some(e) => (e.component.clone(), e.version.clone(), e.arch.clone()),
            None => ("-".into(), "-".into(), "-".into()),
        };
        rows.push([
            f.name.clone(),
            c,
            v,
            a,
            f.sha256[..16.min(f.sha256.len())].to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn verification(dir: &std::path::Path, v: &Verification) -> String {
    let mut out = String::new();
    for p in &v.problems {
        out.push_str(&format!("✗ {p}\n"));
    }
    for n in &v.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    if v.problems.is_empty() {
        out.push_str(&format!(
            "✓ bundle {}: {} files match SHA256SUMS{}\n",
            dir.display(),
            v.checked,
            if v.has_manifest {
                " and bundle.yaml, one release per component"
            } else {
                ""
            }
        ));
    } else {
        out.push_str(&format!(
            "bundle {}: {} problem(s)\n",
            dir.display(),
            v.problems.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_template_is_valid_and_events_go_through() {
        let p = FetchProgress {
            mode: Mode::Bars,
            bar: Mutex::new(None),
        };
        let url = "http://127.0.0.1:1/k8s/v1.37.2/bin/linux/amd64/kubelet";
        p.on(Event::Started {
            url,
            from: 10,
            total: Some(100),
        });
        p.on(Event::Progress { url, done: 50 });
        assert_eq!(
            p.bar.lock().unwrap().as_ref().map(|b| b.position()),
            Some(50)
        );
        p.on(Event::Downloaded {
            url,
            bytes: 100,
            elapsed: Duration::from_millis(10),
        });
        assert!(p.bar.lock().unwrap().is_none());
    }
}
