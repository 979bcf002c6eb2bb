//! What the tests share, in one module: each test binary takes it whole with `mod support;`
//! (`#[path = "../support/mod.rs"]` from a test directory) and uses the parts it needs.
//!
//!   sshd        a real OpenSSH sshd on loopback, throwaway users and keys
//!   hang_guard  a kinit child that cannot hang the suite (process group, watchdog)
//!   etcd        real etcd members on loopback with kinit's PKI
//!   pki         a cluster.yaml and its PKI in a temporary directory
//!   preflight   host facts and inventories for the preflight rules
//!   render      the example configs rendered
//!   bundle      a bundle server on loopback
//!   lab         lab nodes (systemd-nspawn) and the clients that measure them
// A binary uses a part of it; what it leaves is not dead code of the project.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};

pub mod bundle;
pub mod etcd;
pub mod hang_guard;
pub mod lab;
pub mod pki;
pub mod preflight;
pub mod render;
pub mod sshd;

/// A TCP port on loopback that nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `--set` words of `hack/build-upstream.sh` for what `.ci/run` builds into
/// `KINIT_TEST_UPSTREAM_BIN` (the bundle's binaries).
pub const UPSTREAM_SETS: &str = "--set kubernetes --set etcd --set node";

/// A directory of programs `hack/build-upstream.sh` built (`sets`: its `--set` words): the one
/// `env` names, else where `.ci/run` builds it (/var/cache/kinit-test/NAME). A test that needs
/// `program` fails, saying how to build it, when it is not there.
pub fn cached_bin(env: &str, name: &str, program: &str, sets: &str) -> PathBuf {
    let dir = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("/var/cache/kinit-test").join(name));
    assert!(
        dir.join(program).is_file(),
        "no {program} in {}: this test runs the real one; build it with \
         `hack/build-upstream.sh {} {sets}` (.ci/run does; {env} points elsewhere)",
        dir.display(),
        dir.display()
    );
    dir
}
