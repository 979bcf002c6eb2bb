//! `kinit status`: the live health of a cluster, gathered without changing anything — etcd
//! members over mutual TLS, which host holds the VIP, keepalived and haproxy per control-plane
//! host, service states, and certificate expiry from the operator's PKI dir.
//!
//! Library code: it returns a [`StatusReport`]; `ui::status` shows it.

pub mod certificates;
pub mod control_plane;
pub mod etcd;
pub mod gather;
pub mod haproxy_stats;
pub mod probe;
pub mod report;

pub use gather::{GatherOptions, assemble, gather};
pub use report::{
    BackendServer, CertificateNote, CertificateSummary, EtcdMemberStatus, EtcdStatus,
    HaproxyStatus, HostStatus, KeepalivedState, ServiceStatus, StatusReport, UnitVersion,
    VipStatus,
};
