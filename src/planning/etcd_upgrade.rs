//! Whether the bundle's etcd may replace what the members run: etcd supports an upgrade of one
//! minor version at a time (3.4 -> 3.5, then 3.5 -> 3.6; patch releases freely within a
//! minor) and no downgrade through a restart with an older binary (the data directory of a
//! newer release may not be read by an older one; etcd's own downgrade is a separate, online
//! procedure). Pure: the bundle's version and each member's in, a decision out.

use std::collections::BTreeMap;

use crate::etcd::version::EtcdVersion;

/// A member's host and the version its etcd reports (`None`: it did not answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberVersion {
    pub host: String,
    pub version: Option<EtcdVersion>,
}

/// What the bundle asks of the running members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every member that answered runs the bundle's version.
    Current,
    Upgrade(Upgrade),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub to: EtcdVersion,
    /// From each older version, the hosts that run it.
    pub from: Vec<(EtcdVersion, Vec<String>)>,
    /// Hosts that run `to` already (an upgrade that stopped half way).
    pub done: Vec<String>,
    /// Hosts whose member did not answer.
    pub unknown: Vec<String>,
}

impl Upgrade {
    /// `etcd 3.4.23 → 3.5.1 on cp1, cp2, cp3`, then what else is worth knowing.
    pub fn describe(&self) -> String {
        let steps: Vec<String> = self
            .from
            .iter()
            .map(|(v, hosts)| format!("{v} → {} on {}", self.to, hosts.join(", ")))
            .collect();
        let mut text = format!("etcd {}", steps.join("; "));
        if !self.done.is_empty() {
            text.push_str(&format!(
                " ({} run(s) {} already)",
                self.done.join(", "),
                self.to
            ));
        }
        if !self.unknown.is_empty() {
            text.push_str(&format!(
                " ({} did not answer: version not known)",
                self.unknown.join(", ")
            ));
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRefusal {
    #[error(
        "the bundle's etcd {bundle} is older than etcd {running} on {hosts}: that is a \
         downgrade{}, which kinit does not do (an older etcd may not read a newer one's data). \
         Put a bundle with etcd {running} or newer in spec.artifacts.bundle",
        if *patch_only { " (of the patch release only, but still a downgrade)" } else { "" },
        hosts = hosts.join(", ")
    )]
    Downgrade {
        bundle: EtcdVersion,
        running: EtcdVersion,
        hosts: Vec<String>,
        patch_only: bool,
    },
    #[error(
        "the bundle's etcd {bundle} is more than one minor version ahead of etcd {running} on \
         {hosts}: etcd upgrades one minor version at a time. Upgrade to the latest {next}.x \
         release first (a bundle with it, then `kinit up`), then to {bundle}",
        hosts = hosts.join(", "),
        next = format_args!("{}.{}", running.major, running.minor + 1)
    )]
    MinorJump {
        bundle: EtcdVersion,
        running: EtcdVersion,
        hosts: Vec<String>,
    },
    #[error(
        "the bundle's etcd {bundle} is another major version than etcd {running} on {hosts}: \
         kinit upgrades etcd within one major version only",
        hosts = hosts.join(", ")
    )]
    OtherMajor {
        bundle: EtcdVersion,
        running: EtcdVersion,
        hosts: Vec<String>,
    },
    #[error(
        "the bundle's etcd {bundle} is the next minor version after etcd {running} on {hosts}, \
         but etcd upgrades to {bundle_minor} only from {running_minor}.{floor} or later (its upgrade guide: the \
         patch releases before it leave upgrade blockers). Upgrade to the latest {running_minor}.x \
         release first (a bundle with it, then `kinit up`), then to {bundle}",
        hosts = hosts.join(", "),
        bundle_minor = format_args!("{}.{}", bundle.major, bundle.minor),
        running_minor = format_args!("{}.{}", running.major, running.minor),
    )]
    PatchTooOld {
        bundle: EtcdVersion,
        running: EtcdVersion,
        hosts: Vec<String>,
        /// The oldest patch release of `running`'s minor line it upgrades from.
        floor: u32,
    },
}

/// The oldest patch release of a minor line that etcd supports a minor upgrade from:
/// ((major, minor), patch). 3.6's upgrade guide wants every 3.5 member on 3.5.26 or later.
const MINOR_UPGRADE_FLOOR: &[((u32, u32), u32)] = &[((3, 5), 26)];

fn minor_upgrade_floor(running: &EtcdVersion) -> Option<u32> {
    MINOR_UPGRADE_FLOOR
        .iter()
        .find(|((major, minor), _)| *major == running.major && *minor == running.minor)
        .map(|(_, patch)| *patch)
}

