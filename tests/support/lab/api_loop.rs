//! A client of the Kubernetes API through the control-plane endpoint, for lab scenarios that
//! change the control plane: `GET /readyz` and a read of one ConfigMap (and, when asked, a write
//! of it), with admin.conf's credentials and the cluster CA, every 100 ms until stopped. Each request is a new TLS
//! connection (as a new `kubectl` would make), through VIP:port and haproxy.
//!
//! One answer is retried, as Kubernetes' own clients do: etcd's refusal while its leadership
//! moves (raft drops a proposal that reaches a leader handing over, or a member between two
//! leaders, and kube-apiserver answers 500 "raft proposal dropped"). No installer can keep etcd
//! from refusing in those milliseconds; what a roll must not do is lose the write, so the retry
//! has to succeed and is reported apart (`retried`, stamped), never hidden. How often the
//! leadership moved is read from etcd itself (the rise of its raft term while the client ran:
//! every election, a hand-over included, raises it by one), and [`ApiLoop::stop`] fails when
//! more requests were sent again than three per election: a retry never hides an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kinit::kube::ApiClient;

use crate::support::hang_guard::kinit;

/// What the client saw.
#[derive(Debug, Clone, Default)]
pub struct ApiLoopReport {
    pub requests: usize,
    pub failed: usize,
    /// The longest time between two answered requests (or from the start to the first).
    pub longest_gap: Duration,
    /// The first few failures, for the assertion message.
    pub failures: Vec<String>,
    /// The value of the last write the API acknowledged (`ApiLoop::start_writing`).
    pub last_written: Option<u64>,
    /// Requests etcd refused while its leadership moved, each answered when sent again: when
    /// (since the client started) and what the first answer said.
    pub retried: Vec<String>,
    /// How far etcd's raft term rose while the client ran: the elections (hand-overs included).
    pub etcd_elections: u64,
}

/// Requests etcd may refuse per election before the client's retries count as an outage: an
/// election's milliseconds catch at most a few requests of a client sending every 35 ms or so.
const RETRIES_PER_ELECTION: usize = 3;

/// etcd's answers while its leadership moves (raft's `ErrProposalDropped`, and the read a
/// leader change cut short), as kube-apiserver passes them on.
const LEADERSHIP_MOVING: [&str; 2] = ["raft proposal dropped", "etcdserver: leader changed"];

/// An answer to send once more: etcd refused because its leadership was moving.
fn refused_while_leadership_moves(answer: &Result<(u16, Vec<u8>), impl std::fmt::Display>) -> bool {
    match answer {
        Ok((500, body)) => {
            let body = String::from_utf8_lossy(body);
            LEADERSHIP_MOVING.iter().any(|m| body.contains(m))
        }
        _ => false,
    }
}

