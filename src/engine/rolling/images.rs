//! A static pod's image in containerd before its manifest names it. The kubelet's unit imports
//! every archive under the images directory when it starts, which covers a first deploy; but in
//! an upgrade the kubelet moves only after every apiserver (the `kubelets` phase), so the new
//! release's control-plane images (and a new etcd's image) are imported here, on each host just
//! before its manifests change. Importing an image containerd already holds is quick: its
//! content is there.

use super::super::host_ops::{HostOpError, run};
use super::super::run_context::Engine;
use crate::components::{self, ComponentId};
use crate::host_paths;

/// `$1` ctr, `$2` containerd's socket, then the archives; one that is not there is skipped
/// (the bundle may lack a component's image, and then no manifest names it).
const IMPORT: &str = r#"ctr="$1"; socket="$2"; shift 2
for archive in "$@"; do
  [ -f "$archive" ] || continue
  "$ctr" --address "$socket" --namespace k8s.io images import "$archive" >/dev/null || exit 1
done"#;

impl Engine {
    /// Import the image archives of `images` (a row of the table that ships them:
    /// `control-plane-images`, `etcd-image`) into containerd's k8s.io namespace on `host`.
    pub(super) async fn import_images(
        &self,
        host: &str,
        images: ComponentId,
    ) -> Result<(), HostOpError> {
        let session = self.pool.get(&self.targets[host]).await?;
        let mut args = vec![host_paths::CTR_BINARY, host_paths::CONTAINERD_SOCKET];
        let row = components::component(images);
        args.extend(row.binaries.iter().map(|b| b.path));
        let what = format!("importing the {} archives", row.name);
        run(&session, IMPORT, &args, &what).await?;
        Ok(())
    }
}
