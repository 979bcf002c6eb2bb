//! Everything that can go wrong talking to a host. Every variant names the host (or the file) so
//! the operator knows where to look without reading a log.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("host {host}: cannot connect to {addr}: {source}")]
    Connect {
        host: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("host {host}: no SSH handshake with {addr} within {}s", after.as_secs_f32())]
    ConnectTimeout {
        host: String,
        addr: String,
        after: Duration,
    },

    #[error(transparent)]
    UnknownHostKey(Box<UnknownHostKey>),

    #[error(transparent)]
    HostKeyChanged(Box<HostKeyChanged>),

    #[error("host {host}: the host key {fingerprint} is marked @revoked in {}:{line}", known_hosts.display())]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error("cannot update {}: {source}", path.display())]
    KnownHostsWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("host {host}: the server certificate path is not supported: {what}")]
    Unsupported { host: String, what: String },

    #[error(
        "host {host}: permission denied for user {user} (tried: {tried}); \
         add one of these public keys to ~{user}/.ssh/authorized_keys on the host, \
         or name the right key with identityFile"
    )]
    AuthFailed {
        host: String,
        user: String,
        tried: String,
    },

    #[error("cannot load SSH key {}: {reason}", path.display())]
    KeyLoad { path: PathBuf, reason: String },

    /// The connection ended under a command: the host went down or rebooted, or its sshd
    /// stopped.
    #[error("host {host}: the connection was lost (host down, rebooted or sshd stopped)")]
    ConnectionLost { host: String },

    #[error("host {host}: SSH protocol error: {source}")]
    Protocol {
        host: String,
        #[source]
        source: russh::Error,
    },

    #[error(
        "host {host}: sudo wants a password and none was given; \
         allow passwordless sudo for {user}, or pass --ask-sudo-password (or set KINIT_SUDO_PASSWORD)"
    )]
    SudoPasswordRequired { host: String, user: String },

    #[error("host {host}: sudo rejected the password given for {user}")]
    SudoPasswordRejected { host: String, user: String },

    #[error(
        "host {host}: `{}` did not finish within {}s and was stopped",
        brief(command),
        after.as_secs_f32()
    )]
    CommandTimedOut {
        host: String,
        command: String,
        after: Duration,
    },

    #[error("host {host}: upload to {dest} failed: {reason}")]
    Upload {
        host: String,
        dest: String,
        reason: String,
    },

    #[error(
        "host {host}: upload to {dest} timed out after {}s (the host stopped taking data or did not finish writing); nothing was written",
        after.as_secs()
    )]
    UploadTimedOut {
        host: String,
        dest: String,
        after: std::time::Duration,
    },

    /// Writing what a command printed to a local file (a download) failed.
    #[error("host {host}: cannot store what the host sent: {source}")]
    LocalWrite {
        host: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot put {value:?} into a remote command: it contains a NUL byte")]
    Unquotable { value: String },

    #[error("host {host}: cancelled")]
    Cancelled { host: String },

    #[error("host {host}: the unix socket {socket}: {reason}")]
    UnixSocket {
        host: String,
        socket: String,
        reason: String,
    },

    #[error("host {host}: through bastion {bastion}: {source}")]
    Bastion {
        host: String,
        bastion: String,
        #[source]
        source: Box<SshError>,
    },
}

/// The server offered a key no known_hosts line names.
#[derive(Debug, thiserror::Error)]
#[error(
    "host {host}: unknown host key for {lookup} ({algorithm} {fingerprint}); not in {}{others}\n  \
     to trust it, compare the fingerprint with the host's own (`ssh-keygen -lf /etc/ssh/ssh_host_{short}_key.pub` on the host) \
     or with `ssh-keyscan {keyscan} | ssh-keygen -lf -`, then either add it with `ssh-keyscan {keyscan} >> {}` \
     or rerun with --accept-new-host-keys",
    known_hosts.display(), known_hosts.display()
)]
pub struct UnknownHostKey {
    pub host: String,
    pub lookup: String,
    pub algorithm: String,
    pub short: String,
    pub fingerprint: String,
    pub known_hosts: PathBuf,
    pub keyscan: String,
    /// Non-empty when keys of other types are known for this host (worth a look).
    pub others: String,
}

/// The server offered a different key than known_hosts holds for it.
#[derive(Debug, thiserror::Error)]
#[error(
    "host {host}: HOST KEY CHANGED for {lookup}: the server offers {algorithm} {fingerprint}, \
     but {}:{line} holds a different {algorithm} key. This may be a man-in-the-middle attack, or \
     the host was reinstalled. If you know why it changed, remove that line (`ssh-keygen -R '{lookup}' -f {}`) \
     and trust the new key explicitly",
    known_hosts.display(), known_hosts.display()
)]
pub struct HostKeyChanged {
    pub host: String,
    pub lookup: String,
    pub algorithm: String,
    pub fingerprint: String,
    pub known_hosts: PathBuf,
    pub line: usize,
}

/// A command as an error names it: its first line, at most [`BRIEF_CHARS`] characters, with `…`
/// where it was cut (a status probe is a 20-line script: its whole text buried the reason).
fn brief(command: &str) -> String {
    let first = command.trim_start().lines().next().unwrap_or_default();
    let cut: String = first.chars().take(BRIEF_CHARS).collect();
    if cut.len() < command.trim().len() {
        format!("{cut} …")
    } else {
        cut
    }
}

const BRIEF_CHARS: usize = 72;

#[cfg(test)]
mod brief_tests {
    use super::*;

    #[test]
    fn a_timed_out_script_is_named_by_its_first_line_only() {
        let e = SshError::CommandTimedOut {
            host: "vm2".into(),
            command: "export LC_ALL=C\necho one\necho two".into(),
            after: Duration::from_secs(30),
        };
        assert_eq!(
            e.to_string(),
            "host vm2: `export LC_ALL=C …` did not finish within 30s and was stopped"
        );
        let short = SshError::CommandTimedOut {
            host: "vm2".into(),
            command: "systemctl is-active etcd".into(),
            after: Duration::from_secs(5),
        };
        assert_eq!(
            short.to_string(),
            "host vm2: `systemctl is-active etcd` did not finish within 5s and was stopped"
        );
        let long = "x".repeat(200);
        let e = SshError::CommandTimedOut {
            host: "h".into(),
            command: long,
            after: Duration::from_secs(1),
        };
        assert!(
            e.to_string().contains(&format!("`{} …`", "x".repeat(72))),
            "{e}"
        );
    }
}
