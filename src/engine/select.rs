//! Which phases a run takes: `--skip-phases`, `--only-phase`, `--from-phase`.

use super::playbook::{Phase, Playbook};

#[derive(Debug, Clone, Default)]
pub struct PhaseSelection {
    pub skip: Vec<String>,
    pub only: Option<String>,
    pub from: Option<String>,
}

/// A phase name the playbook does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no phase `{name}` in playbook {playbook}; phases: {}", phases.join(", "))]
pub struct UnknownPhase {
    pub name: String,
    pub playbook: String,
    pub phases: Vec<String>,
}

/// The phases `sel` picks, in playbook order.
pub fn select(book: &Playbook, sel: &PhaseSelection) -> Result<Vec<Phase>, UnknownPhase> {
    let names: Vec<String> = book.phases.iter().map(|p| p.name.clone()).collect();
    if let Some(n) = sel
        .skip
        .iter()
        .chain(&sel.only)
        .chain(&sel.from)
        .find(|n| !names.contains(n))
    {
        return Err(UnknownPhase {
            name: n.clone(),
            playbook: book.name.clone(),
            phases: names,
        });
    }
    let mut started = sel.from.is_none();
    Ok(book
        .phases
        .iter()
        .filter(|p| {
            if sel.from.as_deref() == Some(p.name.as_str()) {
                started = true;
            }
            started && !sel.skip.contains(&p.name) && sel.only.as_ref().is_none_or(|o| *o == p.name)
        })
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sel: PhaseSelection) -> Result<Vec<String>, String> {
        let book = super::super::playbook::load(None).unwrap();
        select(&book, &sel)
            .map(|phases| phases.into_iter().map(|p| p.name).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn phases_are_picked_by_skip_only_and_from() {
        assert_eq!(names(PhaseSelection::default()).unwrap().len(), 15);
        assert_eq!(
            names(PhaseSelection {
                from: Some("load-balancer".into()),
                ..Default::default()
            })
            .unwrap(),
            [
                "load-balancer",
                "control-plane",
                "control-plane-units",
                "kubelets",
                "cluster-admins",
                "nodes-ready",
                "cluster-dns"
            ]
        );
        assert_eq!(
            names(PhaseSelection {
                only: Some("etcd".into()),
                ..Default::default()
            })
            .unwrap(),
            ["etcd"]
        );
        assert_eq!(
            names(PhaseSelection {
                skip: vec!["preflight".into(), "time-sync".into()],
                from: Some("pki".into()),
                ..Default::default()
            })
            .unwrap(),
            [
                "pki",
                "certificates",
                "node",
                "etcd",
                "etcd-static-pod",
                "etcd-snapshots",
                "load-balancer",
                "control-plane",
                "control-plane-units",
                "kubelets",
                "cluster-admins",
                "nodes-ready",
                "cluster-dns"
            ]
        );
        let err = names(PhaseSelection {
            skip: vec!["etdc".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.starts_with("no phase `etdc` in playbook up; phases: preflight, pki"),
            "{err}"
        );
    }
}
