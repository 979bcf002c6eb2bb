//! Reading a parsed YAML document into [`Config`], one field at a time.
//!
//! serde's derive stops at the first problem. Operators fix a config faster when they see all of
//! them at once, so each field is deserialized on its own (still through serde and yaml_serde), and
//! every unknown key, wrong type and missing field is recorded with its path.

use std::net::IpAddr;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::choice::Choice;
use super::model::*;
use super::problem::ConfigProblem;
use super::source_map::join_key;

/// One mapping of the document being read, remembering which keys the schema asked for.
struct Section<'v> {
    path: String,
    /// None when the node is absent or not a mapping; its required fields are then not reported
    /// one by one (the section itself already was, or is optional).
    map: Option<&'v Mapping>,
    asked: Vec<&'static str>,
}

impl<'v> Section<'v> {
    /// The value under `key`, registering `key` as known. Null counts as absent.
    fn take(&mut self, key: &'static str) -> Option<&'v Value> {
        self.asked.push(key);
        self.map?.get(key).filter(|v| !v.is_null())
    }

    fn field(&self, key: &str) -> String {
        join_key(&self.path, key)
    }
}

struct UnknownKey {
    section: String,
    key: String,
    asked: Vec<&'static str>,
}

#[derive(Default)]
pub(crate) struct Reader {
    pub problems: Vec<ConfigProblem>,
    unknown: Vec<UnknownKey>,
    /// Every (section pattern, key) the schema knows, for "belongs under" hints.
    known: Vec<(String, &'static str)>,
}

impl Reader {
    pub fn read(mut self, doc: &Value) -> (Config, Vec<ConfigProblem>) {
        let mut root = self.mapping(Some(doc), String::new());
        self.fixed_string(&mut root, "apiVersion", API_VERSION, "config::api-version");
        self.fixed_string(&mut root, "kind", KIND, "config::kind");
        let mut metadata = self.section(&mut root, "metadata", true);
        let name = self.required(&mut metadata, "name", "the cluster's name, e.g. demo");
        self.finish(metadata);
        let mut spec = self.section(&mut root, "spec", true);
        let spec_value = self.spec(&mut spec);
        self.finish(spec);
        self.finish(root);
        self.report_unknown_keys();
        (
            Config {
                name,
                spec: spec_value,
            },
            self.problems,
        )
    }

