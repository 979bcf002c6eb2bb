//! Day two: taking kinit off hosts (`reset`), control-plane and etcd hosts out of a running
//! cluster (`remove`), etcd membership changes that keep quorum, restarts one host at a time
//! (`restart_order`), etcd upgrades through the bundle (`etcd_upgrade`), and etcd snapshots that
//! bring a cluster back. Library code: nothing printed; typed errors that
//! name the host and the step.

pub mod bundle_etcd_version;
pub mod etcd_upgrade;
pub mod join_plan;
pub mod membership;
pub mod quorum;
pub mod remove;
pub mod remove_plan;
pub mod reset;
pub mod reset_plan;
pub mod restart_order;
pub mod snapshot;
