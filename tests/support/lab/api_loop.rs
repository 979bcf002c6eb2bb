//! A client of the Kubernetes API through the control-plane endpoint, for lab scenarios that
//! change the control plane: `GET /readyz` and a read of one ConfigMap (and, when asked, a write
//! of it), with admin.conf's credentials and the cluster CA, every 100 ms until stopped. Each request is a new TLS
//! connection (as a new `kubectl` would make), through VIP:port and haproxy.
//!
//! One answer is retried, as Kubernetes' own clients do: etcd's refusal while its leadership
//! moves (raft drops a proposal that reaches a leader handing over, or a member between two
//! leaders, and kube-apiserver answers 500 "raft proposal dropped"). No installer can keep etcd
//! from refusing in those milliseconds; what a roll must not do is lose the write, so the retry
//! has to succeed and is reported apart (`retried`, stamped), never hidden.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kinit::kube::ApiClient;

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
}

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

pub struct ApiLoop {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<ApiLoopReport>,
}

impl ApiLoop {
    /// `pki_dir`: the lab's PKI dir (admin.conf names the endpoint); `configmap`: the API path of
    /// a ConfigMap that exists for the whole run.
    pub fn start(pki_dir: &std::path::Path, configmap: &str) -> ApiLoop {
        Self::run(pki_dir, configmap, false)
    }

    /// As [`ApiLoop::start`], and each round also replaces the ConfigMap (`namespace`/`name`
    /// from its path) with `data.n` = a counter: writes reach etcd through the apiserver.
    pub fn start_writing(pki_dir: &std::path::Path, configmap: &str) -> ApiLoop {
        Self::run(pki_dir, configmap, true)
    }

    fn run(pki_dir: &std::path::Path, configmap: &str, writes: bool) -> ApiLoop {
        let client = ApiClient::from_pki_kubeconfig(pki_dir, "admin.conf").unwrap();
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
        ApiLoop { stop, thread }
    }

    pub fn stop(self) -> ApiLoopReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }

    /// Run `change` while a writing client ([`ApiLoop::start_writing`]) runs, from 2 s before
    /// it to 2 s after: what `change` returned, how long it took, what the client saw.
    pub fn around<T>(
        pki_dir: &std::path::Path,
        configmap: &str,
        change: impl FnOnce() -> T,
    ) -> (T, Duration, ApiLoopReport) {
        let client = Self::start_writing(pki_dir, configmap);
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
