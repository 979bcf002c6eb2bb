//! Container images without a registry: an OCI image archive (`oci-layout`, `index.json`,
//! `blobs/sha256/…`, the format `ctr images import` reads) built from the bundle's own static
//! binaries. One layer holding the binary at `/`, a config naming it as the entrypoint. The
//! archive is byte-for-byte the same for the same binary (mtimes 0, fixed order), so its
//! digest in SHA256SUMS only changes with the binary.

use std::io;
use std::path::Path;

use serde_json::json;

/// The sandbox ("pause") image's tag: kubeadm's `PauseVersion` for Kubernetes v1.34 and later.
pub const PAUSE_TAG: &str = "3.10.1";
/// Where the pause archive lies in a bundle (and SHA256SUMS names it).
pub const PAUSE_ARCHIVE: &str = "images/pause.tar";
/// The static pause binary in a bundle, which the archive is built from.
pub const PAUSE_BINARY: &str = "pause";

/// The CoreDNS release `hack/build-upstream.sh --set coredns` builds (its wrapper module's
/// VERSION), which is the DNS image's tag.
pub const COREDNS_TAG: &str = include_str!("../../hack/upstream/coredns/VERSION").trim_ascii();
/// Where the CoreDNS archive lies in a bundle (and SHA256SUMS names it).
pub const COREDNS_ARCHIVE: &str = "images/coredns.tar";
/// The static CoreDNS binary the archive is built from.
pub const COREDNS_BINARY: &str = "coredns";

/// The static etcd in a bundle, and the archive of the image built from it (etcd as a static
/// pod runs it).
pub const ETCD_BINARY: &str = "etcd";
pub const ETCD_ARCHIVE: &str = "images/etcd.tar";

/// The reference an archive kinit built names its image by (`io.containerd.image.name` in its
/// `index.json`, the archive's second entry: only the archive's start is read). None when the
/// archive has no such index.
pub fn reference_in_archive(archive: &Path) -> io::Result<Option<String>> {
    let file = std::fs::File::open(archive)?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    for entry in tar.entries()?.take(2) {
        let mut entry = entry?;
        if entry.path()?.as_os_str() != "index.json" {
            continue;
        }
        let mut text = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(&mut entry, 1 << 16), &mut text)?;
        let index: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        return Ok(
            index["manifests"][0]["annotations"]["io.containerd.image.name"]
                .as_str()
                .map(str::to_string),
        );
    }
    Ok(None)
}

/// One image to build: a static binary at `/<binary name>`, run as `user`.
#[derive(Debug, Clone)]
pub struct StaticImage<'a> {
    /// The full reference, `registry.k8s.io/pause:3.10.1`.
    pub reference: &'a str,
    /// Path of the binary inside the image, relative to `/` (`pause` → `/pause`).
    pub binary_name: &'a str,
    pub binary: &'a [u8],
    /// `uid:gid`.
    pub user: &'a str,
    pub arch: &'a str,
}

/// The pause image's reference under an image repository (`registry.k8s.io` → `registry.k8s.io/pause:3.10.1`).
pub fn pause_reference(image_repository: &str) -> String {
    format!("{image_repository}/pause:{PAUSE_TAG}")
}

/// CoreDNS's reference as kubeadm names it: `registry.k8s.io/coredns/coredns:v1.15.0` under
/// the default repository, `<repository>/coredns:v1.15.0` under any other.
pub fn coredns_reference(image_repository: &str) -> String {
    if image_repository == crate::config::model::DEFAULT_IMAGE_REPOSITORY {
        format!("{image_repository}/coredns/coredns:{COREDNS_TAG}")
    } else {
        format!("{image_repository}/coredns:{COREDNS_TAG}")
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn tar_entry(t: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    t.append_data(&mut h, path, data)
}

/// The OCI archive of `image`, with the digest of its manifest.
pub fn oci_archive(image: &StaticImage) -> io::Result<(Vec<u8>, String)> {
    let mut layer = tar::Builder::new(Vec::new());
    // Its directories first (`usr/`, `usr/local/`, `usr/local/bin/`), as a runtime unpacking
    // the layer expects them.
    let mut dir = String::new();
    for part in image
        .binary_name
        .split('/')
        .rev()
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        dir.push_str(part);
        dir.push('/');
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Directory);
        layer.append_data(&mut h, &dir, io::empty())?;
    }
    tar_entry(&mut layer, image.binary_name, image.binary, 0o755)?;
    let layer = layer.into_inner()?;
    let layer_digest = format!("sha256:{}", sha256_hex(&layer));
    let config = serde_json::to_vec(&json!({
        "architecture": image.arch,
        "os": "linux",
        "config": {
            "Entrypoint": [format!("/{}", image.binary_name)],
            "User": image.user,
        },
        // Uncompressed: the layer's digest is its diff id.
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": format!("kinit: the bundle's static {}", image.binary_name)}],
    }))?;
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
    let tag = image
        .reference
        .rsplit_once(':')
        .map(|(_, t)| t)
        .unwrap_or("latest");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            // containerd names the imported image after this annotation.
            "annotations": {
                "io.containerd.image.name": image.reference,
                "org.opencontainers.image.ref.name": tag,
            },
            "platform": {"architecture": image.arch, "os": "linux"},
        }],
    }))?;
    let mut out = tar::Builder::new(Vec::new());
    tar_entry(
        &mut out,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    tar_entry(&mut out, "index.json", &index, 0o644)?;
    for blob in [&layer, &config, &manifest] {
        tar_entry(
            &mut out,
            &format!("blobs/sha256/{}", sha256_hex(blob)),
            blob,
            0o644,
        )?;
    }
    Ok((out.into_inner()?, manifest_digest))
}

