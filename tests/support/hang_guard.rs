//! Child processes with a deadline. A command that hangs fails its test with what it printed so
//! far, instead of holding the whole suite until CI gives up on it. The limits are hang guards,
//! far above what a healthy run takes, never speed targets.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// `kinit ARGS` from this build (no color, no KINIT_CONFIG from the environment), guarded.
pub fn kinit(args: &[&str]) -> Output {
    output_within(
        Command::new(env!("CARGO_BIN_EXE_kinit"))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("KINIT_CONFIG"),
        kinit_limit(args),
    )
}

/// The guard for one `kinit` run: booting lab nodes may first build the node image (minutes),
/// and an `up` that upgrades Kubernetes rolls every static pod and every kubelet one host at a
/// time behind its checks (a static-pod upgrade of 3 hosts took 230-300 s on a busy 2-core
/// machine, which a 300 s guard took for a hang).
pub fn kinit_limit(args: &[&str]) -> Duration {
    if args.windows(2).any(|w| w == ["lab", "up"]) || args.contains(&"up") {
        Duration::from_secs(900)
    } else {
        Duration::from_secs(300)
    }
}

/// Run `cmd` (stdin empty, output captured) and return its output; kill it and panic with that
/// output when it is still running after `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let child = spawn_guarded(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
    let watchdog = Watchdog::arm(&child, limit);
    let out = child.wait_with_output().expect("wait for the child");
    if watchdog.disarm() {
        panic!(
            "hung: {what} was still running after {limit:?} and was killed\n--- stdout\n{}--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Spawn `cmd` in its own process group with an empty stdin, so that a [`Watchdog`] can stop it
/// with everything it started.
pub fn spawn_guarded(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Kills a child's process group when it outlives its limit (the child must come from
/// [`spawn_guarded`]). Reading the child's output then ends, so the test goes on to fail.
pub struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn arm(child: &Child, limit: Duration) -> Watchdog {
        let group = child.id() as libc::pid_t;
        let (stop, stopped) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let thread = {
            let fired = fired.clone();
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
                    fired.store(true, Ordering::SeqCst);
                    // SAFETY: kill(2) with a negative pid signals that process group only.
                    unsafe { libc::kill(-group, libc::SIGKILL) };
                }
            })
        };
        Watchdog {
            stop: Some(stop),
            fired,
            thread: Some(thread),
        }
    }

    /// Stop watching (call once the child has been waited for); whether it had to kill.
    pub fn disarm(mut self) -> bool {
        self.stop_thread();
        self.fired.load(Ordering::SeqCst)
    }

    fn stop_thread(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop_thread();
    }
}
