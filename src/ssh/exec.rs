//! Running one command on a host: output, exit status or signal, a timeout that stops the remote
//! command (not just our wait for it), cancellation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use russh::{ChannelMsg, Sig};
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

use super::error::SshError;
use super::quote::quote;
use super::session::Session;
use super::sudo::SudoMode;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Code(u32),
    /// Killed by this signal (`TERM`, `KILL`, ...).
    Signal(String),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by SIG{s}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == ExitStatus::Code(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Stop the command (TERM, then KILL 5 s later) when it runs longer than this.
    pub timeout: Option<Duration>,
    /// Run as root (through sudo for non-root logins).
    pub sudo: bool,
    /// Stop waiting, and signal the remote command, when this fires.
    pub cancel: Option<CancellationToken>,
}

/// Seconds between the remote TERM and the remote KILL.
const KILL_AFTER_SECS: u64 = 5;
/// How much longer than the remote timeout we wait before giving up on the channel ourselves.
const CLIENT_GRACE: Duration = Duration::from_secs(KILL_AFTER_SECS + 10);
/// How long a cancel waits for the remote pkill.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A command line as sent, with what goes to its stdin.
pub(crate) struct RawCommand<'a> {
    pub command: String,
    /// Sent before `body` (sudo's password line).
    pub stdin_prefix: Option<Vec<u8>>,
    pub body: Option<&'a mut (dyn AsyncRead + Unpin + Send)>,
    /// How to stop the command from another channel when it is cancelled or overruns.
    pub stop: Option<Stop>,
}

impl RawCommand<'_> {
    pub fn new(command: String) -> Self {
        RawCommand {
            command,
            stdin_prefix: None,
            body: None,
            stop: None,
        }
    }
}

/// A wrapped command's tag and the sudo mode it ran with.
pub(crate) struct Stop {
    tag: String,
    sudo: SudoMode,
    as_root: bool,
}

impl Stop {
    fn new(sudo: SudoMode, as_root: bool) -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        Stop {
            tag: format!(
                "kinit-run-{}-{}",
                std::process::id(),
                RUNS.fetch_add(1, Ordering::Relaxed)
            ),
            sudo,
            as_root,
        }
    }

    /// `pkill` of the supervisor by its tag. The bracket keeps the pattern from matching the
    /// pkill command line (and the sudo or shell around it) itself.
    fn command(&self) -> Result<String, SshError> {
        let (head, tail) = self.tag.split_at(1);
        let pattern = format!("[{head}]{tail}");
        let prefix = if self.as_root { self.sudo.prefix() } else { "" };
        Ok(format!("{prefix}pkill -TERM -f {}", quote(&pattern)?))
    }
}

