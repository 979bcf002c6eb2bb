//! One authenticated SSH connection to one host. Channels are cheap: every command and upload of a
//! run goes over the same connection, several at once.
//!
//! The top of the command stack: this is the public API, and it hands the layers below (`sudo`,
//! `upload`, `exec`) the connection, host name and sudo settings they need, so none of them knows
//! what a session is.

use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, PrivateKeyWithHashAlg};
use russh::{Disconnect, Preferred};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OnceCell;

use super::error::SshError;
use super::exec::{Conn, ExecOptions, ExecOutput, ExitStatus, Handshake};
use super::host_key_check::{CheckError, HostKeyCheck};
use super::options::{HostTarget, SshOptions};
use super::secret::Secret;
use super::sudo::{self, Sudo, SudoMode};
use super::upload::{self, FileSpec, UploadOutcome, sha256_hex};

mod unix_socket;

pub struct Session {
    host: String,
    user: String,
    handle: Handle<HostKeyCheck>,
    sudo_password: Option<Secret>,
    sudo: OnceCell<SudoMode>,
    upload_timeout: std::time::Duration,
    /// Keeps the jump host's connection open as long as this one uses it.
    _bastion: Option<Arc<Session>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.host)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connect, check the host key, authenticate. Through `opts.bastion` when one is set.
    pub async fn connect(target: &HostTarget, opts: &SshOptions) -> Result<Session, SshError> {
        match &opts.bastion {
            Some(bastion) => {
                let jump = Session::connect_direct(bastion, opts).await.map_err(|e| {
                    SshError::Bastion {
                        host: target.name.clone(),
                        bastion: bastion.socket_label(),
                        source: Box::new(e),
                    }
                })?;
                Session::connect_via(&Arc::new(jump), target, opts).await
            }
            None => Session::connect_direct(target, opts).await,
        }
    }

    /// Connect straight to `target`, ignoring `opts.bastion`.
    pub async fn connect_direct(
        target: &HostTarget,
        opts: &SshOptions,
    ) -> Result<Session, SshError> {
        let addr = target.socket_label();
        let tcp = tokio::time::timeout(
            opts.connect_timeout,
            tokio::net::TcpStream::connect((target.address.as_str(), target.port)),
        )
        .await
        .map_err(|_| SshError::ConnectTimeout {
            host: target.name.clone(),
            addr: addr.clone(),
            after: opts.connect_timeout,
        })?
        .map_err(|source| SshError::Connect {
            host: target.name.clone(),
            addr: addr.clone(),
            source,
        })?;
        // Small packets (each command) must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        // A host that vanishes without a FIN (powered off, cable cut) must fail the run, not
        // hang it. SSH keepalives notice it on an idle connection, but not while russh waits for
        // a full send buffer to drain (an upload in flight), which the kernel would otherwise
        // retry for a quarter of an hour. With this limit on unacknowledged data, the write
        // fails as soon as the keepalives would have given up.
        let _ = socket2::SockRef::from(&tcp).set_tcp_user_timeout(Some(dead_peer_after(opts)));
        Session::handshake(target, opts, tcp, None).await
    }

    /// Connect to `target` through an open connection to a jump host (a direct-tcpip channel),
    /// with its own host-key check and authentication.
    pub async fn connect_via(
        bastion: &Arc<Session>,
        target: &HostTarget,
        opts: &SshOptions,
    ) -> Result<Session, SshError> {
        let channel = bastion
            .handle
            .channel_open_direct_tcpip(target.address.as_str(), target.port as u32, "127.0.0.1", 0)
            .await
            .map_err(|e| SshError::Bastion {
                host: target.name.clone(),
                bastion: bastion.host.clone(),
                source: Box::new(SshError::Protocol {
                    host: bastion.host.clone(),
                    source: e,
                }),
            })?;
        Session::handshake(target, opts, channel.into_stream(), Some(bastion.clone())).await
    }

    async fn handshake<S>(
        target: &HostTarget,
        opts: &SshOptions,
        stream: S,
        bastion: Option<Arc<Session>>,
    ) -> Result<Session, SshError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = Arc::new(client_config(target, opts));
        let check = HostKeyCheck::new(target, opts.known_hosts.clone(), opts.host_key_policy);
        let connecting = client::connect_stream(config, stream, check);
        let mut handle = match tokio::time::timeout(opts.connect_timeout, connecting).await {
            Err(_) => {
                return Err(SshError::ConnectTimeout {
                    host: target.name.clone(),
                    addr: target.socket_label(),
                    after: opts.connect_timeout,
                });
            }
            Ok(Err(CheckError::Refused(e))) => return Err(*e),
            Ok(Err(CheckError::Ssh(source))) => {
                return Err(SshError::Protocol {
                    host: target.name.clone(),
                    source,
                });
            }
            Ok(Ok(handle)) => handle,
        };
        authenticate(&mut handle, target, opts).await?;
        Ok(Session {
            host: target.name.clone(),
            user: target.user.clone(),
            handle,
            sudo_password: opts.sudo_password.clone(),
            sudo: OnceCell::new(),
            upload_timeout: opts.upload_timeout,
            _bastion: bastion,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Say goodbye to the server (best effort: the connection may already be gone, or too
    /// stuck to take the message, so this does not wait long).
    pub async fn close(&self) {
        let _ = tokio::time::timeout(
            CLOSE_WAIT,
            self.handle.disconnect(Disconnect::ByApplication, "", "en"),
        )
        .await;
    }

    /// Run `command` (a shell command line) and collect its output.
    pub async fn exec(&self, command: &str, opts: &ExecOptions) -> Result<ExecOutput, SshError> {
        self.run_as(command, opts, None, None).await
    }

    /// Run `command` like [`Session::exec`], replying to it once it printed the handshake's
    /// marker (the output's timing says when the reply went out and the answer came back).
    pub async fn exec_with_handshake(
        &self,
        command: &str,
        opts: &ExecOptions,
        handshake: &Handshake,
    ) -> Result<ExecOutput, SshError> {
        self.run_as(command, opts, None, Some(handshake)).await
    }

    /// Run `command` with its stdout streamed into `sink` as it arrives (a download of any size
    /// in constant memory); the returned output's `stdout` is empty.
    pub async fn exec_to(
        &self,
        command: &str,
        opts: &ExecOptions,
        sink: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<ExecOutput, SshError> {
        self.run_as(command, opts, Some(sink), None).await
    }

    /// `command` as root when `opts` asks for it. A session's first root command does not wait
    /// for [`sudo::detect`]'s own round trip (a channel and a sudo per host, most of what a
    /// preflight of many hosts costs beyond the probe): it goes with `sudo -n` straight away,
    /// since passwordless sudo is the common case. Any status but 1 means sudo ran it. Status 1 is
    /// the command's own or sudo's refusal, and only then does detect tell which: if sudo wants a
    /// password, the command never ran and runs again with it.
    async fn run_as<'a>(
        &self,
        command: &str,
        opts: &ExecOptions,
        mut sink: Option<&'a mut (dyn AsyncWrite + Unpin + Send)>,
        handshake: Option<&'a Handshake>,
    ) -> Result<ExecOutput, SshError> {
        let known = if !opts.sudo || self.user == "root" {
            Some(SudoMode::Root)
        } else {
            self.sudo.get().copied()
        };
        if let Some(mode) = known {
            let sudo = self.sudo_as(mode);
            return sudo::exec(self.conn(), sudo, command, opts, sink, handshake).await;
        }
        let optimistic = self.sudo_as(SudoMode::Passwordless);
        // The sink again for a second run, should there be one.
        let lent: Option<&mut (dyn AsyncWrite + Unpin + Send)> = match sink {
            Some(ref mut s) => Some(&mut **s),
            None => None,
        };
        let first = sudo::exec(self.conn(), optimistic, command, opts, lent, handshake).await?;
        if first.status != ExitStatus::Code(1) {
            // Another caller may have settled it meanwhile, to the same answer.
            let _ = self.sudo.set(SudoMode::Passwordless);
            return Ok(first);
        }
        match self.sudo_mode().await? {
            SudoMode::Passwordless | SudoMode::Root => Ok(first),
            mode => {
                let sudo = self.sudo_as(mode);
                sudo::exec(self.conn(), sudo, command, opts, sink, handshake).await
            }
        }
    }

    /// Upload `content` to `dest` (an absolute path) as root.
    pub async fn upload(
        &self,
        content: &[u8],
        dest: &str,
        spec: &FileSpec,
    ) -> Result<UploadOutcome, SshError> {
        let mut reader = content;
        self.upload_from(&mut reader, &sha256_hex(content), dest, spec)
            .await
    }

    /// Upload what `reader` yields, which must hash to `sha256` (hex): a file from a bundle whose
    /// SHA256SUMS is known streams without being read into memory first.
    pub async fn upload_from(
        &self,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        sha256: &str,
        dest: &str,
        spec: &FileSpec,
    ) -> Result<UploadOutcome, SshError> {
        let sudo = self.root_for(dest).await?;
        if upload::is_current(self.conn(), sudo, sha256, dest, spec).await? {
            return Ok(UploadOutcome::Unchanged);
        }
        self.write_from(reader, sha256, dest, spec).await?;
        Ok(UploadOutcome::Written)
    }

    /// Write what `reader` yields to `dest` without first looking at what is there (the caller
    /// compared already, e.g. for a whole batch of files in one round trip). Atomic and
    /// checksum-verified on the host like [`Session::upload_from`].
    pub async fn write_from(
        &self,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        sha256: &str,
        dest: &str,
        spec: &FileSpec,
    ) -> Result<(), SshError> {
        let sudo = self.root_for(dest).await?;
        upload::write_from(
            self.conn(),
            sudo,
            reader,
            sha256,
            dest,
            spec,
            self.upload_timeout,
        )
        .await
    }

    fn conn(&self) -> Conn<'_> {
        Conn {
            handle: &self.handle,
            host: &self.host,
        }
    }

    /// Found out on first use only: it costs a round trip or two.
    async fn sudo_mode(&self) -> Result<SudoMode, SshError> {
        self.sudo
            .get_or_try_init(|| sudo::detect(self.conn(), &self.user, self.sudo_password.as_ref()))
            .await
            .copied()
    }

    fn sudo_as(&self, mode: SudoMode) -> Sudo<'_> {
        Sudo {
            mode,
            password: self.sudo_password.as_ref(),
        }
    }

    /// How this session becomes root for writing `dest`, which must be absolute.
    async fn root_for(&self, dest: &str) -> Result<Sudo<'_>, SshError> {
        upload::check_dest(&self.host, dest)?;
        Ok(self.sudo_as(self.sudo_mode().await?))
    }
}