/// Where a bundle image's tag comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImageTag {
    /// [`PAUSE_TAG`].
    Pause,
    /// [`COREDNS_TAG`].
    Coredns,
    /// The Kubernetes release of the binary itself (`v1.37.2`).
    Release,
    /// etcd's release as kubeadm tags its etcd images: `3.6.16` → `3.6.16-0`.
    EtcdRelease,
}

/// An image a bundle carries, built from one of its static binaries.
#[derive(Debug)]
pub struct BundleImage {
    /// The binary it is built from (a bundle file name).
    pub binary: &'static str,
    /// The archive's bundle file name.
    pub archive: &'static str,
    /// Where the binary lies inside the image: the control plane's manifests run their program
    /// by name, so those images put it on the default PATH as upstream's do.
    path_in_image: &'static str,
    /// `uid:gid`.
    user: &'static str,
    tag: ImageTag,
}

/// Every image kinit builds, by the binary it is built from.
pub const BUNDLE_IMAGES: &[BundleImage] = &[
    BundleImage {
        binary: PAUSE_BINARY,
        archive: PAUSE_ARCHIVE,
        path_in_image: "pause",
        // kubeadm's pause image runs as nobody.
        user: "65535:65535",
        tag: ImageTag::Pause,
    },
    // Runs as root: binding port 53 needs CAP_NET_BIND_SERVICE, which the Deployment keeps as
    // its only capability (upstream's image runs as nonroot with a file capability instead,
    // which this one-layer tar does not carry).
    BundleImage {
        binary: COREDNS_BINARY,
        archive: COREDNS_ARCHIVE,
        path_in_image: "coredns",
        user: "0:0",
        tag: ImageTag::Coredns,
    },
    // The control plane's static pods (controlPlane.mode: static-pod), as root like upstream's.
    BundleImage {
        binary: "kube-apiserver",
        archive: "images/kube-apiserver.tar",
        path_in_image: "usr/local/bin/kube-apiserver",
        user: "0:0",
        tag: ImageTag::Release,
    },
    BundleImage {
        binary: "kube-controller-manager",
        archive: "images/kube-controller-manager.tar",
        path_in_image: "usr/local/bin/kube-controller-manager",
        user: "0:0",
        tag: ImageTag::Release,
    },
    BundleImage {
        binary: "kube-scheduler",
        archive: "images/kube-scheduler.tar",
        path_in_image: "usr/local/bin/kube-scheduler",
        user: "0:0",
        tag: ImageTag::Release,
    },
    // etcd as a static pod (etcd.mode: static-pod), as root like upstream's; kubeadm's
    // manifest runs `etcd` by name.
    BundleImage {
        binary: ETCD_BINARY,
        archive: ETCD_ARCHIVE,
        path_in_image: "usr/local/bin/etcd",
        user: "0:0",
        tag: ImageTag::EtcdRelease,
    },
];

/// The image built from the bundle file `binary`, if one is.
pub fn bundle_image(binary: &str) -> Option<&'static BundleImage> {
    BUNDLE_IMAGES.iter().find(|i| i.binary == binary)
}

impl BundleImage {
    /// Its reference under `image_repository`, for a binary of `release`.
    pub fn reference(&self, image_repository: &str, release: &str) -> String {
        match self.tag {
            ImageTag::Pause => pause_reference(image_repository),
            ImageTag::Coredns => coredns_reference(image_repository),
            ImageTag::Release => format!("{image_repository}/{}:{release}", self.binary),
            ImageTag::EtcdRelease => format!(
                "{image_repository}/{}:{}-0",
                self.binary,
                release.trim_start_matches('v')
            ),
        }
    }