/// The decision for `bundle` over `members`; a refusal names the first version (oldest for a
/// jump, newest for a downgrade) that forbids it, and every host that runs it.
pub fn decide(bundle: &EtcdVersion, members: &[MemberVersion]) -> Result<Decision, UpgradeRefusal> {
    let mut by_version: BTreeMap<EtcdVersion, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for m in members {
        match &m.version {
            Some(v) => by_version
                .entry(v.clone())
                .or_default()
                .push(m.host.clone()),
            None => unknown.push(m.host.clone()),
        }
    }
    // Newest first: a downgrade of any member is the refusal to name.
    for (running, hosts) in by_version.iter().rev() {
        if running > bundle {
            return Err(UpgradeRefusal::Downgrade {
                bundle: bundle.clone(),
                running: running.clone(),
                hosts: hosts.clone(),
                patch_only: running.major == bundle.major && running.minor == bundle.minor,
            });
        }
    }
    for (running, hosts) in &by_version {
        if running.major != bundle.major {
            return Err(UpgradeRefusal::OtherMajor {
                bundle: bundle.clone(),
                running: running.clone(),
                hosts: hosts.clone(),
            });
        }
        if bundle.minor > running.minor + 1 {
            return Err(UpgradeRefusal::MinorJump {
                bundle: bundle.clone(),
                running: running.clone(),
                hosts: hosts.clone(),
            });
        }
        if bundle.minor == running.minor + 1
            && let Some(floor) = minor_upgrade_floor(running)
            && running.patch < floor
        {
            return Err(UpgradeRefusal::PatchTooOld {
                bundle: bundle.clone(),
                running: running.clone(),
                hosts: hosts.clone(),
                floor,
            });
        }
    }
    let done = by_version.remove(bundle).unwrap_or_default();
    if by_version.is_empty() {
        return Ok(Decision::Current);
    }
    Ok(Decision::Upgrade(Upgrade {
        to: bundle.clone(),
        from: by_version.into_iter().collect(),
        done,
        unknown,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> EtcdVersion {
        EtcdVersion::parse(s).unwrap()
    }

    fn members(list: &[(&str, Option<&str>)]) -> Vec<MemberVersion> {
        list.iter()
            .map(|(h, ver)| MemberVersion {
                host: h.to_string(),
                version: ver.map(v),
            })
            .collect()
    }

    fn three(version: &str) -> Vec<MemberVersion> {
        members(&[
            ("cp1", Some(version)),
            ("cp2", Some(version)),
            ("cp3", Some(version)),
        ])
    }

    #[test]
    fn same_version_is_nothing_to_do() {
        assert_eq!(
            decide(&v("3.4.23"), &three("3.4.23")),
            Ok(Decision::Current)
        );
        assert_eq!(decide(&v("3.5.1"), &[]), Ok(Decision::Current));
        let some_silent = members(&[("cp1", Some("3.5.1")), ("cp2", None)]);
        assert_eq!(decide(&v("3.5.1"), &some_silent), Ok(Decision::Current));
    }

    #[test]
    fn one_minor_up_is_an_upgrade_of_every_member() {
        let Ok(Decision::Upgrade(u)) = decide(&v("3.5.1"), &three("3.4.23")) else {
            panic!("an upgrade")
        };
        assert_eq!(
            u.from,
            vec![(v("3.4.23"), vec!["cp1".into(), "cp2".into(), "cp3".into()])]
        );
        assert_eq!(u.describe(), "etcd 3.4.23 → 3.5.1 on cp1, cp2, cp3");
    }

    #[test]
    fn a_patch_release_up_is_an_upgrade() {
        let Ok(Decision::Upgrade(u)) = decide(&v("3.5.17"), &three("3.5.1")) else {
            panic!("an upgrade")
        };
        assert_eq!(u.describe(), "etcd 3.5.1 → 3.5.17 on cp1, cp2, cp3");
    }

    #[test]
    fn an_upgrade_stopped_half_way_goes_on() {
        let m = members(&[
            ("cp1", Some("3.5.1")),
            ("cp2", Some("3.4.23")),
            ("cp3", None),
        ]);
        let Ok(Decision::Upgrade(u)) = decide(&v("3.5.1"), &m) else {
            panic!("an upgrade")
        };
        assert_eq!(
            u.describe(),
            "etcd 3.4.23 → 3.5.1 on cp2 (cp1 run(s) 3.5.1 already) (cp3 did not answer: \
             version not known)"
        );
        let m = members(&[("cp1", Some("3.5.0")), ("cp2", Some("3.4.23"))]);
        let Ok(Decision::Upgrade(u)) = decide(&v("3.5.1"), &m) else {
            panic!("an upgrade")
        };
        assert_eq!(
            u.describe(),
            "etcd 3.4.23 → 3.5.1 on cp2; 3.5.0 → 3.5.1 on cp1"
        );
    }

    #[test]
    fn a_minor_downgrade_is_refused_naming_both_versions_and_the_hosts() {
        let e = decide(&v("3.4.23"), &three("3.5.1")).unwrap_err();
        assert!(
            matches!(
                e,
                UpgradeRefusal::Downgrade {
                    patch_only: false,
                    ..
                }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "the bundle's etcd 3.4.23 is older than etcd 3.5.1 on cp1, cp2, cp3: that is a \
                 downgrade, which kinit does not do"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_patch_downgrade_is_refused_and_says_so() {
        let e = decide(&v("3.5.0"), &three("3.5.1")).unwrap_err();
        assert!(
            matches!(
                e,
                UpgradeRefusal::Downgrade {
                    patch_only: true,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("downgrade (of the patch release only"),
            "{e}"
        );
    }

    #[test]
    fn a_downgrade_of_one_member_refuses_the_whole_run() {
        let m = members(&[
            ("cp1", Some("3.4.23")),
            ("cp2", Some("3.5.1")),
            ("cp3", Some("3.4.23")),
        ]);
        let e = decide(&v("3.4.23"), &m).unwrap_err();
        assert_eq!(
            e,
            UpgradeRefusal::Downgrade {
                bundle: v("3.4.23"),
                running: v("3.5.1"),
                hosts: vec!["cp2".into()],
                patch_only: false,
            }
        );
    }

    #[test]
    fn etcd_3_6_is_reached_only_from_3_5_26_or_later() {
        let e = decide(&v("3.6.16"), &three("3.5.21")).unwrap_err();
        assert_eq!(
            e,
            UpgradeRefusal::PatchTooOld {
                bundle: v("3.6.16"),
                running: v("3.5.21"),
                hosts: vec!["cp1".into(), "cp2".into(), "cp3".into()],
                floor: 26,
            }
        );
        let text = e.to_string();
        assert!(text.contains("only from 3.5.26 or later"), "{text}");
        assert!(text.contains("latest 3.5.x release first"), "{text}");
        // One member below the floor is enough to refuse, and is the one named.
        let m = members(&[("cp1", Some("3.5.36")), ("cp2", Some("3.5.25"))]);
        assert!(
            matches!(decide(&v("3.6.0"), &m), Err(UpgradeRefusal::PatchTooOld { hosts, .. }) if hosts == ["cp2"])
        );
        // From the floor on, and for patch upgrades within 3.5, it goes.
        assert!(matches!(
            decide(&v("3.6.16"), &three("3.5.26")),
            Ok(Decision::Upgrade(_))
        ));
        assert!(matches!(
            decide(&v("3.5.36"), &three("3.5.1")),
            Ok(Decision::Upgrade(_))
        ));
        // 3.4 -> 3.5 has no floor.
        assert!(matches!(
            decide(&v("3.5.1"), &three("3.4.1")),
            Ok(Decision::Upgrade(_))
        ));
    }

    #[test]
    fn more_than_one_minor_is_refused_with_the_release_to_go_through() {
        let e = decide(&v("3.6.0"), &three("3.4.23")).unwrap_err();
        assert_eq!(
            e,
            UpgradeRefusal::MinorJump {
                bundle: v("3.6.0"),
                running: v("3.4.23"),
                hosts: vec!["cp1".into(), "cp2".into(), "cp3".into()],
            }
        );
        let text = e.to_string();
        assert!(
            text.contains(
                "etcd 3.6.0 is more than one minor version ahead of etcd 3.4.23 on cp1, cp2, cp3"
            ),
            "{text}"
        );
        assert!(text.contains("latest 3.5.x release first"), "{text}");
        // The oldest member decides: one member one minor behind is fine, another two is not.
        let m = members(&[("cp1", Some("3.5.1")), ("cp2", Some("3.4.23"))]);
        let e = decide(&v("3.6.0"), &m).unwrap_err();
        assert!(
            matches!(&e, UpgradeRefusal::MinorJump { hosts, .. } if hosts == &["cp2"]),
            "{e:?}"
        );
    }

    #[test]
    fn another_major_is_refused() {
        let e = decide(&v("4.0.0"), &three("3.6.0")).unwrap_err();
        assert!(matches!(e, UpgradeRefusal::OtherMajor { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("etcd 4.0.0 is another major version than etcd 3.6.0")
        );
    }
}
