//! From the inventory (plus the operator's `~/.ssh/config`) to connection targets.
//!
//! cluster.yaml decides the address, user and port of each host. `~/.ssh/config` adds its
//! IdentityFile lines for the host's name or address (tried after the cluster's key), and its
//! ProxyJump when the cluster names no bastion; the jump host itself is resolved through
//! `~/.ssh/config` (HostName, User, Port, IdentityFile) as `ssh -J` would.

use std::path::{Path, PathBuf};

use super::options::HostTarget;
use super::ssh_config::{SshConfig, parse_jump};
use crate::inventory::{Host, Inventory};

/// Keys OpenSSH tries when none is named.
const DEFAULT_KEYS: &[&str] = &[".ssh/id_ed25519", ".ssh/id_ecdsa", ".ssh/id_rsa"];

pub fn host_target(host: &Host, user_config: &SshConfig, home: Option<&Path>) -> HostTarget {
    let mut identity_files: Vec<PathBuf> = host.ssh.identity_file.iter().cloned().collect();
    for alias in [host.name.clone(), host.address.to_string()] {
        for file in user_config.resolve(&alias, home).identity_files {
            if !identity_files.contains(&file) {
                identity_files.push(file);
            }
        }
    }
    add_default_keys(&mut identity_files, home);
    HostTarget {
        name: host.name.clone(),
        address: host.address.to_string(),
        port: host.ssh.port,
        user: host.ssh.user.clone(),
        identity_files,
    }
}

fn add_default_keys(files: &mut Vec<PathBuf>, home: Option<&Path>) {
    if !files.is_empty() {
        return;
    }
    if let Some(home) = home {
        files.extend(
            DEFAULT_KEYS
                .iter()
                .map(|k| home.join(k))
                .filter(|p| p.exists()),
        );
    }
}

/// A ProxyJump in ~/.ssh/config that kinit cannot follow as `ssh` would.
#[derive(Debug, thiserror::Error)]
pub enum JumpHostError {
    #[error(
        "the hosts use different ProxyJump hosts in ~/.ssh/config ({first} for {first_host}, {second} for {second_host}); \
         kinit uses one bastion per cluster: set spec.ssh.bastion"
    )]
    Mixed {
        first: String,
        first_host: String,
        second: String,
        second_host: String,
    },
    #[error(
        "host {host}: ~/.ssh/config has ProxyJump {spec}, a chain of {hops} jump hosts; kinit goes through one \
         bastion only: set spec.ssh.bastion to the last hop, reachable directly, or use a single-hop ProxyJump"
    )]
    MultiHop {
        host: String,
        spec: String,
        hops: usize,
    },
}