    fn spec(&mut self, spec: &mut Section) -> ClusterSpec {
        let topology = self.choice(spec, "topology").unwrap_or(Topology::Stacked);
        let kubernetes_version = self.required(
            spec,
            "kubernetesVersion",
            "a Kubernetes release such as v1.31.4",
        );

        let mut s = self.section(spec, "controlPlaneEndpoint", true);
        let mut endpoint = ControlPlaneEndpoint::default();
        let address: Option<String> = self.required(
            &mut s,
            "address",
            "the VIP (or load balancer address) clients use, e.g. 192.168.9.100",
        );
        endpoint.address = address.map(|text| match text.parse::<IpAddr>() {
            Ok(ip) => EndpointAddress::Ip(ip),
            Err(_) => EndpointAddress::Dns(text),
        });
        endpoint.port = self
            .optional(&mut s, "port", "a TCP port, 1-65535")
            .unwrap_or(endpoint.port);
        endpoint.load_balancer = self
            .choice(&mut s, "loadBalancer")
            .unwrap_or(endpoint.load_balancer);
        endpoint.interface = self
            .optional(&mut s, "interface", "a network interface name, e.g. eth0")
            .unwrap_or(endpoint.interface);
        endpoint.vrrp_unicast = self
            .optional(&mut s, "vrrpUnicast", "true or false")
            .unwrap_or(endpoint.vrrp_unicast);
        self.finish(s);

        let mut s = self.section(spec, "etcd", false);
        let mut etcd = EtcdSpec::default();
        etcd.mode = self.choice(&mut s, "mode").unwrap_or(etcd.mode);
        etcd.data_dir = self
            .optional(&mut s, "dataDir", "an absolute path")
            .unwrap_or(etcd.data_dir);
        self.finish(s);

        let mut s = self.section(spec, "networking", false);
        let mut networking = Networking::default();
        let cidr = "a CIDR such as 10.244.0.0/16";
        networking.pod_subnet = self
            .parsed(&mut s, "podSubnet", cidr)
            .unwrap_or(networking.pod_subnet);
        networking.service_subnet = self
            .parsed(&mut s, "serviceSubnet", cidr)
            .unwrap_or(networking.service_subnet);
        networking.dns_domain = self
            .optional(&mut s, "dnsDomain", "a DNS domain such as cluster.local")
            .unwrap_or(networking.dns_domain);
        networking.node_subnet = self.parsed(
            &mut s,
            "nodeSubnet",
            "the hosts' subnet, e.g. 192.168.9.0/24",
        );
        self.finish(s);

        let mut s = self.section(spec, "pki", false);
        let mut pki = PkiSpec::default();
        pki.dir = self
            .optional(&mut s, "dir", "a directory path")
            .unwrap_or(pki.dir);
        pki.key_algorithm = self
            .choice(&mut s, "keyAlgorithm")
            .unwrap_or(pki.key_algorithm);
        let duration = "a duration in hours/minutes, e.g. 8760h";
        pki.ca_validity = self
            .optional(&mut s, "caValidity", duration)
            .unwrap_or(pki.ca_validity);
        pki.cert_validity = self
            .optional(&mut s, "certValidity", duration)
            .unwrap_or(pki.cert_validity);
        pki.extra_sans = self
            .optional(&mut s, "extraSANs", "a list of DNS names and IP addresses")
            .unwrap_or_default();
        self.finish(s);

        let mut s = self.section(spec, "ssh", false);
        let mut ssh = SshSpec::default();
        ssh.user = self
            .optional(&mut s, "user", "a login name")
            .unwrap_or(ssh.user);
        ssh.port = self
            .optional(&mut s, "port", "a TCP port, 1-65535")
            .unwrap_or(ssh.port);
        ssh.identity_file = self.optional(&mut s, "identityFile", "a private key path");
        ssh.known_hosts = self
            .optional(&mut s, "knownHosts", "a known_hosts file path")
            .unwrap_or(ssh.known_hosts);
        let mut b = self.section(&mut s, "bastion", false);
        let bastion = Bastion {
            address: self.required(&mut b, "address", "the jump host's address or name"),
            port: self
                .optional(&mut b, "port", "a TCP port, 1-65535")
                .unwrap_or(22),
            user: self.optional(&mut b, "user", "a login name"),
            identity_file: self.optional(&mut b, "identityFile", "a private key path"),
        };
        ssh.bastion = b.map.is_some().then_some(bastion);
        self.finish(b);
        self.finish(s);

        let mut s = self.section(spec, "artifacts", false);
        let artifacts = Artifacts {
            bundle: self.optional(&mut s, "bundle", "a directory of binaries with SHA256SUMS"),
        };
        self.finish(s);

        let mut s = self.section(spec, "timeSync", false);
        let time_sync = TimeSync {
            servers: self
                .optional(&mut s, "servers", "a list of NTP server names or addresses")
                .unwrap_or_default(),
        };
        self.finish(s);

        let hosts = self.hosts(spec);

        ClusterSpec {
            topology,
            kubernetes_version,
            control_plane_endpoint: endpoint,
            etcd,
            networking,
            pki,
            ssh,
            artifacts,
            time_sync,
            hosts,
        }
    }

    fn hosts(&mut self, spec: &mut Section) -> Vec<HostSpec> {
        let path = spec.field("hosts");
        let items = match spec.take("hosts") {
            None => {
                if spec.map.is_some() {
                    self.missing(
                        spec,
                        "hosts",
                        "a list of hosts, each with name, address and roles",
                    );
                }
                return Vec::new();
            }
            Some(Value::Sequence(items)) if items.is_empty() => {
                self.problems.push(
                    ConfigProblem::error("config::no-hosts", path, "the cluster has no hosts")
                        .help(
                            "list the machines under spec.hosts, each with name, address and roles",
                        ),
                );
                return Vec::new();
            }
            Some(Value::Sequence(items)) => items,
            Some(other) => {
                self.wrong_type(&path, other, "a list of hosts");
                return Vec::new();
            }
        };
        let mut hosts = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mut h = self.mapping(Some(item), format!("{path}[{i}]"));
            let name = self.required(&mut h, "name", "a hostname, e.g. cp1");
            let address =
                self.parsed_required(&mut h, "address", "an IP address, e.g. 192.168.9.11");
            let roles = self.roles(&mut h);
            let mut s = self.section(&mut h, "ssh", false);
            let ssh = HostSsh {
                user: self.optional(&mut s, "user", "a login name"),
                port: self.optional(&mut s, "port", "a TCP port, 1-65535"),
                identity_file: self.optional(&mut s, "identityFile", "a private key path"),
            };
            self.finish(s);
            self.finish(h);
            hosts.push(HostSpec {
                name,
                address,
                roles,
                ssh,
            });
        }
        hosts
    }

