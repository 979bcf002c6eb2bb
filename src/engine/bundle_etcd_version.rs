//! The etcd release in the artifacts bundle, asked of the binary itself (`etcd --version`): on
//! this machine when it runs here, else on an etcd host (another OS or CPU than the operator's)
//! from a private temporary directory that is removed afterwards. The caller verifies the
//! binary against SHA256SUMS first: only a checked binary is run, here or there.

use std::path::Path;
use std::time::Duration;

use crate::bundle::Artifact;
use crate::etcd::version::EtcdVersion;
use crate::ssh::quote::quote;
use crate::ssh::{ExecOptions, FileSpec, HostTarget, Pool};

/// `etcd --version` prints and exits; a binary that hangs is not one to install.
const RUN_LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot tell which etcd release the bundle's {path} is: on this machine: {here}; {there}. \
     Check it by hand with `{path} --version` on one of the etcd hosts"
)]
pub struct UnknownBundleVersion {
    pub path: String,
    pub here: String,
    /// What happened on the hosts tried (or that there was none to try).
    pub there: String,
}

/// Where the version was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOn {
    ThisMachine,
    Host(String),
}

/// The bundle's etcd version: run here, else on the first of `hosts` where it runs.
pub async fn read(
    etcd: &Artifact,
    pool: &Pool,
    hosts: &[(String, HostTarget)],
) -> Result<(EtcdVersion, ReadOn), UnknownBundleVersion> {
    let here = match on_this_machine(&etcd.path).await {
        Ok(v) => return Ok((v, ReadOn::ThisMachine)),
        Err(e) => e,
    };
    let mut there = Vec::new();
    for (name, target) in hosts {
        match on_host(etcd, pool, target).await {
            Ok(v) => return Ok((v, ReadOn::Host(name.clone()))),
            Err(e) => there.push(format!("on {name}: {e}")),
        }
    }
    if there.is_empty() {
        there.push("no etcd host to run it on".into());
    }
    Err(UnknownBundleVersion {
        path: etcd.path.display().to_string(),
        here,
        there: there.join("; "),
    })
}

async fn on_this_machine(path: &Path) -> Result<EtcdVersion, String> {
    let mut command = tokio::process::Command::new(path);
    command
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .map_err(|_| format!("no answer within {}s", RUN_LIMIT.as_secs()))?
        // "Exec format error": built for another OS or CPU.
        .map_err(|e| e.to_string())?;
    parse(out.status.success(), &out.stdout, &out.stderr)
}

fn parse(success: bool, stdout: &[u8], stderr: &[u8]) -> Result<EtcdVersion, String> {
    let stdout = String::from_utf8_lossy(stdout);
    if !success {
        let said = String::from_utf8_lossy(stderr);
        let first = said.lines().next().unwrap_or_default();
        return Err(format!("`etcd --version` failed: {first}"));
    }
    EtcdVersion::from_version_output(&stdout).map_err(|e| e.to_string())
}

/// The version read on one host: the binary uploaded to a fresh `mktemp -d` directory, run,
/// and the directory removed (whatever happened).
pub async fn on_host(
    etcd: &Artifact,
    pool: &Pool,
    target: &HostTarget,
) -> Result<EtcdVersion, String> {
    let session = pool.get(target).await.map_err(|e| e.to_string())?;
    let opts = ExecOptions {
        timeout: Some(RUN_LIMIT),
        sudo: true,
        ..Default::default()
    };
    let made = session
        .exec("mktemp -d /tmp/kinit-etcd-version.XXXXXX", &opts)
        .await
        .map_err(|e| e.to_string())?;
    let dir = made.stdout_text().trim().to_string();
    // What the host printed goes into later commands only when it is what mktemp makes.
    let plain = dir
        .strip_prefix("/tmp/kinit-etcd-version.")
        .is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if !made.success() || !plain {
        return Err(format!(
            "mktemp -d did not make a directory: {}",
            made.stderr_text().trim()
        ));
    }
    let binary = format!("{dir}/etcd");
    let ran = async {
        let mut file = tokio::fs::File::open(&etcd.path)
            .await
            .map_err(|e| format!("reading {}: {e}", etcd.path.display()))?;
        session
            .upload_from(
                &mut file,
                &etcd.sha256,
                &binary,
                &FileSpec::new(0o700, None),
            )
            .await
            .map_err(|e| e.to_string())?;
        let command = format!("{} --version", quote(&binary).map_err(|e| e.to_string())?);
        let out = session
            .exec(&command, &opts)
            .await
            .map_err(|e| e.to_string())?;
        parse(out.success(), &out.stdout, &out.stderr)
    }
    .await;
    let removed = session
        .exec(
            &format!("rm -rf -- {}", quote(&dir).expect("a plain path")),
            &opts,
        )
        .await;
    match (ran, removed) {
        (Ok(v), Ok(out)) if out.success() => Ok(v),
        (Ok(_), _) => Err(format!(
            "could not remove {dir} after running etcd --version there"
        )),
        (Err(e), _) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_binary_here_and_reads_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd");
        std::fs::write(
            &path,
            "#!/bin/sh\necho 'etcd Version: 3.5.1'\necho 'Git SHA: e8732fb5f'\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let v = rt.block_on(on_this_machine(&path)).unwrap();
        assert_eq!(v.to_string(), "3.5.1");
        // Not a program for this machine: the error says what running it said.
        std::fs::write(&path, [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0]).unwrap();
        let e = rt.block_on(on_this_machine(&path)).unwrap_err();
        assert!(e.to_lowercase().contains("exec format"), "{e}");
    }

    #[test]
    fn a_failing_or_silent_binary_is_no_version() {
        assert!(
            parse(false, b"", b"bad flag\nmore")
                .unwrap_err()
                .contains("bad flag")
        );
        assert!(parse(true, b"hello\n", b"").is_err());
        assert_eq!(
            parse(true, b"etcd Version: 3.4.23\n", b"")
                .unwrap()
                .to_string(),
            "3.4.23"
        );
    }
}
