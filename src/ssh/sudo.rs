//! Command lines as sent for `Session::exec`: as root from a non-root login when asked, and under a
//! supervisor that can stop them. Sudo is `sudo -n` when no password was given (so a sudo that
//! wants one fails at once instead of hanging), `sudo -k -S -p ''` with the password fed on stdin
//! otherwise (never on the command line, never logged). The sudo prefix and the supervisor are one
//! command line, and the stop command must run with the same sudo, so they are built here together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;

use super::error::SshError;
use super::exec::{Conn, ExecOptions, ExecOutput, ExitStatus, Handshake, RawCommand, Stop};
use super::quote::quote;
use super::secret::Secret;

/// How this session reaches root, found out once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SudoMode {
    /// The login is root already.
    Root,
    Passwordless,
    /// `-k` ignores cached credentials, so sudo always reads the password line we send and the
    /// line can never leak into the command's own stdin.
    WithPassword,
}

impl SudoMode {
    /// The words to put before a command that must run as root.
    pub fn prefix(self) -> &'static str {
        match self {
            SudoMode::Root => "",
            SudoMode::Passwordless => "sudo -n -- ",
            SudoMode::WithPassword => "sudo -k -S -p '' -- ",
        }
    }
}

/// A session's way to root, as the commands that use it need it.
#[derive(Clone, Copy)]
pub(crate) struct Sudo<'a> {
    pub mode: SudoMode,
    pub password: Option<&'a Secret>,
}

impl Sudo<'_> {
    /// The password line sudo reads first, when this sudo needs one.
    pub fn stdin(self) -> Option<Vec<u8>> {
        match (self.mode, self.password) {
            (SudoMode::WithPassword, Some(p)) => Some(format!("{}\n", p.expose()).into_bytes()),
            _ => None,
        }
    }
}

/// Find out how `user` reaches root on this connection.
pub(crate) async fn detect(
    conn: Conn<'_>,
    user: &str,
    password: Option<&Secret>,
) -> Result<SudoMode, SshError> {
    if user == "root" {
        return Ok(SudoMode::Root);
    }
    let probe = conn
        .run(RawCommand::new("sudo -n true".into()), None, None)
        .await?;
    if probe.status == ExitStatus::Code(0) {
        return Ok(SudoMode::Passwordless);
    }
    let Some(password) = password else {
        return Err(SshError::SudoPasswordRequired {
            host: conn.host.to_string(),
            user: user.to_string(),
        });
    };
    let mut check = RawCommand::new(format!("{}true", SudoMode::WithPassword.prefix()));
    check.stdin_prefix = Some(format!("{}\n", password.expose()).into_bytes());
    let checked = conn.run(check, None, None).await?;
    if checked.status == ExitStatus::Code(0) {
        Ok(SudoMode::WithPassword)
    } else {
        Err(SshError::SudoPasswordRejected {
            host: conn.host.to_string(),
            user: user.to_string(),
        })
    }
}

/// Seconds between the remote TERM and the remote KILL.
const KILL_AFTER_SECS: u64 = 5;
/// How much longer than the remote timeout we wait before giving up on the channel ourselves.
const CLIENT_GRACE: Duration = Duration::from_secs(KILL_AFTER_SECS + 10);

/// Run `command` (a shell command line) wrapped by [`wrap`]. `sudo` is how this session reaches
/// root; it is only used when `opts.sudo` asks for root, and must be [`SudoMode::Root`] otherwise.
/// With `sink`, stdout goes there as it arrives instead of into the output; with `handshake`,
/// the command gets its reply once it printed the marker.
pub(crate) async fn exec<'a>(
    conn: Conn<'_>,
    sudo: Sudo<'_>,
    command: &str,
    opts: &ExecOptions,
    sink: Option<&'a mut (dyn AsyncWrite + Unpin + Send)>,
    handshake: Option<&'a Handshake>,
) -> Result<ExecOutput, SshError> {
    let tag = new_tag();
    let mut raw = RawCommand::new(wrap(command, opts.timeout, sudo.mode, opts.sudo, &tag)?);
    raw.sink = sink;
    raw.handshake = handshake;
    // A stop command that cannot be built only loses the second way of stopping.
    raw.stop = stop_command(&tag, sudo.mode, opts.sudo)
        .ok()
        .map(|command| Stop {
            command,
            stdin_prefix: sudo.stdin(),
        });
    if opts.sudo {
        raw.stdin_prefix = sudo.stdin();
    }
    let started = Instant::now();
    let deadline = opts.timeout.map(|t| t + CLIENT_GRACE);
    let out = conn
        .run(raw, deadline, opts.cancel.as_ref())
        .await
        .map_err(|e| match e {
            SshError::CommandTimedOut { host, .. } => SshError::CommandTimedOut {
                host,
                command: command.to_string(),
                after: opts.timeout.unwrap_or_default(),
            },
            other => other,
        })?;
    // 124: `timeout` sent TERM; 137: it had to KILL.
    if let Some(t) = opts.timeout
        && matches!(out.status, ExitStatus::Code(124 | 137))
        && started.elapsed() >= t
    {
        return Err(SshError::CommandTimedOut {
            host: conn.host.to_string(),
            command: command.to_string(),
            after: t,
        });
    }
    Ok(out)
}