    fn roles(&mut self, h: &mut Section) -> Vec<Role> {
        let path = h.field("roles");
        let expect = format!("a list of roles, {}", Role::listing());
        match h.take("roles") {
            None => {
                if h.map.is_some() {
                    self.missing(h, "roles", &expect);
                }
                Vec::new()
            }
            Some(Value::Sequence(items)) if items.is_empty() => {
                self.problems.push(
                    ConfigProblem::error(
                        "config::no-roles",
                        path,
                        "a host needs at least one role",
                    )
                    .help(format!("give it roles, {}", Role::listing())),
                );
                Vec::new()
            }
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.choice_value::<Role>(&format!("{path}[{i}]"), v))
                .collect(),
            Some(other) => {
                self.wrong_type(&path, other, &expect);
                Vec::new()
            }
        }
    }

    // ---- building blocks ----

    fn mapping<'v>(&mut self, value: Option<&'v Value>, path: String) -> Section<'v> {
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(other) => {
                self.wrong_type(&path, other, "a mapping of field names to values");
                None
            }
        };
        Section {
            path,
            map,
            asked: Vec::new(),
        }
    }

    fn section<'v>(
        &mut self,
        parent: &mut Section<'v>,
        key: &'static str,
        required: bool,
    ) -> Section<'v> {
        let value = parent.take(key);
        if value.is_none() && required && parent.map.is_some() {
            self.missing(parent, key, "a mapping");
        }
        self.mapping(value, parent.field(key))
    }

    fn optional<T: DeserializeOwned>(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expect: &str,
    ) -> Option<T> {
        let value = s.take(key)?;
        match serde_yaml::from_value::<T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.to_string();
                let code = if message.starts_with("invalid type") {
                    "config::wrong-type"
                } else {
                    "config::invalid-value"
                };
                self.problems.push(
                    ConfigProblem::error(code, s.field(key), message)
                        .help(format!("expected {expect}")),
                );
                None
            }
        }
    }

    fn required<T: DeserializeOwned>(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expect: &str,
    ) -> Option<T> {
        let present = s
            .map
            .is_some_and(|m| m.get(key).is_some_and(|v| !v.is_null()));
        if !present {
            s.asked.push(key);
            if s.map.is_some() {
                self.missing(s, key, expect);
            }
            return None;
        }
        self.optional(s, key, expect)
    }

    /// A string field parsed with `FromStr` (IPs, CIDRs), so the message quotes what was written.
    fn parsed<T: FromStr>(&mut self, s: &mut Section, key: &'static str, expect: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let text: String = self.optional(s, key, expect)?;
        match text.trim().parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(
                    ConfigProblem::error(
                        "config::invalid-value",
                        s.field(key),
                        format!("`{text}`: {e}"),
                    )
                    .help(format!("expected {expect}")),
                );
                None
            }
        }
    }

    fn parsed_required<T: FromStr>(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expect: &str,
    ) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let present = s
            .map
            .is_some_and(|m| m.get(key).is_some_and(|v| !v.is_null()));
        if !present {
            s.asked.push(key);
            if s.map.is_some() {
                self.missing(s, key, expect);
            }
            return None;
        }
        self.parsed(s, key, expect)
    }

    fn choice<T: Choice>(&mut self, s: &mut Section, key: &'static str) -> Option<T> {
        let value = s.take(key)?;
        self.choice_value(&s.field(key), value)
    }

    fn choice_value<T: Choice>(&mut self, path: &str, value: &Value) -> Option<T> {
        let Some(text) = value.as_str() else {
            self.wrong_type(path, value, &format!("a {}, {}", T::WHAT, T::listing()));
            return None;
        };
        if let Some(v) = T::parse(text) {
            return Some(v);
        }
        let names: Vec<&str> = T::ALL.iter().map(|(_, s)| *s).collect();
        let help = match closest(text, &names) {
            Some(best) => format!("did you mean `{best}`? ({})", T::listing()),
            None => format!("expected {}", T::listing()),
        };
        self.problems.push(
            ConfigProblem::error(
                "config::unknown-value",
                path,
                format!("unknown {} `{text}`", T::WHAT),
            )
            .help(help),
        );
        None
    }

    fn fixed_string(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expected: &str,
        code: &'static str,
    ) {
        let Some(value) = s.take(key) else {
            if s.map.is_some() {
                self.missing(s, key, &format!("`{key}: {expected}`"));
            }
            return;
        };
        if value.as_str() != Some(expected) {
            let written = value
                .as_str()
                .map_or_else(|| describe(value).to_string(), |t| format!("`{t}`"));
            self.problems.push(
                ConfigProblem::error(
                    code,
                    s.field(key),
                    format!("{written} is not a {key} kinit reads"),
                )
                .help(format!("write `{key}: {expected}`")),
            );
        }
    }

    fn missing(&mut self, s: &Section, key: &str, expect: &str) {
        let what = if s.path.is_empty() {
            "the document".to_string()
        } else {
            format!("`{}`", s.path)
        };
        self.problems.push(
            ConfigProblem::error(
                "config::missing-field",
                s.field(key),
                format!("missing field `{key}` in {what}"),
            )
            .label(format!("`{key}` is required here"))
            .help(format!("add `{key}`: {expect}")),
        );
    }

    fn wrong_type(&mut self, path: &str, found: &Value, expect: &str) {
        self.problems.push(
            ConfigProblem::error(
                "config::wrong-type",
                path,
                format!("expected {expect}, found {}", describe(found)),
            )
            .help(format!("write {expect}")),
        );
    }

    /// Record the keys of `s` the schema did not ask for; they are reported once the whole
    /// schema is known (a key may belong to another section).
    fn finish(&mut self, s: Section) {
        let pattern = section_pattern(&s.path);
        self.known
            .extend(s.asked.iter().map(|k| (pattern.clone(), *k)));
        let Some(map) = s.map else { return };
        for key in map.keys() {
            let name = match key {
                Value::String(k) => k.clone(),
                other => serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
            if !s.asked.contains(&name.as_str()) {
                self.unknown.push(UnknownKey {
                    section: s.path.clone(),
                    key: name,
                    asked: s.asked.clone(),
                });
            }
        }
    }

    fn report_unknown_keys(&mut self) {
        for u in std::mem::take(&mut self.unknown) {
            let here = if u.section.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{}`", u.section)
            };
            let help = if let Some(best) = closest(&u.key, &u.asked) {
                format!("did you mean `{best}`?")
            } else if let Some((home, _)) = self
                .known
                .iter()
                .find(|(sec, k)| *k == u.key && *sec != section_pattern(&u.section))
            {
                format!("`{}` belongs under `{}`", u.key, home.replace("[]", "[*]"))
            } else {
                let mut valid = u.asked.clone();
                valid.sort_unstable();
                valid.dedup();
                format!("valid fields here: {}", valid.join(", "))
            };
            self.problems.push(
                ConfigProblem::error(
                    "config::unknown-field",
                    join_key(&u.section, &u.key),
                    format!("unknown field `{}` in {here}", u.key),
                )
                .on_key()
                .label("not a field kinit knows")
                .help(help),
            );
        }
    }
}

/// `spec.hosts[3].ssh` → `spec.hosts[].ssh`, so the same field under any host compares equal.
fn section_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// The closest of `candidates` to `word`, if one is close enough to be a plausible typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let w = squash(word);
    if let Some(exact) = candidates.iter().find(|c| squash(c) == w) {
        return Some(exact);
    }
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&w, &squash(c)), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_handles_typos_case_and_snake_case() {
        let fields = ["podSubnet", "serviceSubnet", "dnsDomain", "nodeSubnet"];
        assert_eq!(closest("podSubnt", &fields), Some("podSubnet"));
        assert_eq!(closest("pod_subnet", &fields), Some("podSubnet"));
        assert_eq!(closest("DNSdomain", &fields), Some("dnsDomain"));
        assert_eq!(closest("completelyElse", &fields), None);
    }

    #[test]
    fn section_patterns_drop_indices() {
        assert_eq!(section_pattern("spec.hosts[12].ssh"), "spec.hosts[].ssh");
    }
}
