use std::time::Duration;

/// How the lab tells the operator what it is doing. Implemented in `ui` (a spinner on a
/// terminal, plain lines otherwise); library code only calls these.
pub trait Reporter: Send + Sync {
    /// A step starts (`building image`, `cp1: booting`).
    fn step(&self, what: &str);
    /// A line of detail inside the current step (debootstrap's progress).
    fn detail(&self, line: &str);
    /// The current step finished.
    fn done(&self, what: &str, took: Duration);
}

/// Reports nothing (quiet mode, tests).
pub struct NullReporter;

impl Reporter for NullReporter {
    fn step(&self, _: &str) {}
    fn detail(&self, _: &str) {}
    fn done(&self, _: &str, _: Duration) {}
}