/// `command` wrapped so that it runs as root when asked and can be stopped. GNU `timeout` is the
/// supervisor either way (a duration of 0 means no limit): it runs the command in its own process
/// group and passes TERM on to the whole group, whether it comes from its own clock or from us (a
/// cancel sends TERM over the channel; sudo relays it). A shell's children stop with it, even root
/// ones a non-root login could not signal itself.
/// The shell's `$0` is a tag, so the supervisor can be found and stopped from another channel
/// (sshd cannot always signal it: under sudo it runs as root).
pub(crate) fn wrap(
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

enum Outcome {
    Done(Result<ExecOutput, SshError>),
    TimedOut,
    Cancelled,
}

impl Session {
    /// Run `command` (a shell command line) and collect its output.
    pub async fn exec(&self, command: &str, opts: &ExecOptions) -> Result<ExecOutput, SshError> {
        let mode = if opts.sudo {
            self.sudo_mode().await?
        } else {
            SudoMode::Root
        };
        let stop = Stop::new(mode, opts.sudo);
        let mut raw = RawCommand::new(wrap(command, opts.timeout, mode, opts.sudo, &stop.tag)?);
        raw.stop = Some(stop);
        if opts.sudo {
            raw.stdin_prefix = self.sudo_stdin(mode);
        }
        let started = Instant::now();
        let deadline = opts.timeout.map(|t| t + CLIENT_GRACE);
        let out = self
            .run_channel(raw, deadline, opts.cancel.as_ref())
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
                host: self.host.clone(),
                command: command.to_string(),
                after: t,
            });
        }
        Ok(out)
    }

    /// Run a prepared command line without a client-side limit.
    pub(crate) async fn run_raw(
        &self,
        raw: RawCommand<'_>,
        cancel: Option<&CancellationToken>,
    ) -> Result<ExecOutput, SshError> {
        self.run_channel(raw, None, cancel).await
    }

    async fn run_channel(
        &self,
        raw: RawCommand<'_>,
        deadline: Option<Duration>,
        cancel: Option<&CancellationToken>,
    ) -> Result<ExecOutput, SshError> {
        tracing::debug!(host = %self.host, command = %raw.command, "exec");
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.protocol(e))?;
        channel
            .exec(true, raw.command.as_bytes())
            .await
            .map_err(|e| self.protocol(e))?;
        // Output is read while stdin is written, for two reasons. russh makes a writer wait for
        // the server's window without watching the connection: OpenSSH opens a session channel
        // with a window of 0 and grows it after the exec, so a host that goes away in between
        // would leave the write waiting forever, while the read side sees the channel close.
        // And a command that prints before it has read all its input must not stall the whole
        // connection on a channel nobody drains.
        let (mut reader, writer) = channel.split();
        let outcome = {
            let send_input = async {
                if let Some(prefix) = &raw.stdin_prefix {
                    writer
                        .data(&prefix[..])
                        .await
                        .map_err(|e| self.protocol(e))?;
                }
                if let Some(body) = raw.body {
                    writer.data(body).await.map_err(|e| self.protocol(e))?;
                }
                writer.eof().await.map_err(|e| self.protocol(e))
            };
            let work = async {
                let output = collect(&mut reader, &self.host);
                tokio::pin!(send_input, output);
                tokio::select! {
                    // The command ended (or the connection did) before it took all its input:
                    // what it said is the answer; the unsent rest does not matter.
                    out = &mut output => out,
                    sent = &mut send_input => match sent {
                        Ok(()) => output.await,
                        Err(e) => Err(e),
                    },
                }
            };
            let limited = async {
                match deadline {
                    Some(d) => match tokio::time::timeout(d, work).await {
                        Ok(r) => Outcome::Done(r),
                        Err(_) => Outcome::TimedOut,
                    },
                    None => Outcome::Done(work.await),
                }
            };
            match cancel {
                Some(token) => tokio::select! {
                    o = limited => o,
                    () = token.cancelled() => Outcome::Cancelled,
                },
                None => limited.await,
            }
        };
        match outcome {
            Outcome::Done(result) => result,
            Outcome::TimedOut | Outcome::Cancelled => {
                // Best effort, twice: sshd signals the login's process group (sudo relays it
                // when it may), and a pkill by tag reaches the supervisor in any case.
                let _ = writer.signal(Sig::TERM).await;
                if let Some(stop) = &raw.stop
                    && let Ok(kill) = stop.command()
                {
                    let mut kill = RawCommand::new(kill);
                    kill.stdin_prefix = self.sudo_stdin(stop.sudo);
                    let _ = tokio::time::timeout(
                        STOP_WAIT,
                        Box::pin(self.run_channel(kill, None, None)),
                    )
                    .await;
                }
                let _ = writer.close().await;
                Err(match outcome {
                    Outcome::TimedOut => SshError::CommandTimedOut {
                        host: self.host.clone(),
                        command: raw.command.clone(),
                        after: deadline.unwrap_or_default(),
                    },
                    _ => SshError::Cancelled {
                        host: self.host.clone(),
                    },
                })
            }
        }
    }
}

/// Read until the channel closes: data may still arrive after the exit status.
async fn collect(channel: &mut russh::ChannelReadHalf, host: &str) -> Result<ExecOutput, SshError> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut status = None;
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(ExitStatus::Code(exit_status)),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                status = Some(ExitStatus::Signal(signal_label(&signal_name)))
            }
            ChannelMsg::Failure => {
                return Err(SshError::Protocol {
                    host: host.to_string(),
                    source: russh::Error::RequestDenied,
                });
            }
            _ => {}
        }
    }
    match status {
        Some(status) => Ok(ExecOutput {
            stdout,
            stderr,
            status,
        }),
        // sshd always reports how a command ended; a channel closed without that was cut.
        None => Err(SshError::ConnectionLost {
            host: host.to_string(),
        }),
    }
}

fn signal_label(sig: &Sig) -> String {
    match sig {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
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
        let stop = Stop::new(SudoMode::Passwordless, true);
        let kill = stop.command().unwrap();
        let words = shlex::split(&kill).unwrap();
        assert_eq!(words[..5], ["sudo", "-n", "--", "pkill", "-TERM"]);
        let pattern = words.last().unwrap();
        assert!(!kill.contains(&stop.tag), "{kill}");
        assert!(pattern.starts_with("[k]init-run-"), "{pattern}");
    }
}
