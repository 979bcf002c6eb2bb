//! This process's mount table (/proc/self/mountinfo): what is mounted where, and unmounting
//! everything below a directory before it is removed, so a recursive delete never walks into a
//! mounted /proc, /sys or /dev (debootstrap mounts them inside the image it builds).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::LabError;

/// Every mount point, in mount order.
pub fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

pub fn is_mounted(path: &Path) -> bool {
    mount_points().iter().any(|m| m == path)
}

/// Mount points strictly below `dir`.
pub fn below(dir: &Path) -> Vec<PathBuf> {
    mount_points()
        .into_iter()
        .filter(|m| m != dir && m.starts_with(dir))
        .collect()
}

/// Unmount everything below `dir`, innermost first (lazily, so a busy mount cannot keep it).
pub fn unmount_below(dir: &Path) -> Result<(), LabError> {
    let mut found = below(dir);
    // Later mounts (and deeper ones) first.
    found.reverse();
    for m in found {
        let c = CString::new(m.as_os_str().as_bytes()).expect("no NUL in a mount point");
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(LabError::io(m, "unmounting", err));
            }
        }
    }
    match below(dir).first() {
        Some(m) => Err(LabError::step(
            "unmounting",
            format!("{} is still mounted", m.display()),
        )),
        None => Ok(()),
    }
}

/// Remove `dir` recursively, after unmounting whatever is mounted below it.
pub fn remove_tree(dir: &Path) -> Result<(), LabError> {
    if !dir.exists() {
        return Ok(());
    }
    unmount_below(dir)?;
    std::fs::remove_dir_all(dir).map_err(|e| LabError::io(dir, "removing", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_table_is_read_and_unescaped() {
        assert!(is_mounted(Path::new("/")));
        assert!(is_mounted(Path::new("/proc")));
        assert!(!is_mounted(Path::new("/definitely/not/a/mount")));
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert!(
            below(Path::new("/"))
                .iter()
                .any(|m| m == Path::new("/proc"))
        );
    }

    #[test]
    fn a_mount_below_a_directory_is_unmounted_before_it_is_removed() {
        // SAFETY: geteuid cannot fail.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "needs root (CI runs as root)"
        );
        let dir = tempfile::Builder::new()
            .prefix("kinit-mounts-test")
            .tempdir()
            .unwrap();
        let target = dir.path().join("inner/proc");
        std::fs::create_dir_all(&target).unwrap();
        let c = CString::new(target.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings for source, target and type.
        let rc = unsafe {
            libc::mount(
                c"proc".as_ptr(),
                c.as_ptr(),
                c"proc".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        assert!(is_mounted(&target));
        let path = dir.path().to_path_buf();
        remove_tree(&path).unwrap();
        assert!(!path.exists());
        assert!(!is_mounted(&target));
    }
}
