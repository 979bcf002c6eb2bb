//! Reading a parsed YAML document into [`Config`], one field at a time.
//!
//! serde's derive stops at the first problem. Operators fix a config faster when they see all of
//! them at once, so each field is deserialized on its own (still through serde and yaml_serde), and
//! every unknown key, wrong type and missing field is recorded with its path.

use std::net::IpAddr;

use serde_yaml::Value;

use super::choice::Choice;
use super::model::*;
use super::problem::ConfigProblem;

mod fields;

use fields::{FieldReader, ListField, Section};

/// The document as a [`Config`], with every problem found on the way.
pub(crate) fn read(doc: &Value) -> (Config, Vec<ConfigProblem>) {
    let r = &mut FieldReader::default();
    let mut root = r.mapping(Some(doc), String::new());
    r.fixed_string(&mut root, "apiVersion", API_VERSION, "config::api-version");
    r.fixed_string(&mut root, "kind", KIND, "config::kind");
    let mut metadata = r.section(&mut root, "metadata", true);
    let name = r.required(&mut metadata, "name", "the cluster's name, e.g. demo");
    r.finish(metadata);
    let mut spec = r.section(&mut root, "spec", true);
    let spec_value = cluster_spec(r, &mut spec);
    r.finish(spec);
    r.finish(root);
    let problems = r.take_problems();
    (
        Config {
            name,
            spec: spec_value,
        },
        problems,
    )
}

fn cluster_spec(r: &mut FieldReader, spec: &mut Section) -> ClusterSpec {
    let topology = r.choice(spec, "topology").unwrap_or(Topology::Stacked);
    let kubernetes_version = r.required(
        spec,
        "kubernetesVersion",
        "a Kubernetes release such as v1.31.4",
    );
    let image_repository = r
        .optional(
            spec,
            "imageRepository",
            "a registry and path, e.g. registry.k8s.io or registry.aliyuncs.com/google_containers",
        )
        .unwrap_or_else(|| DEFAULT_IMAGE_REPOSITORY.to_string());
    let control_plane_endpoint = control_plane_endpoint(r, spec);

    let mut s = r.section(spec, "controlPlane", false);
    let control_plane = ControlPlaneSpec {
        mode: r.choice(&mut s, "mode").unwrap_or_default(),
    };
    r.finish(s);

    let etcd = etcd(r, spec);
    let networking = networking(r, spec);
    let pki = pki(r, spec);
    let ssh = ssh(r, spec);

    let mut s = r.section(spec, "artifacts", false);
    let artifacts = Artifacts {
        bundle: r.optional(&mut s, "bundle", "a directory of binaries with SHA256SUMS"),
    };
    r.finish(s);

    let mut s = r.section(spec, "timeSync", false);
    let time_sync = TimeSync {
        servers: r
            .optional(&mut s, "servers", "a list of NTP server names or addresses")
            .unwrap_or_default(),
    };
    r.finish(s);

    let registries = registries(r, spec);

    let mut s = r.section(spec, "rollout", false);
    let rollout = Rollout {
        max_unavailable_workers: r
            .parsed_scalar(
                &mut s,
                "maxUnavailableWorkers",
                "a number of workers (e.g. 2) or a share of them (e.g. \"25%\")",
            )
            .unwrap_or_default(),
    };
    r.finish(s);

    let hosts = hosts(r, spec);

    ClusterSpec {
        topology,
        kubernetes_version,
        image_repository,
        control_plane_endpoint,
        control_plane,
        etcd,
        networking,
        pki,
        ssh,
        artifacts,
        time_sync,
        registries,
        rollout,
        hosts,
    }
}

