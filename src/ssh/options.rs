//! What to connect to and how: the per-host target and the options shared by every connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::keyring::KeyRing;
use super::known_hosts::KnownHostsFile;
use super::secret::Secret;

/// One host to reach: `name` is what messages say, `address:port` is where kinit connects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostTarget {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Keys to offer, in order, before the agent's.
    pub identity_files: Vec<PathBuf>,
}

impl HostTarget {
    /// The name known_hosts files use: `addr`, or `[addr]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }

    pub fn socket_label(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// What to do with a host key that no known_hosts line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse (the default).
    Strict,
    /// Learn it: append it to the known_hosts file in OpenSSH's format. A changed key is still an
    /// error.
    AcceptNew,
}

/// Options shared by every connection of one run.
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub known_hosts: Arc<KnownHostsFile>,
    pub host_key_policy: HostKeyPolicy,
    /// Private keys, loaded (and decrypted) once per run.
    pub keys: Arc<KeyRing>,
    /// The ssh-agent socket to ask after the named keys (`$SSH_AUTH_SOCK` by default).
    pub agent_socket: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// An idle connection sends an SSH keepalive this often; three unanswered ones end it.
    pub keepalive_interval: Duration,
    /// For non-root logins: `None` means passwordless sudo (`sudo -n`).
    pub sudo_password: Option<Secret>,
    /// Reach every host through this one (ProxyJump).
    pub bastion: Option<HostTarget>,
    /// One file's upload, from the first byte sent to the rename on the host, takes at most
    /// this long: a host that stops reading fails the upload instead of holding the run.
    pub upload_timeout: Duration,
}

impl SshOptions {
    pub fn new(known_hosts: Arc<KnownHostsFile>, keys: Arc<KeyRing>) -> Self {
        SshOptions {
            known_hosts,
            host_key_policy: HostKeyPolicy::Strict,
            keys,
            agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(10),
            sudo_password: None,
            bastion: None,
            upload_timeout: Duration::from_secs(600),
        }
    }
}