/// A failed answer, for the report.
fn describe(answer: &Result<(u16, Vec<u8>), impl std::fmt::Display>) -> String {
    match answer {
        Ok((code, body)) => format!(
            "HTTP {code}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
        Err(e) => e.to_string(),
    }
}

/// etcd's raft term as `kinit status` reads it from the members (the highest one answers: a
/// member down or behind shows less). Polled for up to 30 s: the members may still be settling
/// from the change the client watched.
fn etcd_raft_term(config: &str) -> u64 {
    let mut term = 0;
    super::wait_for(
        "etcd's raft term from kinit status",
        Duration::from_secs(30),
        || {
            let out = kinit(&["-c", config, "-o", "json", "status"]);
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("{e}: {}", super::text(&out)))?;
            let members = report["etcd"]["members"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            term = members
                .iter()
                .filter_map(|m| m["raftTerm"].as_u64())
                .max()
                .ok_or_else(|| format!("no member said its raft term: {:#}", report["etcd"]))?;
            Ok(())
        },
    );
    term
}

pub struct ApiLoop {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<ApiLoopReport>,
    /// The lab's cluster.yaml, for etcd's raft term before and after.
    config: String,
    raft_term_before: u64,
}

impl ApiLoop {
    /// A client of `lab`'s API (its PKI's admin.conf names the endpoint); `configmap`: the API
    /// path of a ConfigMap that exists for the whole run.
    pub fn start(lab: &super::Lab, configmap: &str) -> ApiLoop {
        Self::run(lab, configmap, false)
    }

    /// As [`ApiLoop::start`], and each round also replaces the ConfigMap (`namespace`/`name`
    /// from its path) with `data.n` = a counter: writes reach etcd through the apiserver.
    pub fn start_writing(lab: &super::Lab, configmap: &str) -> ApiLoop {
        Self::run(lab, configmap, true)
    }

    fn run(lab: &super::Lab, configmap: &str, writes: bool) -> ApiLoop {
        let config = lab.config.to_str().unwrap().to_string();
        let raft_term_before = etcd_raft_term(&config);
        let client = ApiClient::from_pki_kubeconfig(&lab.dir().join("pki"), "admin.conf").unwrap();
        let configmap = configmap.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut report = ApiLoopReport::default();
            let mut last_ok = Instant::now();
            let began = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                let round = report.requests as u64;
                let write = writes.then(|| configmap_body(&configmap, round));
                let mut requests =
                    vec![("GET", "/readyz", None), ("GET", configmap.as_str(), None)];
                if let Some(body) = &write {
                    requests.push(("PUT", configmap.as_str(), Some(body.as_bytes())));
                }
                for (method, path, body) in requests {
                    report.requests += 1;
                    let send =
                        || rt.block_on(client.send(method, path, body, Duration::from_secs(5)));
                    let mut answer = send();
                    if refused_while_leadership_moves(&answer) {
                        let at = began.elapsed().as_secs_f64();
                        let first = describe(&answer);
                        std::thread::sleep(Duration::from_millis(50));
                        answer = send();
                        report
                            .retried
                            .push(format!("at {at:.1} s: {method} {path}: {first}"));
                    }
                    match answer {
                        Ok((200, _)) => {
                            report.longest_gap = report.longest_gap.max(last_ok.elapsed());
                            last_ok = Instant::now();
                            if method == "PUT" {
                                report.last_written = Some(round);
                            }
                        }
                        other => {
                            report.failed += 1;
                            if report.failures.len() < 5 {
                                let at = began.elapsed().as_secs_f64();
                                let what = describe(&other);
                                report
                                    .failures
                                    .push(format!("at {at:.1} s: {method} {path}: {what}"));
                            }
                        }
                    }
                }
                let spent = started.elapsed();
                if spent < Duration::from_millis(100) {
                    std::thread::sleep(Duration::from_millis(100) - spent);
                }
            }
            report.longest_gap = report.longest_gap.max(last_ok.elapsed());
            report
        });
        ApiLoop {
            stop,
            thread,
            config,
            raft_term_before,
        }
    }

    /// What the client saw. Prints the requests etcd refused as its leadership moved and fails
    /// when they are more than [`RETRIES_PER_ELECTION`] per election meanwhile.
    pub fn stop(self) -> ApiLoopReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = self.thread.join().unwrap();
        report.etcd_elections = etcd_raft_term(&self.config).saturating_sub(self.raft_term_before);
        let (elections, retried) = (report.etcd_elections, &report.retried);
        println!(
            "figures: API client: {elections} etcd election(s) while it ran (raft term rise); \
             {} request(s) etcd refused meanwhile, answered when sent again: {retried:?}",
            retried.len()
        );
        assert!(
            retried.len() <= RETRIES_PER_ELECTION * elections as usize,
            "{} request(s) refused by etcd as its leadership moved, {elections} election(s) \
             (raft term {} before): {retried:?}",
            retried.len(),
            self.raft_term_before
        );
        report
    }

    /// Run `change` while a writing client ([`ApiLoop::start_writing`]) runs, from 2 s before
    /// it to 2 s after: what `change` returned, how long it took, what the client saw.
    pub fn around<T>(
        lab: &super::Lab,
        configmap: &str,
        change: impl FnOnce() -> T,
    ) -> (T, Duration, ApiLoopReport) {
        let client = Self::start_writing(lab, configmap);
        std::thread::sleep(Duration::from_secs(2));
        let started = Instant::now();
        let out = change();
        let took = started.elapsed();
        std::thread::sleep(Duration::from_secs(2));
        (out, took, client.stop())
    }
}

/// The ConfigMap the API clients of lab scenarios read (and write).
pub const PROBE_CONFIGMAP: &str = "/api/v1/namespaces/kinit-probe/configmaps/probe";

impl super::Lab {
    /// Create [`PROBE_CONFIGMAP`] (and its namespace) holding `literal` (`key=value`).
    pub fn create_probe_configmap(&self, kubeconfig: &std::path::Path, literal: &str) {
        self.kubectl_ok(kubeconfig, &["create", "namespace", "kinit-probe"]);
        let literal = format!("--from-literal={literal}");
        self.kubectl_ok(
            kubeconfig,
            &[
                "-n",
                "kinit-probe",
                "create",
                "configmap",
                "probe",
                &literal,
            ],
        );
    }
}

/// A ConfigMap at `path` (`/api/v1/namespaces/NS/configmaps/NAME`) whose `data.n` is `n`.
fn configmap_body(path: &str, n: u64) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let (namespace, name) = (parts[4], parts[6]);
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"n": n.to_string()},
    })
    .to_string()
}
