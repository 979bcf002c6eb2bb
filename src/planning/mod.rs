//! Pure decisions for changing a running cluster without costing it: which etcd hosts join and
//! how (`join_plan`), which member belongs to which host and what resetting some asks of etcd
//! (`membership`), the quorum arithmetic they share (`quorum`), in which order hosts restart and
//! whether etcd may lose one now (`restart_order`), and whether the bundle's etcd may replace
//! the members' (`etcd_upgrade`). Data in, verdicts out: no SSH, no network, no clock. The
//! engine and the day-two commands read the cluster, ask these, and act.

pub mod etcd_upgrade;
pub mod join_plan;
pub mod kubernetes_upgrade;
pub mod membership;
pub mod quorum;
pub mod restart_order;
