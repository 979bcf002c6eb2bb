//! The cached base image: built once per recipe with debootstrap into a temporary directory,
//! then renamed into place, so a crashed build never leaves a half image behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::host_tools::run;
use super::lock::FileLock;
use super::recipe::Recipe;
use super::{LabError, Reporter};

/// A ready image: `<images>/<hash>/rootfs`.
#[derive(Debug, Clone)]
pub struct Image {
    pub hash: String,
    pub rootfs: PathBuf,
}

/// Whether the image for `recipe` is already built (so a new lab does not need room to build it).
pub fn is_built(images: &Path, recipe: &Recipe) -> bool {
    images.join(recipe.hash()).join("rootfs").is_dir()
}

/// Return the image for `recipe`, building it first if it is not cached.
pub fn ensure(images: &Path, recipe: &Recipe, reporter: &dyn Reporter) -> Result<Image, LabError> {
    let hash = recipe.hash();
    let dir = images.join(&hash);
    let image = Image {
        hash: hash.clone(),
        rootfs: dir.join("rootfs"),
    };
    if image.rootfs.is_dir() {
        return Ok(image);
    }
    std::fs::create_dir_all(images).map_err(|e| LabError::io(images, "creating", e))?;
    let _lock = FileLock::acquire(&images.join(".lock"))?;
    if image.rootfs.is_dir() {
        return Ok(image); // another run built it while we waited for the lock
    }
    // Leftovers of crashed builds of this recipe: we hold the lock, so no build is running.
    remove_stale_builds(images, &hash)?;
    let build = images.join(format!(".build-{hash}-{}", std::process::id()));
    let result = build_into(&build, recipe, reporter).and_then(|()| {
        std::fs::rename(&build, &dir)
            .map_err(|e| LabError::io(&dir, "moving the image into place", e))
    });
    if result.is_err() {
        // debootstrap may have left /proc or /sys mounted inside it.
        let _ = super::mounts::remove_tree(&build);
    }
    result.map(|()| image)
}

fn remove_stale_builds(images: &Path, hash: &str) -> Result<(), LabError> {
    let prefix = format!(".build-{hash}-");
    let entries = std::fs::read_dir(images).map_err(|e| LabError::io(images, "listing", e))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            super::mounts::remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn build_into(build: &Path, recipe: &Recipe, reporter: &dyn Reporter) -> Result<(), LabError> {
    let rootfs = build.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| LabError::io(&rootfs, "creating", e))?;
    let step = format!(
        "building image {} (debootstrap {})",
        &recipe.hash()[..12],
        recipe.suite
    );
    reporter.step(&step);
    let started = Instant::now();
    debootstrap(build, &rootfs, recipe, reporter)?;
    customize(&rootfs, recipe)?;
    let recipe_json = serde_json::to_vec_pretty(recipe).expect("recipe serializes");
    std::fs::write(build.join("recipe.json"), recipe_json)
        .map_err(|e| LabError::io(build, "writing recipe.json", e))?;
    reporter.done(&step, started.elapsed());
    Ok(())
}

fn debootstrap(
    build: &Path,
    rootfs: &Path,
    recipe: &Recipe,
    reporter: &dyn Reporter,
) -> Result<(), LabError> {
    let log_path = build.join("debootstrap.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| LabError::io(&log_path, "creating", e))?;
    let mut child = Command::new("debootstrap")
        .arg(format!("--variant={}", recipe.variant))
        .arg(format!("--include={}", recipe.packages.join(",")))
        .arg(recipe.suite)
        .arg(rootfs)
        .arg(recipe.mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| LabError::step("building image", format!("cannot run debootstrap: {e}")))?;
    let mut last = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            reporter.detail(&line);
            last.push(line);
            if last.len() > 10 {
                last.remove(0);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| LabError::step("building image", format!("waiting for debootstrap: {e}")))?;
    if !status.success() {
        let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        return Err(LabError::step(
            "building image",
            format!(
                "debootstrap {} failed ({status}); last output:\n{}\n{}",
                recipe.suite,
                last.join("\n"),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        ));
    }
    Ok(())
}

/// Apply the recipe's unit changes and files to a fresh root filesystem.
fn customize(rootfs: &Path, recipe: &Recipe) -> Result<(), LabError> {
    let root_arg = format!("--root={}", rootfs.display());
    run(
        Command::new("systemctl")
            .arg(&root_arg)
            .arg("disable")
            .args(recipe.disable),
        "building image: disabling packaged units",
    )?;
    run(
        Command::new("systemctl")
            .arg(&root_arg)
            .arg("enable")
            .args(recipe.enable),
        "building image: enabling networkd and ssh",
    )?;
    for path in recipe.remove {
        let p = rootfs.join(path);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LabError::io(p, "removing", e)),
        }
    }
    for (path, contents) in recipe.files {
        let p = rootfs.join(path);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, "creating", e))?;
        }
        std::fs::write(&p, contents).map_err(|e| LabError::io(p, "writing", e))?;
    }
    // Downloaded packages are not needed once installed; they would only double the image.
    let archives = rootfs.join("var/cache/apt/archives");
    if let Ok(entries) = std::fs::read_dir(&archives) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}
