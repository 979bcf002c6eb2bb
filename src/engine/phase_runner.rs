//! The one loop every host-changing command runs its phases with: `kinit up`'s playbook and
//! `kinit etcd snapshot restore`'s steps alike. Each phase is a small unit (a name, a title,
//! the hosts it concerns, whether it applies, what a dry run says of it, and its run); the loop
//! gives every command the same events (`phase-started`, `phase-skipped`, `note`,
//! `phase-finished`), the same dry run, the same answer to Ctrl-C between phases, and the same
//! clean-up: when a phase fails or the run is interrupted, every phase that began is asked, the
//! last first, to undo what it leaves half done.

use std::future::Future;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::event::{Event, Observer};

/// The run was interrupted (Ctrl-C or SIGTERM) before a phase began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

/// What a dry run does with a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DryRun {
    /// The phase runs: it knows a dry run and changes nothing itself (`up`'s phases ask every
    /// host what would change).
    Runs,
    /// The phase does not run: these lines say what it would do.
    Says(Vec<String>),
}

/// One phase of a command, run on a context `C` the command owns.
pub trait RunPhase<C> {
    type Error: From<Interrupted>;

    /// Stable: the name events and `--skip-phases` use.
    fn name(&self) -> &str;
    fn title(&self) -> &str;
    /// The hosts the phase works on (none: it works on this machine).
    fn hosts(&self, ctx: &C) -> Vec<String>;
    /// Why the phase does not apply to this run (None: it runs).
    fn skipped(&self, ctx: &C) -> Option<String>;
    fn dry_run(&self, ctx: &C) -> DryRun;
    fn run(&self, ctx: &mut C) -> impl Future<Output = Result<(), Self::Error>>;
    /// After this phase or a later one failed, or the run was interrupted once this phase
    /// began: remove what it leaves half done (a partial download, say). Most phases leave
    /// nothing, or leave what the next run finishes.
    fn undo(&self, ctx: &mut C) -> impl Future<Output = ()> {
        let _ = ctx;
        async {}
    }
}

/// Run `phases` in order on `ctx`. Before each: interrupted? skipped? Then `phase-started`,
/// the run (or, in a dry run, what the phase says of itself) and `phase-finished`. The first
/// phase that fails stops the run with its error, once every phase that began (it too) undid
/// what it leaves half done, the last first; so does an interruption.
pub async fn run_phases<C, P: RunPhase<C>>(
    ctx: &mut C,
    phases: &[P],
    dry_run: bool,
    observer: &dyn Observer,
    cancel: &CancellationToken,
) -> Result<(), P::Error> {
    let mut began: Vec<&P> = Vec::new();
    let outcome = run_each(ctx, phases, dry_run, observer, cancel, &mut began).await;
    if outcome.is_err() {
        for phase in began.into_iter().rev() {
            phase.undo(ctx).await;
        }
    }
    outcome
}