/// How long a goodbye may take.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Unanswered keepalives after which a connection counts as dead.
const KEEPALIVE_MAX: usize = 3;

/// How long a peer may leave data unacknowledged before the connection counts as dead: as long
/// as the keepalives take to give up.
fn dead_peer_after(opts: &SshOptions) -> std::time::Duration {
    opts.keepalive_interval * (KEEPALIVE_MAX as u32 + 1)
}

/// Keepalives on, no inactivity timeout (long silent commands are normal: an image pull, a
/// `kubeadm init`); per-command timeouts bound the work instead. Host-key types the known_hosts
/// file already holds for this host are asked for first, so a host OpenSSH learned with one key
/// type is not "unknown" to kinit because it negotiated another.
fn client_config(target: &HostTarget, opts: &SshOptions) -> client::Config {
    let known = opts.known_hosts.algorithms_for(&target.known_hosts_name());
    let family = |a: &Algorithm| match a {
        Algorithm::Rsa { .. } => "rsa".to_string(),
        other => other.as_str().to_string(),
    };
    let known_families: Vec<String> = known.iter().map(family).collect();
    let mut keys = Preferred::DEFAULT.key.to_vec();
    keys.sort_by_key(|a| !known_families.contains(&family(a)));
    client::Config {
        keepalive_interval: Some(opts.keepalive_interval),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: None,
        nodelay: true,
        preferred: Preferred {
            key: keys.into(),
            ..Preferred::DEFAULT
        },
        ..Default::default()
    }
}

