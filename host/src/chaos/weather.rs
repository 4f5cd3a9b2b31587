//! The weather: the seed's parameters (latency, speed, jitter, resets) as flags, TOML keys and
//! the control endpoint's JSON, checked, and the dice that turn them into faults.

use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::task::millis;

/// The seed's parameters, as written. Simple mode: `latency`, `speed`. Advanced mode: ranges,
/// jitter and resets. The same names serve as flags (`--latency-min`), TOML keys and JSON keys.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Knobs {
    /// Delay before the first byte of each link toward the client, in ms.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<u64>,
    /// Total rate of all links toward their clients, in bytes per second.
    #[arg(long, value_name = "BYTES_PER_SEC", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<u64>,
    /// Advanced mode: first-byte delay drawn per link between these, in ms.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_min: Option<u64>,
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_max: Option<u64>,
    /// Advanced mode: the total rate, drawn again between these every second, bytes/s.
    #[arg(long, value_name = "BYTES_PER_SEC", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_min: Option<u64>,
    #[arg(long, value_name = "BYTES_PER_SEC", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_max: Option<u64>,
    /// Probability (0–1) that a piece of a link (up to 16 KiB) is held back: a short outage.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_prob: Option<f64>,
    /// Length of an outage, drawn between these, in ms.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_min: Option<u64>,
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_max: Option<u64>,
    /// Cut links abruptly (TCP RST) mid-transfer.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset_enable: bool,
    /// Probability (0–1) that a link is cut.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_prob: Option<f64>,
}

/// Checked parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weather {
    pub latency: (Duration, Duration),
    /// Bytes per second toward clients, drawn between the two; no limit if none.
    pub speed: Option<(u64, u64)>,
    pub jitter: Option<(f64, Duration, Duration)>,
    pub reset: Option<f64>,
}

impl Knobs {
    /// `self` over `base`, key by key: flags over the config file.
    #[must_use]
    pub fn over(self, base: &Knobs) -> Knobs {
        Knobs {
            latency: self.latency.or(base.latency),
            speed: self.speed.or(base.speed),
            latency_min: self.latency_min.or(base.latency_min),
            latency_max: self.latency_max.or(base.latency_max),
            speed_min: self.speed_min.or(base.speed_min),
            speed_max: self.speed_max.or(base.speed_max),
            jitter_prob: self.jitter_prob.or(base.jitter_prob),
            jitter_min: self.jitter_min.or(base.jitter_min),
            jitter_max: self.jitter_max.or(base.jitter_max),
            reset_enable: self.reset_enable || base.reset_enable,
            reset_prob: self.reset_prob.or(base.reset_prob),
        }
    }

    /// Checks the parameters; every refusal names the flag (the TOML and JSON key is the
    /// same name without the dashes).
    pub fn weather(&self) -> Result<Weather, String> {
        let latency = match (self.latency, self.latency_min, self.latency_max) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(
                    "use --latency (simple mode) or --latency-min/--latency-max (advanced mode), not both".into()
                );
            }
            (Some(ms), None, None) => (ms, ms),
            (None, min, max) => range("latency", min, max)?.unwrap_or((0, 0)),
        };
        let speed = match (self.speed, self.speed_min, self.speed_max) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err("use --speed (simple mode) or --speed-min/--speed-max (advanced mode), not both".into());
            }
            (Some(bps), None, None) => Some((bps, bps)),
            (None, min, max) => range("speed", min, max)?,
        };
        if let Some((min, _)) = speed.filter(|(min, _)| *min == 0) {
            return Err(format!(
                "--speed/--speed-min must be at least 1 byte per second (got {min}); leave it out for no limit"
            ));
        }
        let jitter = match self.jitter_prob {
            None if self.jitter_min.is_some() || self.jitter_max.is_some() => {
                return Err("--jitter-min/--jitter-max need --jitter-prob".into());
            }
            None => None,
            Some(p) => {
                probability("--jitter-prob", p)?;
                let (min, max) = range("jitter", self.jitter_min, self.jitter_max)?
                    .ok_or("--jitter-prob needs --jitter-min and --jitter-max (the length of an outage, ms)")?;
                Some((p, Duration::from_millis(min), Duration::from_millis(max)))
            }
        };
        let reset = match (self.reset_enable, self.reset_prob) {
            (true, Some(p)) => Some(probability("--reset-prob", p)?),
            (true, None) => return Err("--reset-enable needs --reset-prob (the probability that a link is cut)".into()),
            (false, Some(_)) => return Err("--reset-prob takes effect only with --reset-enable".into()),
            (false, None) => None,
        };
        Ok(Weather {
            latency: (Duration::from_millis(latency.0), Duration::from_millis(latency.1)),
            speed,
            jitter,
            reset,
        })
    }
}

