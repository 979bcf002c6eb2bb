//! Packs one static binary into an OCI image archive, with the code `kinit bundle import` builds
//! the bundle's images with (`kinit::bundle::image::oci_archive`). tests/vm/run.sh packs
//! Debian's static busybox with it: the test workload the VMs' containerd imports.
//!
//!     cargo run --example static_image -- REFERENCE BINARY OUT.tar
//!
//! The image runs as nobody (65534:65534); the binary lands at `/<its file name>`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference, binary, out] = args.as_slice() else {
        eprintln!("usage: static_image REFERENCE BINARY OUT.tar");
        return ExitCode::from(2);
    };
    let name = std::path::Path::new(binary)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("binary");
    let bytes = match std::fs::read(binary) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("static_image: reading {binary}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let archive = kinit::bundle::image::oci_archive(&kinit::bundle::image::StaticImage {
        reference,
        binary_name: name,
        binary: &bytes,
        user: "65534:65534",
        arch: "amd64",
    });
    match archive.and_then(|(tar, _)| std::fs::write(out, tar)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("static_image: writing {out}: {e}");
            ExitCode::FAILURE
        }
    }
}