/// [`run_phases`] until the first failure; `began` gets every phase that ran (a dry run's
/// phases that only say what they would do never begin).
async fn run_each<'p, C, P: RunPhase<C>>(
    ctx: &mut C,
    phases: &'p [P],
    dry_run: bool,
    observer: &dyn Observer,
    cancel: &CancellationToken,
    began: &mut Vec<&'p P>,
) -> Result<(), P::Error> {
    for phase in phases {
        if cancel.is_cancelled() {
            return Err(Interrupted.into());
        }
        let name = phase.name().to_string();
        if let Some(reason) = phase.skipped(ctx) {
            observer.event(&Event::PhaseSkipped {
                phase: name,
                reason,
            });
            continue;
        }
        observer.event(&Event::PhaseStarted {
            phase: name.clone(),
            title: phase.title().to_string(),
            hosts: phase.hosts(ctx),
        });
        let started = Instant::now();
        let outcome = match (dry_run, phase.dry_run(ctx)) {
            (true, DryRun::Says(lines)) => {
                for message in lines {
                    observer.event(&Event::Note {
                        phase: name.clone(),
                        message,
                    });
                }
                Ok(())
            }
            _ => {
                began.push(phase);
                phase.run(ctx).await
            }
        };
        observer.event(&Event::PhaseFinished {
            phase: name,
            seconds: started.elapsed().as_secs_f64(),
            ok: outcome.is_ok(),
        });
        outcome?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Debug, PartialEq)]
    enum Failed {
        Interrupted,
        Phase(&'static str),
    }

    impl From<Interrupted> for Failed {
        fn from(_: Interrupted) -> Self {
            Failed::Interrupted
        }
    }

    /// A phase that records its run in the context, and fails when told to.
    struct Step {
        name: &'static str,
        skip: bool,
        fails: bool,
        says: Option<&'static str>,
        cancels: Option<CancellationToken>,
        undoes: bool,
    }

    fn step(name: &'static str) -> Step {
        Step {
            name,
            skip: false,
            fails: false,
            says: None,
            cancels: None,
            undoes: false,
        }
    }

    impl RunPhase<Vec<String>> for Step {
        type Error = Failed;
        fn name(&self) -> &str {
            self.name
        }
        fn title(&self) -> &str {
            "a step"
        }
        fn hosts(&self, _: &Vec<String>) -> Vec<String> {
            vec!["h1".into()]
        }
        fn skipped(&self, _: &Vec<String>) -> Option<String> {
            self.skip.then(|| "not here".to_string())
        }
        fn dry_run(&self, _: &Vec<String>) -> DryRun {
            match self.says {
                Some(s) => DryRun::Says(vec![s.to_string()]),
                None => DryRun::Runs,
            }
        }
        async fn run(&self, ran: &mut Vec<String>) -> Result<(), Failed> {
            ran.push(self.name.to_string());
            if let Some(c) = &self.cancels {
                c.cancel();
            }
            if self.fails {
                return Err(Failed::Phase(self.name));
            }
            Ok(())
        }
        async fn undo(&self, ran: &mut Vec<String>) {
            if self.undoes {
                ran.push(format!("undo {}", self.name));
            }
        }
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl Observer for Seen {
        fn event(&self, e: &Event) {
            let line = match e {
                Event::PhaseStarted { phase, .. } => format!("started {phase}"),
                Event::PhaseSkipped { phase, reason } => format!("skipped {phase}: {reason}"),
                Event::Note { phase, message } => format!("note {phase}: {message}"),
                Event::PhaseFinished { phase, ok, .. } => format!("finished {phase} {ok}"),
                other => format!("{other:?}"),
            };
            self.0.lock().unwrap().push(line);
        }
    }

    fn run(phases: &[Step], dry_run: bool) -> (Result<(), Failed>, Vec<String>, Vec<String>) {
        let seen = Seen::default();
        let mut ran = Vec::new();
        let cancel = CancellationToken::new();
        let result = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run_phases(&mut ran, phases, dry_run, &seen, &cancel));
        (result, ran, seen.0.into_inner().unwrap())
    }

    #[test]
    fn phases_run_in_order_and_a_skipped_one_says_why() {
        let phases = [
            step("a"),
            Step {
                skip: true,
                ..step("b")
            },
            step("c"),
        ];
        let (result, ran, events) = run(&phases, false);
        assert_eq!(result, Ok(()));
        assert_eq!(ran, ["a", "c"]);
        assert_eq!(
            events,
            [
                "started a",
                "finished a true",
                "skipped b: not here",
                "started c",
                "finished c true"
            ]
        );
    }

    #[test]
    fn the_first_failure_stops_the_run_after_its_phase_finished() {
        let phases = [
            step("a"),
            Step {
                fails: true,
                ..step("b")
            },
            step("c"),
        ];
        let (result, ran, events) = run(&phases, false);
        assert_eq!(result, Err(Failed::Phase("b")));
        assert_eq!(ran, ["a", "b"]);
        assert_eq!(events.last().unwrap(), "finished b false");
    }

    #[test]
    fn a_failure_has_every_phase_that_began_undo_the_last_first() {
        let phases = [
            Step {
                undoes: true,
                ..step("a")
            },
            Step {
                skip: true,
                undoes: true,
                ..step("b")
            },
            Step {
                undoes: true,
                ..step("c")
            },
            Step {
                fails: true,
                undoes: true,
                ..step("d")
            },
            Step {
                undoes: true,
                ..step("e")
            },
        ];
        let (result, ran, _) = run(&phases, false);
        assert_eq!(result, Err(Failed::Phase("d")));
        assert_eq!(ran, ["a", "c", "d", "undo d", "undo c", "undo a"]);
    }

    #[test]
    fn a_run_that_ends_well_undoes_nothing() {
        let phases = [Step {
            undoes: true,
            ..step("a")
        }];
        let (result, ran, _) = run(&phases, false);
        assert_eq!(result, Ok(()));
        assert_eq!(ran, ["a"]);
    }

    #[test]
    fn a_dry_run_runs_only_the_phases_that_know_one_and_notes_what_the_others_would_do() {
        let phases = [
            Step {
                says: Some("would stop x"),
                ..step("a")
            },
            step("b"),
        ];
        let (result, ran, events) = run(&phases, true);
        assert_eq!(result, Ok(()));
        assert_eq!(
            ran,
            ["b"],
            "a phase that says what it would do does not run"
        );
        assert_eq!(events[1], "note a: would stop x");
    }

    #[test]
    fn an_interruption_stops_the_run_before_the_next_phase() {
        let cancel = CancellationToken::new();
        let phases = [
            Step {
                cancels: Some(cancel.clone()),
                undoes: true,
                ..step("a")
            },
            step("b"),
        ];
        let seen = Seen::default();
        let mut ran = Vec::new();
        let result = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run_phases(&mut ran, &phases, false, &seen, &cancel));
        assert_eq!(result, Err(Failed::Interrupted));
        assert_eq!(ran, ["a", "undo a"], "an interrupted run undoes too");
    }
}