/// A tag no other run of this process or any other uses, to find the supervisor by.
fn new_tag() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    format!(
        "kinit-run-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

/// `pkill` of the supervisor by its tag. The bracket keeps the pattern from matching the pkill
/// command line (and the sudo or shell around it) itself. The tag is the last word of the
/// supervisor's command line, so the pattern is anchored on both sides: run 1's must not match
/// run 10's (`kinit-run-<pid>-10`), nor another pid that ends in the same digits.
fn stop_command(tag: &str, sudo: SudoMode, as_root: bool) -> Result<String, SshError> {
    let (head, tail) = tag.split_at(1);
    let pattern = format!(" [{head}]{tail}$");
    let prefix = if as_root { sudo.prefix() } else { "" };
    Ok(format!("{prefix}pkill -TERM -f {}", quote(&pattern)?))
}

/// `command` wrapped so that it runs as root when asked and can be stopped. GNU `timeout` is the
/// supervisor either way (a duration of 0 means no limit): it runs the command in its own process
/// group and passes TERM on to the whole group, whether it comes from its own clock or from us (a
/// cancel sends TERM over the channel; sudo relays it). A shell's children stop with it, even root
/// ones a non-root login could not signal itself.
/// The shell's `$0` is a tag, so the supervisor can be found and stopped from another channel
/// (sshd cannot always signal it: under sudo it runs as root).
fn wrap(
    command: &str,
    timeout: Option<Duration>,
    sudo: SudoMode,
    as_root: bool,
    tag: &str,
) -> Result<String, SshError> {
    let prefix = if as_root { sudo.prefix() } else { "" };
    let limit = match timeout {
        Some(t) => format!("{:.3}s", t.as_secs_f64()),
        None => "0".to_string(),
    };
    // `exec`: the login shell becomes the supervisor, so the process sshd signals is ours.
    Ok(format!(
        "exec {prefix}timeout -k {KILL_AFTER_SECS} {limit} sh -c {} {}",
        quote(command)?,
        quote(tag)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_quotes_the_command_once() {
        let cmd = "echo 'a b' && exit 3";
        let words = |w: String| shlex::split(&w).unwrap().join(" | ");
        let plain = wrap(cmd, None, SudoMode::Root, false, "t1").unwrap();
        assert_eq!(
            words(plain),
            "exec | timeout | -k | 5 | 0 | sh | -c | echo 'a b' && exit 3 | t1"
        );
        let sudo = wrap(cmd, None, SudoMode::Passwordless, true, "t1").unwrap();
        assert_eq!(
            words(sudo),
            "exec | sudo | -n | -- | timeout | -k | 5 | 0 | sh | -c | echo 'a b' && exit 3 | t1"
        );
        let timed = wrap(
            cmd,
            Some(Duration::from_secs(2)),
            SudoMode::WithPassword,
            true,
            "t1",
        );
        assert_eq!(
            words(timed.unwrap()),
            "exec | sudo | -k | -S | -p |  | -- | timeout | -k | 5 | 2.000s | sh | -c | echo 'a b' && exit 3 | t1"
        );
    }

    #[test]
    fn the_stop_pattern_matches_the_tag_but_not_itself() {
        let tag = new_tag();
        let kill = stop_command(&tag, SudoMode::Passwordless, true).unwrap();
        let words = shlex::split(&kill).unwrap();
        assert_eq!(words[..5], ["sudo", "-n", "--", "pkill", "-TERM"]);
        let pattern = words.last().unwrap();
        assert!(!kill.contains(&tag), "{kill}");
        assert!(pattern.starts_with(" [k]init-run-"), "{pattern}");
    }

    /// Real processes, wrapped as on a host: stopping run 1 stops run 1 only, not run 10.
    #[test]
    fn stopping_run_1_leaves_run_10_alone() {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        // Above pid_max: no real kinit has this pid.
        let pid = 10_000_000 + std::process::id();
        let start = |tag: &str| {
            let line = wrap("sleep 30", None, SudoMode::Root, false, tag).unwrap();
            Command::new("sh")
                .args(["-c", &line])
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut one = start(&format!("kinit-run-{pid}-1"));
        let mut ten = start(&format!("kinit-run-{pid}-10"));
        // Both supervisors exist before the stop.
        std::thread::sleep(Duration::from_millis(300));
        let stop = stop_command(&format!("kinit-run-{pid}-1"), SudoMode::Root, false).unwrap();
        let status = Command::new("sh").args(["-c", &stop]).status().unwrap();
        assert!(status.success(), "pkill found run 1");
        let deadline = Instant::now() + Duration::from_secs(5);
        while one.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "run 1 was not stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        let ten_running = ten.try_wait().unwrap().is_none();
        // `timeout` leads its own process group (its sleep included): all of it goes.
        // SAFETY: kill(2) on the process group our own child leads.
        unsafe { libc::kill(-(ten.id() as libc::pid_t), libc::SIGKILL) };
        let _ = ten.wait();
        assert!(ten_running, "run 10 was stopped by run 1's pattern");
    }
}
