//! keepalived's VRRP choices, as pure functions so they can be documented and tested.

use std::net::IpAddr;

use ipnet::IpNet;

/// `virtual_router_id`: must be equal on every host of one cluster and differ between clusters
/// sharing a network, or their keepalived instances fight over each other's VIP. It is
/// FNV-1a (32 bit) of `"<cluster name>/<VIP>"`, reduced into 1..=255. Stable across kinit
/// versions and machines (no randomness, no std hasher whose output may change).
/// Two clusters collide with probability 1/255; rename one if `kinit render` shows equal ids.
pub fn virtual_router_id(cluster: &str, vip: &str) -> u8 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in cluster
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(vip.bytes())
    {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % 255) as u8 + 1
}

/// Priority of the control-plane host at `index` (config order): 150, 149, 148, ...
/// The first host starts as MASTER and holds the VIP while healthy; the others are BACKUP in
/// config order. Preemption stays on (keepalived's default) so the VIP returns to the first host
/// when it recovers: one predictable holder is easier to reason about than wherever the VIP last
/// landed. `nopreempt` is not used because it would also stop a failing holder from being
/// replaced by a healthier, higher-priority backup.
pub fn priority(index: usize) -> u8 {
    150u8.saturating_sub(index.min(149) as u8)
}

/// The weight `check_apiserver` subtracts on failure: the number of control-plane hosts, so a
/// failing host always drops below every healthy one (priorities are spaced 1 apart), like
/// kubeadm's example (priorities 101/100, weight -2). The check lowers the priority instead of
/// forcing FAULT so that a VIP exists while the first apiserver is still starting.
pub fn check_weight(control_planes: usize) -> i32 {
    -(control_planes.clamp(1, 253) as i32)
}

/// The VIP with the node subnet's prefix length when the config names one, else a host route.
pub fn vip_cidr(vip: IpAddr, node_subnet: Option<IpNet>) -> String {
    let prefix = match (node_subnet, vip) {
        (Some(net), _) => net.prefix_len(),
        (None, IpAddr::V4(_)) => 32,
        (None, IpAddr::V6(_)) => 128,
    };
    format!("{vip}/{prefix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_id_is_stable_in_range_and_depends_on_name_and_vip() {
        let a = virtual_router_id("demo", "192.168.9.100");
        assert_eq!(a, virtual_router_id("demo", "192.168.9.100"));
        assert_ne!(a, virtual_router_id("prod", "192.168.9.100"));
        assert_ne!(a, virtual_router_id("demo", "192.168.9.101"));
        for i in 0..2000 {
            let id = virtual_router_id(&format!("c{i}"), "10.0.0.1");
            assert!(id >= 1);
        }
    }

    #[test]
    fn a_failed_host_ranks_below_every_healthy_one() {
        for n in 1..=20usize {
            let lowest_healthy = priority(n - 1) as i32;
            for i in 0..n {
                assert!(priority(i) as i32 + check_weight(n) < lowest_healthy);
            }
        }
    }

    #[test]
    fn vip_prefix() {
        let vip: IpAddr = "192.168.9.100".parse().unwrap();
        assert_eq!(vip_cidr(vip, None), "192.168.9.100/32");
        let net = "192.168.9.0/24".parse().ok();
        assert_eq!(vip_cidr(vip, net), "192.168.9.100/24");
    }
}
