//! The host programs the lab drives, the packages that provide them, and one way to run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::LabError;

/// (program, Debian package that provides it).
pub const LAB_TOOLS: &[(&str, &str)] = &[
    ("systemd-nspawn", "systemd-container"),
    ("debootstrap", "debootstrap"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
    ("ssh", "openssh-client"),
    ("systemctl", "systemd"),
];

pub fn require_root() -> Result<(), LabError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRoot);
    }
    Ok(())
}

/// Every program in `tools` must be on PATH (or in the sbin directories root normally has).
pub fn require_tools(tools: &[(&str, &str)]) -> Result<(), LabError> {
    let missing: Vec<&(&str, &str)> = tools.iter().filter(|(p, _)| find(p).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|(_, pkg)| *pkg).collect();
    packages.dedup();
    Err(LabError::MissingTools {
        tools: missing
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
            .join(", "),
        packages: packages.join(" "),
    })
}

pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Run a program to completion; a non-zero exit becomes an error carrying its stderr.
pub fn run(cmd: &mut Command, step: &str) -> Result<Output, LabError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| LabError::step(step, format!("cannot run {program}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(LabError::step(
            step,
            format!("{program} failed ({}): {}", out.status, stderr.trim()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_named_with_the_apt_command_that_installs_them() {
        let err = require_tools(&[
            ("sh", "dash"),
            ("kinit-no-such-tool", "pkg-a"),
            ("kinit-no-such-other", "pkg-b"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("kinit-no-such-tool, kinit-no-such-other"),
            "{err}"
        );
        assert!(err.contains("apt-get install -y pkg-a pkg-b"), "{err}");
        assert!(!err.contains("dash"), "{err}");
    }

    #[test]
    fn a_failing_program_reports_its_stderr() {
        let err = run(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "testing",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("testing: sh failed"), "{err}");
        assert!(err.contains("boom"), "{err}");
    }
}