fn control_plane_endpoint(r: &mut FieldReader, spec: &mut Section) -> ControlPlaneEndpoint {
    let mut s = r.section(spec, "controlPlaneEndpoint", true);
    let mut endpoint = ControlPlaneEndpoint::default();
    let address: Option<String> = r.required(
        &mut s,
        "address",
        "the VIP (or load balancer address) clients use, e.g. 192.168.9.100",
    );
    endpoint.address = address.map(|text| match text.parse::<IpAddr>() {
        Ok(ip) => EndpointAddress::Ip(ip),
        Err(_) => EndpointAddress::Dns(text),
    });
    endpoint.port = r
        .optional(&mut s, "port", "a TCP port, 1-65535")
        .unwrap_or(endpoint.port);
    endpoint.load_balancer = r
        .choice(&mut s, "loadBalancer")
        .unwrap_or(endpoint.load_balancer);
    endpoint.interface = r
        .optional(&mut s, "interface", "a network interface name, e.g. eth0")
        .unwrap_or(endpoint.interface);
    endpoint.vrrp_unicast = r
        .optional(&mut s, "vrrpUnicast", "true or false")
        .unwrap_or(endpoint.vrrp_unicast);
    r.finish(s);
    endpoint
}

fn etcd(r: &mut FieldReader, spec: &mut Section) -> EtcdSpec {
    let mut s = r.section(spec, "etcd", false);
    let mut etcd = EtcdSpec::default();
    etcd.mode = r.choice(&mut s, "mode").unwrap_or(etcd.mode);
    etcd.data_dir = r
        .optional(&mut s, "dataDir", "an absolute path")
        .unwrap_or(etcd.data_dir);
    let mut b = r.section(&mut s, "snapshots", false);
    let mut snapshots = EtcdSnapshots::default();
    snapshots.schedule = r
        .optional(
            &mut b,
            "schedule",
            "a systemd calendar expression, e.g. hourly or *-*-* 00/6:00:00",
        )
        .unwrap_or(snapshots.schedule);
    snapshots.keep = r
        .optional(&mut b, "keep", "a whole number from 1 to 1000")
        .unwrap_or(snapshots.keep);
    snapshots.dir = r
        .optional(
            &mut b,
            "dir",
            "an absolute path, e.g. /var/lib/etcd-snapshots",
        )
        .unwrap_or(snapshots.dir);
    etcd.snapshots = b.map.is_some().then_some(snapshots);
    r.finish(b);
    r.finish(s);
    etcd
}

fn networking(r: &mut FieldReader, spec: &mut Section) -> Networking {
    let mut s = r.section(spec, "networking", false);
    let mut networking = Networking::default();
    let cidr = "a CIDR such as 10.244.0.0/16";
    networking.pod_subnet = r
        .parsed(&mut s, "podSubnet", cidr)
        .unwrap_or(networking.pod_subnet);
    networking.service_subnet = r
        .parsed(&mut s, "serviceSubnet", cidr)
        .unwrap_or(networking.service_subnet);
    networking.dns_domain = r
        .optional(&mut s, "dnsDomain", "a DNS domain such as cluster.local")
        .unwrap_or(networking.dns_domain);
    networking.node_subnet = r.parsed(
        &mut s,
        "nodeSubnet",
        "the hosts' subnet, e.g. 192.168.9.0/24",
    );
    networking.dns_upstreams = r.optional(
        &mut s,
        "dnsUpstreams",
        "a list of IP addresses, e.g. [192.168.9.1]; [] forwards nothing",
    );
    r.finish(s);
    networking
}

fn pki(r: &mut FieldReader, spec: &mut Section) -> PkiSpec {
    let mut s = r.section(spec, "pki", false);
    let mut pki = PkiSpec::default();
    pki.dir = r
        .optional(&mut s, "dir", "a directory path")
        .unwrap_or(pki.dir);
    pki.key_algorithm = r
        .choice(&mut s, "keyAlgorithm")
        .unwrap_or(pki.key_algorithm);
    let duration = "a duration in hours/minutes, e.g. 8760h";
    pki.ca_validity = r
        .optional(&mut s, "caValidity", duration)
        .unwrap_or(pki.ca_validity);
    pki.cert_validity = r
        .optional(&mut s, "certValidity", duration)
        .unwrap_or(pki.cert_validity);
    pki.extra_sans = r
        .optional(&mut s, "extraSANs", "a list of DNS names and IP addresses")
        .unwrap_or_default();
    r.finish(s);
    pki
}

