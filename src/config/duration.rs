//! Durations written the way Kubernetes and Go write them: `8760h`, `30m`, `1h30m`, `8760h0m0s`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A validity period or timeout from the config. Keeps the operator's spelling for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDuration {
    duration: Duration,
    text: String,
}

impl ConfigDuration {
    pub fn hours(h: u64) -> Self {
        ConfigDuration {
            duration: Duration::from_secs(h * 3600),
            text: format!("{h}h"),
        }
    }

    pub fn as_duration(&self) -> Duration {
        self.duration
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ConfigDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{text}` is not a duration (write hours, minutes and seconds, e.g. 8760h, 90m, 1h30m)"
            )
        };
        let mut total: u64 = 0;
        let mut number = String::new();
        let mut saw_unit = false;
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                'd' => {
                    return Err(format!(
                        "`{text}`: days are not a duration unit here (as in Kubernetes); write hours, e.g. 8760h for 365 days"
                    ));
                }
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(bad)?;
            number.clear();
            saw_unit = true;
        }
        if !number.is_empty() || !saw_unit {
            return Err(bad());
        }
        Ok(ConfigDuration {
            duration: Duration::from_secs(total),
            text: text.trim().to_string(),
        })
    }
}

impl<'de> serde::Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u64 {
        s.parse::<ConfigDuration>().unwrap().as_duration().as_secs()
    }

    #[test]
    fn go_style_durations() {
        assert_eq!(secs("8760h"), 8760 * 3600);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("8760h0m0s"), 8760 * 3600);
        assert_eq!(secs("45s"), 45);
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "10", "h", "1y", "1.5h", "-1h", "10 h"] {
            assert!(bad.parse::<ConfigDuration>().is_err(), "{bad:?} accepted");
        }
        let days = "365d".parse::<ConfigDuration>().unwrap_err();
        assert!(days.contains("8760h"), "{days}");
    }
}
