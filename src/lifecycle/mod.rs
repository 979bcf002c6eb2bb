//! Day two: taking kinit off hosts (`reset`), control-plane and etcd hosts out of a running
//! cluster (`remove`), and etcd snapshots that bring a cluster back. They run on the engine's
//! host plumbing and decide with [`crate::planning`]. Library code: nothing printed; typed
//! errors that name the host and the step.

pub mod remove;
pub mod remove_plan;
pub mod reset;
pub mod reset_plan;
pub mod snapshot;
