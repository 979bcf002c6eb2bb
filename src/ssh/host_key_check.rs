//! The russh handler that decides whether to trust the server's host key.

use std::sync::Arc;

use russh::keys::PublicKeyOrCertificate;

use super::error::{HostKeyChanged, SshError, UnknownHostKey};
use super::known_hosts::{HostKeyStatus, KnownHostsFile, fingerprint};
use super::options::{HostKeyPolicy, HostTarget};

pub(crate) struct HostKeyCheck {
    host: String,
    lookup: String,
    keyscan: String,
    file: Arc<KnownHostsFile>,
    policy: HostKeyPolicy,
}

/// A handler error: either russh's own, or our refusal (which must reach the caller unchanged).
#[derive(Debug)]
pub(crate) enum CheckError {
    Ssh(russh::Error),
    Refused(Box<SshError>),
}

impl From<russh::Error> for CheckError {
    fn from(e: russh::Error) -> Self {
        CheckError::Ssh(e)
    }
}

impl HostKeyCheck {
    pub fn new(target: &HostTarget, file: Arc<KnownHostsFile>, policy: HostKeyPolicy) -> Self {
        let keyscan = if target.port == 22 {
            target.address.clone()
        } else {
            format!("-p {} {}", target.port, target.address)
        };
        HostKeyCheck {
            host: target.name.clone(),
            lookup: target.known_hosts_name(),
            keyscan,
            file,
            policy,
        }
    }

    fn verdict(&self, key: &russh::keys::PublicKey) -> Result<(), SshError> {
        let path = self.file.path().to_path_buf();
        let status =
            self.file
                .check(&self.lookup, key)
                .map_err(|source| SshError::KnownHostsWrite {
                    path: path.clone(),
                    source,
                })?;
        let algorithm = key.algorithm().as_str().to_string();
        match status {
            HostKeyStatus::Known => Ok(()),
            HostKeyStatus::Changed { line } => {
                Err(SshError::HostKeyChanged(Box::new(HostKeyChanged {
                    host: self.host.clone(),
                    lookup: self.lookup.clone(),
                    algorithm,
                    fingerprint: fingerprint(key),
                    known_hosts: path,
                    line,
                })))
            }
            HostKeyStatus::Revoked { line } => Err(SshError::HostKeyRevoked {
                host: self.host.clone(),
                fingerprint: fingerprint(key),
                known_hosts: path,
                line,
            }),
            HostKeyStatus::Unknown { other_algorithms } => match self.policy {
                HostKeyPolicy::AcceptNew => self
                    .file
                    .learn(&self.lookup, key)
                    .map_err(|source| SshError::KnownHostsWrite { path, source }),
                HostKeyPolicy::Strict => Err(SshError::UnknownHostKey(Box::new(UnknownHostKey {
                    host: self.host.clone(),
                    lookup: self.lookup.clone(),
                    short: algorithm
                        .trim_start_matches("ssh-")
                        .split('-')
                        .next()
                        .unwrap_or("ed25519")
                        .to_string(),
                    algorithm,
                    fingerprint: fingerprint(key),
                    known_hosts: path,
                    keyscan: self.keyscan.clone(),
                    others: if other_algorithms.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (keys of other types are known for it: {})",
                            other_algorithms.join(", ")
                        )
                    },
                }))),
            },
        }
    }
}

impl russh::client::Handler for HostKeyCheck {
    type Error = CheckError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self
                .verdict(key)
                .map(|()| true)
                .map_err(|e| CheckError::Refused(Box::new(e))),
            PublicKeyOrCertificate::Certificate(_) => {
                Err(CheckError::Refused(Box::new(SshError::Unsupported {
                    host: self.host.clone(),
                    what: "host certificates (kinit checks plain host keys)".into(),
                })))
            }
        }
    }
}
