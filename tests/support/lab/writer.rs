//! A client on this machine that keeps writing to etcd while a change runs: it puts `w/N` every
//! 100 ms through the endpoints in order, each put retried on the next endpoint for up to 5 s
//! (as etcd clients do). What it reports is what the "no lost writes" means: puts never
//! accepted, and the longest time between two acknowledged puts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Lab;

#[derive(Debug, Clone, Copy)]
pub struct WriterReport {
    pub acked: usize,
    pub failed: usize,
    pub longest_gap: Duration,
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<WriterReport>,
}

impl Writer {
    /// Starts writing through `addrs` (member addresses, client port 2379), with the lab's
    /// operator client certificate.
    pub fn start(lab: &Lab, addrs: &[&str]) -> Writer {
        let tls = kinit::etcd::ClientTls::from_pki_dir(&lab.dir().join("pki")).unwrap();
        let eps: Vec<String> = addrs.iter().map(|a| format!("https://{a}:2379")).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let mut report = WriterReport {
                    acked: 0,
                    failed: 0,
                    longest_gap: Duration::ZERO,
                };
                let mut last = Instant::now();
                let mut n = 0usize;
                while !flag.load(Ordering::Relaxed) {
                    let tick = Instant::now();
                    let key = format!("w/{n:06}");
                    let until = tick + Duration::from_secs(5);
                    let mut ok = false;
                    'retry: while Instant::now() < until {
                        for ep in &eps {
                            let timeout = Duration::from_secs(1);
                            let put = kinit::etcd::put(&tls, ep, key.as_bytes(), b"x", timeout);
                            if put.await.is_ok() {
                                ok = true;
                                break 'retry;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if ok {
                        report.acked += 1;
                        report.longest_gap = report.longest_gap.max(last.elapsed());
                        last = Instant::now();
                    } else {
                        report.failed += 1;
                    }
                    n += 1;
                    let next = tick + Duration::from_millis(100);
                    tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
                }
                report
            })
        });
        Writer { stop, thread }
    }

    pub fn stop(self) -> WriterReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
