//! A host's clock against the operator's, from the one reading the probe takes.
//!
//! The probe prints a marker and waits for a line on its stdin; the operator sends that line as
//! soon as the marker arrives, and the probe reads its clock right after the line came. So the
//! reading was taken between the moment the line went out and the moment the reading came back:
//! one round trip inside the running probe, with none of its start (sshd's fork, sudo, the
//! shell: seconds on an emulated VM) in it. No assumption about symmetric paths is needed: the
//! finding states the error bound, half that round trip. Without the exchange (an answer that
//! never came) the whole probe's span bounds the reading, and the bound says so.

use serde::Serialize;

/// Host clock minus operator clock, in seconds, as far as one reading can tell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClockSkew {
    /// The middle of the range the reading allows.
    pub offset: f64,
    /// Half the width of that range: the true offset is within `offset ± uncertainty`.
    pub uncertainty: f64,
}

impl ClockSkew {
    /// The smallest skew (absolute) the reading allows.
    pub fn at_least(&self) -> f64 {
        (self.offset.abs() - self.uncertainty).max(0.0)
    }

    /// The largest skew (absolute) the reading allows.
    pub fn at_most(&self) -> f64 {
        self.offset.abs() + self.uncertainty
    }
}

/// The operator times (seconds since the epoch) the host's reading was taken between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingTimes {
    pub earliest: f64,
    pub latest: f64,
}

/// What the operator saw of one probe run, by its own clock (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeTimes {
    /// Just before the command was sent.
    pub sent: f64,
    /// When the whole output had come back.
    pub finished: f64,
    /// When the answer to the probe's marker went out, and when the output after it (the
    /// reading) came back; `None` when there was no such exchange.
    pub exchange: Option<(f64, f64)>,
}

impl ReadingTimes {
    /// The tightest window `times` give: the exchange when the probe says it read its clock
    /// after the answer (`after_answer`), the whole run otherwise.
    pub fn of(times: &ProbeTimes, after_answer: bool) -> ReadingTimes {
        match times.exchange {
            Some((answered, back)) if after_answer && answered <= back => ReadingTimes {
                earliest: answered,
                latest: back,
            },
            _ => ReadingTimes {
                earliest: times.sent,
                latest: times.finished.max(times.sent),
            },
        }
    }
}

/// The skew `host_clock` (the host's reading) shows, taken within `t`.
pub fn estimate(host_clock: f64, t: &ReadingTimes) -> ClockSkew {
    ClockSkew {
        offset: host_clock - (t.earliest + t.latest) / 2.0,
        uncertainty: (t.latest - t.earliest) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Sent at 1000; the host took 25 s to start the probe (an emulated VM, sudo); its marker
    /// came, the answer went out at 1025.000 and the reading was back at 1025.040.
    const SLOW: ProbeTimes = ProbeTimes {
        sent: 1000.0,
        finished: 1027.0,
        exchange: Some((1025.000, 1025.040)),
    };

    #[test]
    fn a_slow_start_does_not_count_as_skew() {
        let t = ReadingTimes::of(&SLOW, true);
        let s = estimate(1025.020, &t);
        assert!(close(s.offset, 0.0), "{s:?}");
        assert!(close(s.uncertainty, 0.020), "{s:?}");
        // Five seconds ahead, same timings: 5 s ± 20 ms.
        let s = estimate(1030.020, &t);
        assert!(close(s.offset, 5.0) && close(s.at_least(), 4.98), "{s:?}");
    }

    #[test]
    fn without_the_exchange_the_whole_run_bounds_the_reading() {
        for (times, after_answer) in [
            (SLOW, false),
            (
                ProbeTimes {
                    exchange: None,
                    ..SLOW
                },
                true,
            ),
        ] {
            let t = ReadingTimes::of(&times, after_answer);
            assert_eq!(
                t,
                ReadingTimes {
                    earliest: 1000.0,
                    latest: 1027.0
                }
            );
            let s = estimate(1025.020, &t);
            assert!(
                close(s.offset, 11.52) && close(s.uncertainty, 13.5),
                "{s:?}"
            );
            assert!(close(s.at_least(), 0.0), "{s:?}");
        }
    }
}
