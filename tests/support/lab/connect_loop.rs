//! A client of the control-plane endpoint for lab scenarios that change the load balancer.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::{COMMAND_LIMIT, Lab};
use crate::support::hang_guard::output_within;

/// TLS handshakes with VIP:PORT (through haproxy to the apiserver stand-in), verified against
/// the cluster CA, every 200 ms until stopped.
pub struct ConnectLoop {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<usize>,
    last_error: Arc<std::sync::Mutex<String>>,
}

impl ConnectLoop {
    pub fn start(lab: &Lab, vip: &str, port: u16) -> ConnectLoop {
        let (vip, port) = (vip.to_string(), port);
        let ca = lab.pki("ca.crt");
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicUsize::new(0));
        let last_error = Arc::new(std::sync::Mutex::new(String::new()));
        let (flag, failed, err) = (stop.clone(), failures.clone(), last_error.clone());
        let thread = std::thread::spawn(move || {
            let mut tries = 0;
            while !flag.load(Ordering::Relaxed) {
                let out = output_within(
                    Command::new("openssl")
                        .args(["s_client", "-connect", &format!("{vip}:{port}")])
                        .args(["-CAfile", &ca, "-verify_return_error", "-verify_ip", &vip])
                        .stdin(std::process::Stdio::null()),
                    COMMAND_LIMIT,
                );
                let all = String::from_utf8_lossy(&out.stdout).to_string()
                    + &String::from_utf8_lossy(&out.stderr);
                if !(out.status.success() && all.contains("Verify return code: 0 (ok)")) {
                    failed.fetch_add(1, Ordering::Relaxed);
                    *err.lock().unwrap() = all;
                }
                tries += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            tries
        });
        ConnectLoop {
            stop,
            failures,
            thread,
            last_error,
        }
    }

    /// (tries, failures, the last failure's output).
    pub fn stop(self) -> (usize, usize, String) {
        self.stop.store(true, Ordering::Relaxed);
        let tries = self.thread.join().unwrap();
        let err = self.last_error.lock().unwrap().clone();
        (tries, self.failures.load(Ordering::Relaxed), err)
    }
}