fn range(name: &str, min: Option<u64>, max: Option<u64>) -> Result<Option<(u64, u64)>, String> {
    match (min, max) {
        (None, None) => Ok(None),
        (Some(min), Some(max)) if min <= max => Ok(Some((min, max))),
        (Some(min), Some(max)) => Err(format!("--{name}-min ({min}) exceeds --{name}-max ({max})")),
        _ => Err(format!("--{name}-min and --{name}-max go together")),
    }
}

fn probability(flag: &str, p: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&p) { Ok(p) } else { Err(format!("{flag} must be between 0 and 1 (got {p})")) }
}

impl Weather {
    /// The parameters in advanced form, as `GET /_chaos/config` shows them.
    pub fn knobs(&self) -> Knobs {
        Knobs {
            latency_min: Some(millis(self.latency.0)),
            latency_max: Some(millis(self.latency.1)),
            speed_min: self.speed.map(|s| s.0),
            speed_max: self.speed.map(|s| s.1),
            jitter_prob: self.jitter.map(|j| j.0),
            jitter_min: self.jitter.map(|j| millis(j.1)),
            jitter_max: self.jitter.map(|j| millis(j.2)),
            reset_enable: self.reset.is_some(),
            reset_prob: self.reset,
            ..Knobs::default()
        }
    }
}

/// Randomness, seeded for reproducible runs.
pub struct Dice(Mutex<StdRng>);

impl Dice {
    pub fn new(seed: Option<u64>) -> Self {
        Self(Mutex::new(seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.0.lock())
    }

    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.with(|r| r.random_bool(p.min(1.0)))
    }

    pub fn between(&self, (min, max): (Duration, Duration)) -> Duration {
        if min >= max { min } else { self.with(|r| r.random_range(min..=max)) }
    }

    pub fn in_range(&self, min: u64, max: u64) -> u64 {
        if min >= max { min } else { self.with(|r| r.random_range(min..=max)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs(toml: &str) -> Knobs {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn simple_and_advanced_modes() {
        let w = knobs("latency = 100\nspeed = 5000").weather().unwrap();
        assert_eq!(w.latency, (Duration::from_millis(100), Duration::from_millis(100)));
        assert_eq!(w.speed, Some((5000, 5000)));
        let w = knobs("latency-min = 10\nlatency-max = 20\njitter-prob = 0.5\njitter-min = 1\njitter-max = 2\nreset-enable = true\nreset-prob = 0.3").weather().unwrap();
        assert_eq!(w.reset, Some(0.3));
        assert_eq!(w.knobs().weather().unwrap(), w, "GET /_chaos/config round-trips");
        assert_eq!(Knobs::default().weather().unwrap().speed, None);
    }

    #[test]
    fn refusals_name_the_flag() {
        for (toml, flag) in [
            ("jitter-prob = 1.5\njitter-min = 1\njitter-max = 2", "--jitter-prob"),
            ("latency-min = 500\nlatency-max = 100", "--latency-min"),
            ("latency = 5\nlatency-min = 1\nlatency-max = 2", "--latency"),
            ("speed-min = 10", "--speed-min"),
            ("speed = 0", "--speed"),
            ("reset-enable = true", "--reset-prob"),
            ("reset-prob = 0.5", "--reset-enable"),
            ("reset-enable = true\nreset-prob = -0.1", "--reset-prob"),
            ("jitter-prob = 0.1", "--jitter-min"),
        ] {
            let err = knobs(toml).weather().unwrap_err();
            assert!(err.contains(flag), "{toml}: {err}");
        }
        assert!(toml::from_str::<Knobs>("latency = -5").is_err(), "negative values do not parse");
        assert!(toml::from_str::<Knobs>("latancy = 5").unwrap_err().to_string().contains("latancy"));
    }

    #[test]
    fn seeded_dice_repeat() {
        let (a, b) = (Dice::new(Some(7)), Dice::new(Some(7)));
        let draws = |d: &Dice| (0..20).map(|_| d.in_range(0, 1000)).collect::<Vec<_>>();
        assert_eq!(draws(&a), draws(&b));
    }
}
