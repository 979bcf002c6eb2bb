//! Running one command line on an open connection: output, exit status or signal, a client-side
//! deadline, cancellation, a connection lost under the command. This is the bottom of the command
//! stack: it knows nothing of sessions or sudo; the layers above hand it a handle, the host name
//! for errors, and a prepared command line with whatever goes to its stdin.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use russh::client::Handle;
use russh::{ChannelMsg, Sig};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::error::SshError;
use super::host_key_check::HostKeyCheck;

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

/// How much of a command's stdout, and of its stderr, is kept: the last 4 MiB. A chatty command
/// (`yes`, a log dumped by mistake) cannot make kinit hold more per stream (8 MiB at the peak,
/// while trimming); what it said last, where errors usually are, is what stays.
pub const KEPT_OUTPUT: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The last [`KEPT_OUTPUT`] bytes of stdout.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
    /// Bytes of stdout that came before what `stdout` holds, and were dropped.
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
    pub timing: ExecTiming,
}

/// When a command went out and, for a command run with a [`Handshake`], when the reply went out
/// and the first output after it came back, by the operator's clock: what a reading the command
/// takes right after the reply (a host's clock) lies between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecTiming {
    /// Just before the exec request was sent.
    pub sent: SystemTime,
    /// When the handshake's reply was handed to the connection.
    pub replied: Option<SystemTime>,
    /// When the first stdout after the reply arrived.
    pub answered: Option<SystemTime>,
}

/// A command that prints `marker` and then waits for a line on its stdin gets `reply` as soon
/// as the marker arrives: a round trip inside the running command, with none of its start-up
/// (sshd, sudo, the shell) in it. Its stdin ends only after the reply (or once 64 KiB of stdout
/// came without the marker), so such a command must not read stdin to its end before printing
/// the marker.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub marker: Vec<u8>,
    pub reply: Vec<u8>,
}

/// Where the marker is looked for: the start of stdout.
const MARKER_WINDOW: usize = 64 * 1024;

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
    /// Where stdout goes as it arrives, instead of into [`ExecOutput::stdout`] (a download of
    /// any size in constant memory).
    pub sink: Option<&'a mut (dyn AsyncWrite + Unpin + Send)>,
    pub handshake: Option<&'a Handshake>,
}

impl RawCommand<'_> {
    pub fn new(command: String) -> Self {
        RawCommand {
            command,
            stdin_prefix: None,
            body: None,
            stop: None,
            sink: None,
            handshake: None,
        }
    }
}

/// A command line that stops a running one from another channel: sshd cannot always signal it
/// (under sudo it runs as root). Prepared by whoever wrapped the command, since only they know how.
pub(crate) struct Stop {
    pub command: String,
    /// Sent before anything else (sudo's password line).
    pub stdin_prefix: Option<Vec<u8>>,
}

/// An open connection as the command layers see it: where channels are opened, and the host
/// name every error carries.
#[derive(Clone, Copy)]
pub(crate) struct Conn<'a> {
    pub handle: &'a Handle<HostKeyCheck>,
    pub host: &'a str,
}

enum Outcome {
    Done(Result<ExecOutput, SshError>),
    TimedOut,
    Cancelled,
}

/// `work` until it is done, the deadline passes or the token is cancelled.
async fn bounded(
    work: impl std::future::Future<Output = Result<ExecOutput, SshError>>,
    deadline: Option<Duration>,
    cancel: Option<&CancellationToken>,
) -> Outcome {
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
}

impl Conn<'_> {
    /// Run a prepared command line; `deadline` bounds our wait for the channel.
    pub async fn run(
        self,
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
        let sent = SystemTime::now();
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
        let mut sink = raw.sink;
        let handshake = raw.handshake;
        let (marker_seen, marker_arrived) = tokio::sync::oneshot::channel::<()>();
        let replied: Mutex<Option<SystemTime>> = Mutex::new(None);
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
                if let Some(h) = handshake
                    && marker_arrived.await.is_ok()
                {
                    // Before the send: the reply cannot reach the host earlier.
                    *replied.lock().unwrap_or_else(|e| e.into_inner()) = Some(SystemTime::now());
                    writer
                        .data(&h.reply[..])
                        .await
                        .map_err(|e| self.protocol(e))?;
                }
                writer.eof().await.map_err(|e| self.protocol(e))
            };
            let work = async {
                let watch = handshake.map(|h| Watch {
                    marker: &h.marker,
                    seen: Some(marker_seen),
                    replied: &replied,
                });
                let output = collect(&mut reader, self.host, sink.as_deref_mut(), sent, watch);
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
            bounded(work, deadline, cancel).await
        };
        match outcome {
            Outcome::Done(result) => result,
            Outcome::TimedOut | Outcome::Cancelled => {
                // Best effort, twice: sshd signals the login's process group (sudo relays it
                // when it may), and a pkill by tag reaches the supervisor in any case.
                // Each bounded: a host that stopped reading must not hold us here either.
                let _ = tokio::time::timeout(STOP_WAIT, writer.signal(Sig::TERM)).await;
                if let Some(stop) = &raw.stop {
                    let mut kill = RawCommand::new(stop.command.clone());
                    kill.stdin_prefix = stop.stdin_prefix.clone();
                    let _ =
                        tokio::time::timeout(STOP_WAIT, Box::pin(self.run(kill, None, None))).await;
                }
                let _ = tokio::time::timeout(STOP_WAIT, writer.close()).await;
                Err(match outcome {
                    Outcome::TimedOut => SshError::CommandTimedOut {
                        host: self.host.to_string(),
                        command: raw.command.clone(),
                        after: deadline.unwrap_or_default(),
                    },
                    _ => SshError::Cancelled {
                        host: self.host.to_string(),
                    },
                })
            }
        }
    }

    /// A russh error on this connection; one that only says the connection is gone becomes
    /// [`SshError::ConnectionLost`].
    fn protocol(self, source: russh::Error) -> SshError {
        match source {
            russh::Error::Disconnect | russh::Error::SendError => SshError::ConnectionLost {
                host: self.host.to_string(),
            },
            source => SshError::Protocol {
                host: self.host.to_string(),
                source,
            },
        }
    }
}