fn ssh(r: &mut FieldReader, spec: &mut Section) -> SshSpec {
    let mut s = r.section(spec, "ssh", false);
    let mut ssh = SshSpec::default();
    ssh.user = r
        .optional(&mut s, "user", "a login name")
        .unwrap_or(ssh.user);
    ssh.port = r
        .optional(&mut s, "port", "a TCP port, 1-65535")
        .unwrap_or(ssh.port);
    ssh.identity_file = r.optional(&mut s, "identityFile", "a private key path");
    ssh.known_hosts = r
        .optional(&mut s, "knownHosts", "a known_hosts file path")
        .unwrap_or(ssh.known_hosts);
    let mut b = r.section(&mut s, "bastion", false);
    let bastion = Bastion {
        address: r.required(&mut b, "address", "the jump host's address or name"),
        port: r
            .optional(&mut b, "port", "a TCP port, 1-65535")
            .unwrap_or(22),
        user: r.optional(&mut b, "user", "a login name"),
        identity_file: r.optional(&mut b, "identityFile", "a private key path"),
    };
    ssh.bastion = b.map.is_some().then_some(bastion);
    r.finish(b);
    r.finish(s);
    ssh
}

fn registries(r: &mut FieldReader, spec: &mut Section) -> Vec<RegistrySpec> {
    let field = ListField {
        key: "registries",
        expect: "a list of registries, each with a name",
        required: None,
        empty: None,
    };
    let Some((path, items)) = r.list(spec, field) else {
        return Vec::new();
    };
    let mut registries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut m = r.mapping(Some(item), format!("{path}[{i}]"));
        let registry = RegistrySpec {
            name: r.required(
                &mut m,
                "name",
                "the registry as image references name it, e.g. registry.k8s.io",
            ),
            mirrors: r
                .optional(
                    &mut m,
                    "mirrors",
                    "a list of endpoints, e.g. [https://mirror.internal:5000]",
                )
                .unwrap_or_default(),
            ca_file: r.optional(&mut m, "caFile", "a PEM CA bundle path"),
            insecure: r
                .optional(&mut m, "insecure", "true or false")
                .unwrap_or(false),
        };
        r.finish(m);
        registries.push(registry);
    }
    registries
}

fn hosts(r: &mut FieldReader, spec: &mut Section) -> Vec<HostSpec> {
    let field = ListField {
        key: "hosts",
        expect: "a list of hosts",
        required: Some("a list of hosts, each with name, address and roles"),
        empty: Some((
            "config::no-hosts",
            "the cluster has no hosts",
            "list the machines under spec.hosts, each with name, address and roles",
        )),
    };
    let Some((path, items)) = r.list(spec, field) else {
        return Vec::new();
    };
    let mut hosts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut h = r.mapping(Some(item), format!("{path}[{i}]"));
        let name = r.required(&mut h, "name", "a hostname, e.g. cp1");
        let address = r.parsed_required(&mut h, "address", "an IP address, e.g. 192.168.9.11");
        let roles = roles(r, &mut h);
        let mut s = r.section(&mut h, "ssh", false);
        let ssh = HostSsh {
            user: r.optional(&mut s, "user", "a login name"),
            port: r.optional(&mut s, "port", "a TCP port, 1-65535"),
            identity_file: r.optional(&mut s, "identityFile", "a private key path"),
        };
        r.finish(s);
        r.finish(h);
        hosts.push(HostSpec {
            name,
            address,
            roles,
            ssh,
        });
    }
    hosts
}

fn roles(r: &mut FieldReader, h: &mut Section) -> Vec<Role> {
    let expect = format!("a list of roles, {}", Role::listing());
    let help = format!("give it roles, {}", Role::listing());
    let field = ListField {
        key: "roles",
        expect: &expect,
        required: Some(&expect),
        empty: Some(("config::no-roles", "a host needs at least one role", &help)),
    };
    let Some((path, items)) = r.list(h, field) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| r.choice_value::<Role>(&format!("{path}[{i}]"), v))
        .collect()
}
