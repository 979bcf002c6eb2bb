//! etcd: as a unit or a static pod, and its scheduled snapshots.

use super::*;

/// What etcd starts from as a unit: its flags, bootstrap settings included (etcd reads those
/// only on a member's first start; `up` and `restore` read and write them here).
pub(in crate::components) const ETCD_CONFIG_FILE: FileRow = file(
    "etcd.conf.yml.tera",
    paths::ETCD_CONFIG,
    0o644,
    Restart("etcd"),
);

/// What etcd starts from as a static pod: its manifest, flags included.
pub(in crate::components) const ETCD_MANIFEST_FILE: FileRow =
    pod_manifest("etcd.yaml.tera", paths::ETCD_MANIFEST, ETCD_POD_READS);

pub(super) const ETCD: Component = Component {
    id: ComponentId::Etcd,
    name: "etcd",
    roles: &[Etcd],
    with_static_pods: false,
    static_pod: false,
    when: Some(Condition::EtcdSystemd),
    packages: &[],
    binaries: &[
        BinaryRow {
            file: "etcd",
            path: paths::ETCD_BINARY,
            mode: 0o755,
            on_change: Restart("etcd"),
            optional: false,
        },
        ETCDCTL,
        ETCDUTL,
    ],
    files: &[
        file(
            "etcd.service.tera",
            paths::ETCD_UNIT,
            0o644,
            Restart("etcd"),
        ),
        ETCD_CONFIG_FILE,
    ],
    certificates: &[CertificateInput {
        under: "pki/etcd/",
        on_change: Restart("etcd"),
    }],
    units: &[UnitRow {
        no_block: true,
        ..unit("etcd")
    }],
    ports: ETCD_PORTS,
    bundle_gate: &[],
    on_reset: Remove,
    stopped_for_restore: false,
    runtime_state: &[],
    rolling: Some(Rolling {
        healthy: Healthy::EtcdMember,
        last: GoesLast::EtcdLeader,
    }),
};

/// The bundle's etcdctl on an etcd host, for the operator and kinit's scripts.
const ETCDCTL: BinaryRow = BinaryRow {
    file: "etcdctl",
    path: "/usr/local/bin/etcdctl",
    mode: 0o755,
    on_change: Nothing,
    optional: false,
};

/// The bundle's etcdutl on an etcd host: `etcd snapshot restore` runs it. etcd 3.6 restores
/// snapshots with etcdutl only (etcdctl 3.4 still can; 3.4 has no etcdutl), and a restore tool
/// must be of the release that wrote the snapshot: etcdctl 3.4 restoring a 3.6 snapshot leaves
/// each member's ID in its WAL different from the membership, and every member panics.
const ETCDUTL: BinaryRow = BinaryRow {
    file: "etcdutl",
    path: "/usr/local/bin/etcdutl",
    mode: 0o755,
    on_change: Nothing,
    optional: true,
};

pub(super) const ETCD_STATIC_POD: Component = Component {
    id: ComponentId::EtcdStaticPod,
    name: "etcd-static-pod",
    roles: &[Etcd],
    with_static_pods: false,
    static_pod: true,
    when: Some(Condition::EtcdStaticPod),
    packages: &[],
    // The image runs etcd; the host gets the tools of the same release (a restore runs on the
    // host while no etcd runs).
    binaries: &[ETCDCTL, ETCDUTL],
    files: &[ETCD_MANIFEST_FILE],
    certificates: &[],
    units: &[],
    ports: ETCD_PORTS,
    bundle_gate: &[],
    on_reset: Remove,
    stopped_for_restore: false,
    runtime_state: &[],
    rolling: Some(Rolling {
        healthy: Healthy::PhaseWaits,
        last: GoesLast::EtcdLeader,
    }),
};

pub(super) const ETCD_IMAGE: Component = Component {
    id: ComponentId::EtcdImage,
    name: "etcd-image",
    // The static pod's image, from the bundle's etcd: on the etcd hosts before their kubelet
    // (re)starts and imports every archive, so the etcd pod never waits for a pull (its
    // manifest names the archive's tag, see render::context).
    roles: &[Etcd],
    with_static_pods: false,
    static_pod: false,
    when: Some(Condition::EtcdStaticPod),
    packages: &[],
    binaries: &[image_row(
        crate::bundle::image::ETCD_ARCHIVE,
        paths::ETCD_IMAGE_ARCHIVE,
    )],
    files: &[],
    certificates: &[],
    units: &[],
    ports: &[],
    // Only where a kubelet runs it.
    bundle_gate: &["kubelet"],
    on_reset: Remove,
    stopped_for_restore: false,
    runtime_state: &[],
    rolling: None,
};

pub(super) const ETCD_SNAPSHOTS: Component = Component {
    id: ComponentId::EtcdSnapshots,
    name: "etcd-snapshots",
    roles: &[Etcd],
    with_static_pods: false,
    static_pod: false,
    when: Some(Condition::EtcdSnapshots),
    // etcdctl: the bundle's in /usr/local/bin (etcd.mode: systemd), else the host's own.
    packages: &[],
    binaries: &[],
    files: &[
        // Run afresh each time the timer fires.
        file(
            "etcd-snapshot.sh.tera",
            paths::ETCD_SNAPSHOT_SCRIPT,
            0o755,
            Nothing,
        ),
        // Not started by `kinit up` (the timer starts it); systemd reads the changed unit
        // at the daemon-reload a unit file change always brings.
        file(
            "kinit-etcd-snapshot.service.tera",
            paths::ETCD_SNAPSHOT_SERVICE,
            0o644,
            Nothing,
        ),
        file(
            "kinit-etcd-snapshot.timer.tera",
            paths::ETCD_SNAPSHOT_TIMER,
            0o644,
            Restart(ETCD_SNAPSHOT_TIMER),
        ),
    ],
    // The script reads them anew on each run.
    certificates: &[],
    units: &[unit(ETCD_SNAPSHOT_TIMER)],
    ports: &[],
    bundle_gate: &[],
    // The timer, service and script go; the snapshots taken stay (reset says where).
    on_reset: Remove,
    stopped_for_restore: false,
    runtime_state: &[],
    rolling: None,
};