/// Read until the channel closes: data may still arrive after the exit status.
async fn collect(
    channel: &mut russh::ChannelReadHalf,
    host: &str,
    mut sink: Option<&mut (dyn AsyncWrite + Unpin + Send + '_)>,
    sent: SystemTime,
    mut watch: Option<Watch<'_>>,
) -> Result<ExecOutput, SshError> {
    let mut stdout = Tail::default();
    let mut stderr = Tail::default();
    let mut status = None;
    let mut start = Vec::new();
    let mut answered = None;
    while let Some(msg) = channel.wait().await {
        if let (ChannelMsg::Data { data }, Some(w)) = (&msg, watch.as_mut())
            && !data.is_empty()
        {
            if w.seen.is_some() && start.len() < MARKER_WINDOW {
                start.extend_from_slice(data);
                if !w.marker.is_empty()
                    && start.windows(w.marker.len()).any(|x| x == w.marker)
                    && let Some(seen) = w.seen.take()
                {
                    let _ = seen.send(());
                } else if start.len() >= MARKER_WINDOW {
                    // No marker: stdin ends without a reply.
                    w.seen = None;
                }
            } else if w.seen.is_none() && answered.is_none() {
                // The command waits for the reply before it prints on: this is the answer.
                answered = Some(SystemTime::now());
            }
        }
        match msg {
            ChannelMsg::Data { data } => match sink.as_mut() {
                Some(sink) => {
                    sink.write_all(&data)
                        .await
                        .map_err(|source| SshError::LocalWrite {
                            host: host.to_string(),
                            source,
                        })?
                }
                None => stdout.push(&data),
            },
            ChannelMsg::ExtendedData { data, ext: 1 } => stderr.push(&data),
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
        Some(status) => {
            let (stdout, stdout_dropped) = stdout.finish();
            let (stderr, stderr_dropped) = stderr.finish();
            Ok(ExecOutput {
                stdout,
                stderr,
                status,
                stdout_dropped,
                stderr_dropped,
                timing: ExecTiming {
                    sent,
                    replied: watch.as_ref().and_then(Watch::replied),
                    answered,
                },
            })
        }
        // sshd always reports how a command ended; a channel closed without that was cut.
        None => Err(SshError::ConnectionLost {
            host: host.to_string(),
        }),
    }
}

/// The reader's side of a [`Handshake`]: the marker to look for, whom to tell, and when the
/// writer sent the reply.
struct Watch<'a> {
    marker: &'a [u8],
    seen: Option<tokio::sync::oneshot::Sender<()>>,
    replied: &'a Mutex<Option<SystemTime>>,
}

impl Watch<'_> {
    fn replied(&self) -> Option<SystemTime> {
        *self.replied.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The last [`KEPT_OUTPUT`] bytes of a stream, and how many came before them.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: u64,
}

impl Tail {
    /// Trimmed once it holds twice the limit, so each byte is moved at most once on average.
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        if self.bytes.len() >= 2 * KEPT_OUTPUT {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let excess = self.bytes.len().saturating_sub(KEPT_OUTPUT);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    fn finish(mut self) -> (Vec<u8>, u64) {
        self.trim();
        (self.bytes, self.dropped)
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
    fn a_tail_keeps_the_last_bytes_and_counts_the_rest() {
        let mut t = Tail::default();
        let chunk = vec![b'y'; 32 * 1024];
        for _ in 0..(3 * KEPT_OUTPUT / chunk.len()) {
            t.push(&chunk);
            assert!(t.bytes.len() < 2 * KEPT_OUTPUT);
        }
        t.push(b"the end");
        let (bytes, dropped) = t.finish();
        assert_eq!(bytes.len(), KEPT_OUTPUT);
        assert!(bytes.ends_with(b"the end"));
        assert_eq!(dropped, (2 * KEPT_OUTPUT + 7) as u64);
    }
}
