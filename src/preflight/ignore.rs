//! `--ignore-preflight-errors`, with kubeadm's semantics: names are case-insensitive, `all`
//! ignores every check, and an ignored failure is reported as a warning rather than hidden.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreSet {
    names: BTreeSet<String>,
}

impl IgnoreSet {
    /// From the flag's values, e.g. `["NumCPU,Swap", "port-2379"]`.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> IgnoreSet {
        IgnoreSet {
            names: values
                .iter()
                .flat_map(|v| v.as_ref().split(','))
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    pub fn ignores(&self, check: &str) -> bool {
        self.names.contains("all") || self.names.contains(&check.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_semantics() {
        let s = IgnoreSet::parse(&["NumCPU, swap", "Port-2379"]);
        assert!(s.ignores("numcpu") && s.ignores("Swap") && s.ignores("port-2379"));
        assert!(!s.ignores("Mem"));
        assert!(IgnoreSet::parse(&["ALL"]).ignores("anything"));
        assert!(!IgnoreSet::parse::<&str>(&[]).ignores("Mem"));
    }
}
