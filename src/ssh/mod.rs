//! The SSH transport: russh sessions with verified host keys, key and agent authentication,
//! sudo, a bastion, exec with timeouts, atomic uploads, and a pool of one connection per host.
//!
//! Library code: it returns data and typed errors (each naming the host) and never prints.
//!
//! Modules import only downwards, so each layer can be read and tested without the ones above it
//! (`a <- b`: b imports a; `error` is imported by nearly all and left out):
//!
//! ```text
//! exec (one command on a channel) <- sudo (as root, supervised) <- upload <- session <- pool
//! exec <- upload, session;  sudo <- session
//! secret <- keyring <- options <- host_key_check <- exec, session
//! options <- session, pool, targets;  ssh_config <- targets
//! known_hosts <- options, host_key_check, ssh_config, session
//! secret <- sudo, session;  quote <- sudo, upload
//! ```

pub mod error;
pub mod exec;
mod host_key_check;
pub mod keyring;
pub mod known_hosts;
pub mod options;
pub mod pool;
pub mod quote;
pub mod secret;
pub mod session;
pub mod ssh_config;
pub mod sudo;
pub mod targets;
pub mod upload;

pub use error::SshError;
pub use exec::{ExecOptions, ExecOutput, ExecTiming, ExitStatus, Handshake, KEPT_OUTPUT};
pub use keyring::KeyRing;
pub use known_hosts::KnownHostsFile;
pub use options::{HostKeyPolicy, HostTarget, SshOptions};
pub use pool::Pool;
pub use secret::Secret;
pub use session::Session;
pub use upload::{FileSpec, UploadOutcome, sha256_hex};
