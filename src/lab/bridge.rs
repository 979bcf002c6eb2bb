//! The lab's bridge and the checks that keep the lab subnet to itself. The bridge gets the
//! subnet's first address, which makes the kernel route the subnet to the bridge and nowhere
//! else; nothing here enables forwarding or adds NAT, and the nodes have no default route.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use ipnet::Ipv4Net;
use serde::Deserialize;

use super::LabError;
use super::host_tools::run;

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub fn is_bridge(name: &str) -> bool {
    Path::new("/sys/class/net")
        .join(name)
        .join("bridge")
        .is_dir()
}

pub fn create(name: &str, address: Ipv4Addr, subnet: Ipv4Net) -> Result<(), LabError> {
    let step = format!("creating bridge {name}");
    run(
        Command::new("ip").args(["link", "add", name, "type", "bridge"]),
        &step,
    )?;
    // IPv4 only: no router advertisements or IPv6 chatter from the operator's side.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
    run(
        Command::new("ip").args([
            "addr",
            "add",
            &format!("{address}/{}", subnet.prefix_len()),
            "dev",
            name,
        ]),
        &step,
    )?;
    run(Command::new("ip").args(["link", "set", name, "up"]), &step)?;
    Ok(())
}

/// Delete a link if it exists (the bridge, or a veth nspawn left behind).
pub fn delete_link(name: &str) -> Result<(), LabError> {
    if !link_exists(name) {
        return Ok(());
    }
    run(
        Command::new("ip").args(["link", "del", name]),
        &format!("deleting link {name}"),
    )?;
    Ok(())
}

#[derive(Deserialize)]
struct IpAddrLink {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Deserialize)]
struct IpAddrInfo {
    local: Option<Ipv4Addr>,
    prefixlen: Option<u8>,
}

#[derive(Deserialize)]
struct IpRoute {
    dst: String,
    dev: Option<String>,
}

/// A network this machine uses: an interface address or a route, with how to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedNet {
    pub net: Ipv4Net,
    /// The interface it is on (for routes, the route's device), if any.
    pub dev: Option<String>,
    /// `address 10.0.0.5/16 on eth0` or `route 10.0.0.0/8 dev tun0`.
    pub what: String,
}

/// Whether two networks share any address.
pub fn nets_overlap(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Every IPv4 address and route on this machine (except default routes), from `ip -j`.
pub fn machine_networks() -> Result<Vec<UsedNet>, LabError> {
    let step = "checking the subnet is free";
    let addrs = run(Command::new("ip").args(["-j", "-4", "addr", "show"]), step)?;
    let links: Vec<IpAddrLink> = serde_json::from_slice(&addrs.stdout)
        .map_err(|e| LabError::step(step, format!("cannot parse `ip -j addr`: {e}")))?;
    let routes = run(
        Command::new("ip").args(["-j", "-4", "route", "show", "table", "all"]),
        step,
    )?;
    let routes: Vec<IpRoute> = serde_json::from_slice(&routes.stdout)
        .map_err(|e| LabError::step(step, format!("cannot parse `ip -j route`: {e}")))?;
    Ok(used_nets(&links, &routes))
}

/// Addresses and routes on this machine that overlap `subnet`, except those on `own_bridge`.
pub fn subnet_users(subnet: Ipv4Net, own_bridge: &str) -> Result<Vec<String>, LabError> {
    Ok(overlaps(subnet, own_bridge, &machine_networks()?))
}

fn used_nets(links: &[IpAddrLink], routes: &[IpRoute]) -> Vec<UsedNet> {
    let mut found = Vec::new();
    for link in links {
        for info in &link.addr_info {
            if let (Some(ip), Some(len)) = (info.local, info.prefixlen)
                && let Ok(net) = Ipv4Net::new(ip, len)
            {
                found.push(UsedNet {
                    net: net.trunc(),
                    dev: Some(link.ifname.clone()),
                    what: format!("address {ip}/{len} on {}", link.ifname),
                });
            }
        }
    }
    for route in routes {
        if route.dst == "default" {
            continue;
        }
        let net = route
            .dst
            .parse::<Ipv4Net>()
            .or_else(|_| route.dst.parse::<Ipv4Addr>().map(Ipv4Net::from));
        if let Ok(net) = net {
            let dev = route.dev.as_deref().unwrap_or("?");
            found.push(UsedNet {
                net,
                dev: route.dev.clone(),
                what: format!("route {} dev {dev}", route.dst),
            });
        }
    }
    found
}

/// What in `used` overlaps `subnet`, except what is on `own_bridge`, each named once.
pub fn overlaps(subnet: Ipv4Net, own_bridge: &str, used: &[UsedNet]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for u in used {
        if u.dev.as_deref() == Some(own_bridge) || !nets_overlap(subnet, u.net) {
            continue;
        }
        if !found.contains(&u.what) {
            found.push(u.what.clone());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(addrs: &str, routes: &str) -> (Vec<IpAddrLink>, Vec<IpRoute>) {
        (
            serde_json::from_str(addrs).unwrap(),
            serde_json::from_str(routes).unwrap(),
        )
    }

    #[test]
    fn overlapping_addresses_and_routes_are_found_but_not_our_own_bridge() {
        let (links, routes) = parse(
            r#"[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8}]},
                {"ifname":"eth0","addr_info":[{"local":"10.213.0.5","prefixlen":16}]},
                {"ifname":"kinit-default","addr_info":[{"local":"10.213.0.1","prefixlen":24}]}]"#,
            r#"[{"dst":"default","dev":"eth0"},{"dst":"10.0.0.0/8","dev":"tun0"},
                {"dst":"10.213.0.0/24","dev":"kinit-default"},{"dst":"192.168.1.0/24","dev":"eth0"}]"#,
        );
        let used = used_nets(&links, &routes);
        let found = overlaps("10.213.0.0/24".parse().unwrap(), "kinit-default", &used);
        assert_eq!(
            found,
            ["address 10.213.0.5/16 on eth0", "route 10.0.0.0/8 dev tun0"]
        );
        let free = overlaps("172.31.9.0/24".parse().unwrap(), "kinit-default", &used);
        assert!(free.is_empty(), "{free:?}");
    }

    #[test]
    fn this_machine_can_be_queried() {
        // Loopback is always there and always overlaps 127/8 (needs iproute2, which CI installs).
        let found = subnet_users("127.0.0.0/24".parse().unwrap(), "none").unwrap();
        assert!(found.iter().any(|f| f.contains("127.0.0.1")), "{found:?}");
    }
}
