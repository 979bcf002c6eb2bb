//! What `kinit reset` takes off a host and what `kinit remove` rewrites on the hosts that stay,
//! against what `kinit up` puts there, for every shape.

use super::*;

/// Every shape the views are checked for, with the node layer in the bundle.
fn every_full_shape(mut check: impl FnMut(&Inventory, &str)) {
    let mut files = vec!["etcd", "etcdctl"];
    files.extend(NODE_FILES);
    files.extend([
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
    ]);
    let bundle = bundle_with(&files);
    for topology in [Topology::Stacked, Topology::External] {
        for etcd_mode in ["systemd", "static-pod"] {
            for cp_mode in [ControlPlaneMode::StaticPod, ControlPlaneMode::Systemd] {
                let mut inv = inventory(topology, etcd_mode, bundle.path(), true);
                inv.control_plane_mode = cp_mode;
                check(
                    &inv,
                    &format!("{topology} / etcd {etcd_mode} / control plane {cp_mode}"),
                );
            }
        }
    }
}

#[test]
fn reset_takes_off_every_file_and_unit_up_puts_on_a_host() {
    use kinit::components::OnReset;
    every_full_shape(|inv, case| {
        let planned = plan_all(inv);
        for host in &inv.hosts {
            let reset =
                kinit::lifecycle::reset_plan::for_host(inv, host, Path::new("/nonexistent"));
            // What the table keeps on reset (the time sync), and says so.
            let kept: Vec<&components::Component> = components::on_host(inv, host)
                .filter(|c| matches!(c.on_reset, OnReset::Keep(_)))
                .collect();
            let kept_files: BTreeSet<&str> = kept
                .iter()
                .flat_map(|c| c.files.iter().map(|f| f.path))
                .collect();
            let kept_units: BTreeSet<&str> = kept
                .iter()
                .flat_map(|c| c.units.iter().map(|u| u.name))
                .collect();
            for c in &kept {
                assert!(
                    reset.kept.iter().any(|k| k.starts_with(c.name)),
                    "{case}: {}: {} kept without a word: {:?}",
                    host.name,
                    c.name,
                    reset.kept
                );
            }
            let removed: BTreeSet<&str> = reset
                .manifests
                .iter()
                .chain(&reset.files)
                .map(String::as_str)
                .collect();
            for f in planned.files.get(&host.name).into_iter().flatten() {
                assert!(
                    kept_files.contains(f.as_str()) || removed.contains(f.as_str()),
                    "{case}: {}: up writes {f}, reset leaves it",
                    host.name
                );
            }
            for u in planned.running_units.get(&host.name).into_iter().flatten() {
                assert!(
                    kept_units.contains(u.as_str()) || reset.units.contains(&u.as_str()),
                    "{case}: {}: up starts {u}, reset leaves it running",
                    host.name
                );
            }
            // Nothing stopped that the table does not run there.
            let table_units: BTreeSet<&str> = components::on_host(inv, host)
                .flat_map(|c| c.units.iter().map(|u| u.name))
                .collect();
            for u in &reset.units {
                assert!(table_units.contains(u), "{case}: {}: {u}", host.name);
            }
            assert_eq!(
                reset.data_dir.is_some(),
                host.has(kinit::config::Role::Etcd),
                "{case}: {}",
                host.name
            );
        }
    });
}

/// `remove` rewrites, on the hosts that stay, the files `files_to_update` names: every file
/// whose rendering changes when a host leaves the config must be one of them (or a host that
/// stays would keep naming the removed one), and each of them does change for some removal.
#[test]
fn remove_rewrites_every_file_that_names_the_removed_host() {
    use kinit::lifecycle::remove::{files_to_update, without};
    every_full_shape(|inv, case| {
        let templates = Templates::embedded().unwrap();
        let listed: BTreeSet<&str> = files_to_update(inv).into_iter().collect();
        let rendered = |inv: &Inventory, host: &kinit::inventory::Host| {
            kinit::render::render_host(inv, host, &templates)
                .unwrap()
                .into_iter()
                .map(|f| (f.path.to_string(), f.content))
                .collect::<BTreeMap<String, String>>()
        };
        let mut seen_changing = BTreeSet::new();
        for leaving in &inv.hosts {
            let going: BTreeSet<String> = [leaving.name.clone()].into();
            let mut rest = without(inv, &going);
            // The members that stay keep the settings they started with: `up` reads them from
            // their config (etcd reads them only on a first start), so etcd's file is stable.
            rest.etcd_bootstrap = rest
                .with_role(kinit::config::Role::Etcd)
                .map(|h| (h.name.clone(), inv.etcd_bootstrap_of(&h.name)))
                .collect();
            for host in &rest.hosts {
                let (before, after) = (rendered(inv, host), rendered(&rest, host));
                let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
                for p in paths {
                    if before.get(p) == after.get(p) {
                        continue;
                    }
                    assert!(
                        listed.contains(p.as_str()),
                        "{case}: without {}, {}'s {p} changes but remove does not rewrite it",
                        leaving.name,
                        host.name
                    );
                    seen_changing.insert(p.clone());
                }
            }
        }
        for f in &listed {
            assert!(
                seen_changing.contains(*f),
                "{case}: remove rewrites {f}, which no removal changes"
            );
        }
    });
}
