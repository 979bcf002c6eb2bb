//! The signals that stop a command the way Ctrl-C does (SIGINT, SIGTERM from a service manager or
//! `kill`, SIGHUP from a closed terminal or SSH session): the run is cancelled, stops at its next
//! step, releases its locks and stops its remote commands. The exit code is the shell's
//! convention for death by that signal, 128 + its number (130, 143, 129), so a caller can tell
//! which signal ended it, yet the run cleaned up first.

use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The signal that stopped this process's command; SIGINT until one arrives.
static RECEIVED: AtomicI32 = AtomicI32::new(libc::SIGINT);

/// Start listening (from inside the runtime, before any work starts, so that an early signal
/// is not left to its default action) and cancel `cancel` on the first of the signals.
pub fn cancel_on_signal(cancel: CancellationToken) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let received = tokio::select! {
            Some(()) = interrupt.recv() => libc::SIGINT,
            Some(()) = terminate.recv() => libc::SIGTERM,
            Some(()) = hangup.recv() => libc::SIGHUP,
            else => return,
        };
        RECEIVED.store(received, Ordering::SeqCst);
        cancel.cancel();
    });
    Ok(())
}

/// 128 + the number of the signal that stopped the command (130 for Ctrl-C).
pub fn exit_code() -> u8 {
    128 + RECEIVED.load(Ordering::SeqCst) as u8
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_is_ctrl_c() {
        assert_eq!(super::exit_code(), super::super::exit::INTERRUPTED);
    }
}