/// The target's identity files in order, then each key the agent holds.
async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    target: &HostTarget,
    opts: &SshOptions,
) -> Result<(), SshError> {
    let protocol = |source| SshError::Protocol {
        host: target.name.clone(),
        source,
    };
    let mut tried = Vec::new();
    for path in &target.identity_files {
        // A key that cannot be loaded is reported with the others if nothing else works.
        let key = match opts.keys.load(path) {
            Ok(key) => key,
            Err(e) => {
                tried.push(e.to_string());
                continue;
            }
        };
        let hash = rsa_hash(handle, key.algorithm()).await.map_err(protocol)?;
        let label = format!("{} ({})", path.display(), key.algorithm().as_str());
        let result = handle
            .authenticate_publickey(&target.user, PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(protocol)?;
        if result.success() {
            return Ok(());
        }
        tried.push(label);
    }
    if let Some(socket) = &opts.agent_socket {
        match AgentClient::connect_uds(socket).await {
            Err(e) => tried.push(format!("ssh-agent (unreachable: {e})")),
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_default();
                if identities.is_empty() {
                    tried.push("ssh-agent (holds no keys)".into());
                }
                for identity in identities {
                    let AgentIdentity::PublicKey { key, comment } = identity else {
                        continue;
                    };
                    let hash = rsa_hash(handle, key.algorithm()).await.map_err(protocol)?;
                    let label = format!(
                        "agent key {} {}",
                        super::known_hosts::fingerprint(&key),
                        comment
                    );
                    match handle
                        .authenticate_publickey_with(&target.user, key, hash, &mut agent)
                        .await
                    {
                        Ok(result) if result.success() => return Ok(()),
                        Ok(_) => tried.push(label.trim_end().to_string()),
                        Err(e) => tried.push(format!("{} (agent: {e})", label.trim_end())),
                    }
                }
            }
        }
    }
    Err(SshError::AuthFailed {
        host: target.name.clone(),
        user: target.user.clone(),
        tried: if tried.is_empty() {
            "no keys: name an identityFile or start ssh-agent".into()
        } else {
            tried.join(", ")
        },
    })
}

async fn rsa_hash(
    handle: &Handle<HostKeyCheck>,
    algorithm: Algorithm,
) -> Result<Option<russh::keys::HashAlg>, russh::Error> {
    if algorithm.is_rsa() {
        Ok(handle.best_supported_rsa_hash().await?.flatten())
    } else {
        Ok(None)
    }
}
