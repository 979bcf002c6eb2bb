//! The phases of one `kinit up` run on the phase loop: the playbook's, after the certificate
//! renewal `kinit certs renew --rollout` asks for. The renewal is a phase like the others (its
//! events, its failure named by phase), run once the lock is held on every host and the run's
//! checks passed: it never renews while another run holds the cluster, nor in a run that is
//! refused before any host changes.

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::event::Event;
use super::phase_runner::{DryRun, RunPhase};
use super::run_error::{OperatorError, RunError};
use crate::inventory::Inventory;
use crate::pki::{self, Mode};

/// The name events, failures and `--from-phase` advice use for the renewal.
pub const RENEW_PHASE: &str = "renew-certificates";

/// Certificates to re-issue from the existing CAs before up's phases ship them (kubeadm names;
/// empty means all).
#[derive(Debug, Clone, Default)]
pub struct Renewal {
    pub names: BTreeSet<String>,
}

/// What the renewal needs of the run it is part of (the runner's context provides it; this
/// module knows nothing else of the runner).
pub(super) trait RenewalContext {
    fn inventory(&self) -> &Inventory;
    fn emit(&self, event: Event);
}

/// One phase of an up run: the renewal, or one of the playbook's phases `P`.
pub(super) enum UpPhase<'p, P> {
    Renew(&'p Renewal),
    Playbook(&'p P),
}

impl<'p, P> UpPhase<'p, P> {
    /// The run's phases: the renewal first when there is one, then the playbook's.
    pub(super) fn list(renewal: Option<&'p Renewal>, phases: &'p [P]) -> Vec<UpPhase<'p, P>> {
        renewal
            .map(UpPhase::Renew)
            .into_iter()
            .chain(phases.iter().map(UpPhase::Playbook))
            .collect()
    }
}

impl Renewal {
    /// What the renewal says of itself when it does not run.
    fn says(&self) -> Vec<String> {
        let which = if self.names.is_empty() {
            "every certificate".to_string()
        } else {
            self.names.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        vec![format!("would re-issue {which} from the existing CAs")]
    }
}

impl<C, P> RunPhase<C> for UpPhase<'_, P>
where
    C: RenewalContext,
    P: RunPhase<C, Error = RunError>,
{
    type Error = RunError;

    fn name(&self) -> &str {
        match self {
            UpPhase::Renew(_) => RENEW_PHASE,
            UpPhase::Playbook(p) => p.name(),
        }
    }

    fn title(&self) -> &str {
        match self {
            UpPhase::Renew(_) => "Re-issue certificates from the existing CAs",
            UpPhase::Playbook(p) => p.title(),
        }
    }

    fn hosts(&self, run: &C) -> Vec<String> {
        match self {
            // This machine's PKI: no host.
            UpPhase::Renew(_) => Vec::new(),
            UpPhase::Playbook(p) => p.hosts(run),
        }
    }

    fn skipped(&self, run: &C) -> Option<String> {
        match self {
            UpPhase::Renew(_) => None,
            UpPhase::Playbook(p) => p.skipped(run),
        }
    }

    fn dry_run(&self, run: &C) -> DryRun {
        match self {
            UpPhase::Renew(r) => DryRun::Says(r.says()),
            UpPhase::Playbook(p) => p.dry_run(run),
        }
    }

    async fn run(&self, run: &mut C) -> Result<(), RunError> {
        match self {
            UpPhase::Renew(r) => {
                let mode = Mode::Renew(r.names.clone());
                let report =
                    pki::generate(run.inventory(), &mode, SystemTime::now()).map_err(|e| {
                        RunError::Operator {
                            phase: RENEW_PHASE.into(),
                            error: OperatorError::Pki(e),
                        }
                    })?;
                run.emit(Event::CertificatesRenewed {
                    phase: RENEW_PHASE.into(),
                    report,
                });
                Ok(())
            }
            UpPhase::Playbook(p) => p.run(run).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::playbook::Phase;
    use super::*;

    fn phase(name: &str) -> Phase {
        serde_yaml::from_str(&format!("{{name: {name}, title: a phase}}")).unwrap()
    }

    fn names(list: &[UpPhase<'_, Phase>]) -> Vec<String> {
        list.iter()
            .map(|p| match p {
                UpPhase::Renew(_) => RENEW_PHASE.to_string(),
                UpPhase::Playbook(p) => p.name.clone(),
            })
            .collect()
    }

    #[test]
    fn the_renewal_comes_before_every_playbook_phase() {
        let phases = [phase("preflight"), phase("pki")];
        let renewal = Renewal::default();
        assert_eq!(
            names(&UpPhase::list(Some(&renewal), &phases)),
            [RENEW_PHASE, "preflight", "pki"]
        );
        assert_eq!(names(&UpPhase::list(None, &phases)), ["preflight", "pki"]);
    }

    #[test]
    fn a_dry_run_says_which_certificates_would_be_reissued() {
        let all = Renewal::default();
        assert_eq!(
            all.says(),
            ["would re-issue every certificate from the existing CAs"]
        );
        let some = Renewal {
            names: ["apiserver".to_string(), "admin.conf".to_string()].into(),
        };
        assert_eq!(
            some.says(),
            ["would re-issue admin.conf, apiserver from the existing CAs"]
        );
    }

    #[test]
    fn the_renewal_event_carries_the_report_beside_event_and_phase() {
        let report = pki::GenerateReport {
            dir: "/pki".into(),
            events: vec![pki::Event {
                item: "apiserver (cp1)".into(),
                action: pki::Action::Reissued("renewed".into()),
            }],
            files_written: 2,
            stale_hosts: Vec::new(),
        };
        let v = serde_json::to_value(Event::CertificatesRenewed {
            phase: RENEW_PHASE.into(),
            report,
        })
        .unwrap();
        assert_eq!(v["event"], "certificates-renewed");
        assert_eq!(v["phase"], RENEW_PHASE);
        assert_eq!(v["filesWritten"], 2);
        assert_eq!(v["events"][0]["item"], "apiserver (cp1)");
        assert_eq!(v["events"][0]["action"], "reissued");
    }
}
