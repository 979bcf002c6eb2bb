//! The SSH transport: russh sessions with verified host keys, key and agent authentication,
//! sudo, a bastion, exec with timeouts, atomic uploads, and a pool of one connection per host.
//!
//! Library code: it returns data and typed errors (each naming the host) and never prints.

pub mod error;
pub mod exec;
mod host_key_check;
pub mod keyring;
pub mod known_hosts;
pub mod options;
pub mod pool;
pub mod quote;
pub mod session;
pub mod ssh_config;
pub mod sudo;
pub mod targets;
pub mod upload;

pub use error::SshError;
pub use exec::{ExecOptions, ExecOutput, ExitStatus};
pub use keyring::KeyRing;
pub use known_hosts::KnownHostsFile;
pub use options::{HostKeyPolicy, HostTarget, Secret, SshOptions};
pub use pool::Pool;
pub use session::Session;
pub use upload::{FileSpec, UploadOutcome, sha256_hex};