    /// The archive built from the binary at `binary` (of `release`).
    pub fn build(
        &self,
        binary: &Path,
        image_repository: &str,
        arch: &str,
        release: &str,
    ) -> io::Result<Vec<u8>> {
        let bytes = std::fs::read(binary)?;
        let reference = self.reference(image_repository, release);
        let (archive, _) = oci_archive(&StaticImage {
            reference: &reference,
            binary_name: self.path_in_image,
            binary: &bytes,
            user: self.user,
            arch,
        })?;
        Ok(archive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(archive);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                io::Read::read_to_end(&mut e, &mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn every_blob_is_named_by_its_digest_and_the_index_names_the_image() {
        let image = StaticImage {
            reference: "registry.example:5000/k8s/pause:3.10.1",
            binary_name: "pause",
            binary: b"\x7fELF not really",
            user: "65535:65535",
            arch: "amd64",
        };
        let (archive, manifest_digest) = oci_archive(&image).unwrap();
        let files = entries(&archive);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..2], &["oci-layout", "index.json"]);
        for (name, data) in &files[2..] {
            assert_eq!(name, &format!("blobs/sha256/{}", sha256_hex(data)));
        }
        let index: serde_json::Value = serde_json::from_slice(&files[1].1).unwrap();
        let m = &index["manifests"][0];
        assert_eq!(m["digest"], manifest_digest.as_str());
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "registry.example:5000/k8s/pause:3.10.1"
        );
        assert_eq!(
            m["annotations"]["org.opencontainers.image.ref.name"],
            "3.10.1"
        );
        // The layer holds the binary, executable, at the root.
        let manifest = files
            .iter()
            .find(|(n, _)| n.ends_with(manifest_digest.trim_start_matches("sha256:")))
            .unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&manifest.1).unwrap();
        let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        let layer = files
            .iter()
            .find(|(n, _)| n.ends_with(layer_digest.trim_start_matches("sha256:")))
            .unwrap();
        let mut l = tar::Archive::new(&layer.1[..]);
        let e = l.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("pause"));
        assert_eq!(e.header().mode().unwrap(), 0o755);
    }

    #[test]
    fn coredns_is_named_as_kubeadm_names_it() {
        assert!(COREDNS_TAG.starts_with('v') && !COREDNS_TAG.contains(char::is_whitespace));
        assert_eq!(
            coredns_reference("registry.k8s.io"),
            format!("registry.k8s.io/coredns/coredns:{COREDNS_TAG}")
        );
        assert_eq!(
            coredns_reference("10.0.0.5:5000/k8s"),
            format!("10.0.0.5:5000/k8s/coredns:{COREDNS_TAG}")
        );
    }

    #[test]
    fn the_same_binary_gives_the_same_archive() {
        let image = StaticImage {
            reference: "registry.k8s.io/pause:3.10.1",
            binary_name: "pause",
            binary: b"x",
            user: "65535:65535",
            arch: "amd64",
        };
        assert_eq!(oci_archive(&image).unwrap(), oci_archive(&image).unwrap());
        let other = StaticImage {
            binary: b"y",
            ..image.clone()
        };
        assert_ne!(
            oci_archive(&image).unwrap().1,
            oci_archive(&other).unwrap().1
        );
    }

    #[test]
    fn etcd_is_tagged_as_kubeadm_tags_it_and_the_archive_says_its_name() {
        let etcd = bundle_image(ETCD_BINARY).unwrap();
        assert_eq!(etcd.archive, ETCD_ARCHIVE);
        assert_eq!(
            etcd.reference("registry.k8s.io", "3.6.16"),
            "registry.k8s.io/etcd:3.6.16-0"
        );
        assert_eq!(
            etcd.reference("10.0.0.5:5000/k8s", "v3.6.16"),
            "10.0.0.5:5000/k8s/etcd:3.6.16-0"
        );
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("etcd");
        std::fs::write(&binary, b"\x7fELF not really").unwrap();
        let archive = dir.path().join("etcd.tar");
        let built = etcd
            .build(&binary, "registry.k8s.io", "amd64", "3.6.16")
            .unwrap();
        std::fs::write(&archive, &built).unwrap();
        assert_eq!(
            reference_in_archive(&archive).unwrap().as_deref(),
            Some("registry.k8s.io/etcd:3.6.16-0")
        );
        // Where upstream's image has it: on the default PATH.
        let in_layers: Vec<String> = entries(&built)
            .iter()
            .filter(|(n, _)| n.starts_with("blobs/"))
            .flat_map(|(_, blob)| {
                let mut layer = tar::Archive::new(&blob[..]);
                match layer.entries() {
                    Ok(es) => es
                        .filter_map(|e| Some(e.ok()?.path().ok()?.display().to_string()))
                        .collect(),
                    Err(_) => Vec::new(),
                }
            })
            .collect();
        assert!(
            in_layers.iter().any(|p| p == "usr/local/bin/etcd"),
            "{in_layers:?}"
        );
        // Not an archive kinit built: no reference.
        std::fs::write(&archive, b"").unwrap();
        assert_eq!(reference_in_archive(&archive).unwrap(), None);
    }
}