/// The bastion for these hosts: spec.ssh.bastion, else a ProxyJump every host shares.
pub fn bastion_target(
    inventory: &Inventory,
    hosts: &[&Host],
    user_config: &SshConfig,
    home: Option<&Path>,
) -> Result<Option<HostTarget>, JumpHostError> {
    if let Some(b) = &inventory.bastion {
        let mut identity_files: Vec<PathBuf> = b.identity_file.iter().cloned().collect();
        identity_files.extend(user_config.resolve(&b.address, home).identity_files);
        add_default_keys(&mut identity_files, home);
        return Ok(Some(HostTarget {
            name: format!("bastion {}", b.address),
            address: b.address.clone(),
            port: b.port,
            user: b.user.clone(),
            identity_files,
        }));
    }
    let mut jump: Option<(String, String)> = None;
    for host in hosts {
        let found = user_config
            .resolve(&host.name, home)
            .proxy_jump
            .or_else(|| {
                user_config
                    .resolve(&host.address.to_string(), home)
                    .proxy_jump
            });
        if let Some(spec) = found.as_deref().filter(|s| s.contains(',')) {
            return Err(JumpHostError::MultiHop {
                host: host.name.clone(),
                spec: spec.to_string(),
                hops: spec.split(',').count(),
            });
        }
        match (&jump, found) {
            (_, None) => {}
            (None, Some(spec)) => jump = Some((spec, host.name.clone())),
            (Some((first, first_host)), Some(spec)) if *first != spec => {
                return Err(JumpHostError::Mixed {
                    first: first.clone(),
                    first_host: first_host.clone(),
                    second: spec,
                    second_host: host.name.clone(),
                });
            }
            _ => {}
        }
    }
    let Some((spec, _)) = jump else {
        return Ok(None);
    };
    let (user, alias, port) = parse_jump(&spec);
    let resolved = user_config.resolve(&alias, home);
    let mut identity_files = resolved.identity_files;
    add_default_keys(&mut identity_files, home);
    let default_user = hosts
        .first()
        .map(|h| h.ssh.user.clone())
        .unwrap_or_else(|| "root".into());
    Ok(Some(HostTarget {
        name: format!("bastion {alias}"),
        address: resolved.host_name.unwrap_or(alias),
        port: port.or(resolved.port).unwrap_or(22),
        user: user.or(resolved.user).unwrap_or(default_user),
        identity_files,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn cluster(ssh: &str) -> String {
        format!(
            "apiVersion: kinit.io/v1alpha1\nkind: Cluster\nmetadata: {{name: t}}\nspec:\n  \
             kubernetesVersion: v1.31.4\n  controlPlaneEndpoint: {{address: 10.0.0.100}}\n  \
             ssh: {ssh}\n  hosts:\n    - {{name: cp1, address: 10.0.0.11, roles: [control-plane, etcd]}}\n"
        )
    }

    fn inventory(yaml: String) -> Inventory {
        let (cfg, report) = config::check(Path::new("c.yaml"), yaml);
        assert!(
            !report.has_errors(),
            "{:?}",
            report.errors().collect::<Vec<_>>()
        );
        Inventory::from_config(
            &cfg.unwrap(),
            Path::new("/cfg"),
            Some(Path::new("/home/op")),
        )
        .unwrap()
    }

    #[test]
    fn the_config_bastion_wins_with_its_own_user_and_key() {
        let inv = inventory(cluster(
            "{user: ops, identityFile: ~/.ssh/k, bastion: {address: 203.0.113.10, port: 2200, user: jump}}",
        ));
        let hosts: Vec<&Host> = inv.hosts.iter().collect();
        let user_config = SshConfig::parse("Host cp1\n  ProxyJump other\n");
        let b = bastion_target(&inv, &hosts, &user_config, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (b.address.as_str(), b.port, b.user.as_str()),
            ("203.0.113.10", 2200, "jump")
        );
        assert_eq!(b.identity_files, [PathBuf::from("/home/op/.ssh/k")]);
        let t = host_target(hosts[0], &user_config, None);
        assert_eq!((t.user.as_str(), t.port), ("ops", 22));
    }

    #[test]
    fn a_shared_proxy_jump_is_resolved_through_ssh_config() {
        let inv = inventory(cluster("{user: ops}"));
        let hosts: Vec<&Host> = inv.hosts.iter().collect();
        let user_config = SshConfig::parse(
            "Host cp1\n  ProxyJump gw\n  IdentityFile /keys/cp\nHost gw\n  HostName 198.51.100.7\n  User admin\n  Port 2022\n",
        );
        let b = bastion_target(&inv, &hosts, &user_config, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (b.address.as_str(), b.port, b.user.as_str()),
            ("198.51.100.7", 2022, "admin")
        );
        let t = host_target(hosts[0], &user_config, None);
        assert_eq!(t.identity_files, [PathBuf::from("/keys/cp")]);
    }

    /// `ProxyJump a,b` is two hops: refused with the host and the whole chain, never cut to `a`.
    #[test]
    fn a_multi_hop_proxy_jump_is_refused_by_name() {
        let inv = inventory(cluster("{user: ops}"));
        let hosts: Vec<&Host> = inv.hosts.iter().collect();
        let user_config = SshConfig::parse("Host cp1\n  ProxyJump ops@outer:2200,inner\n");
        let err = bastion_target(&inv, &hosts, &user_config, None).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, JumpHostError::MultiHop { hops: 2, .. }),
            "{text}"
        );
        assert!(
            text.contains("host cp1") && text.contains("ProxyJump ops@outer:2200,inner"),
            "{text}"
        );
    }

    #[test]
    fn a_bastion_without_address_is_a_config_error_with_its_path() {
        let (_, report) = config::check(Path::new("c.yaml"), cluster("{bastion: {port: 22}}"));
        let paths: Vec<&str> = report.errors().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["spec.ssh.bastion.address"]);
    }
}
