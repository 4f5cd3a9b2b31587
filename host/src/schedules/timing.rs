//! When a schedule runs: a cron expression (five fields, or six with seconds first; UTC) or a
//! fixed interval counted from when the schedule was defined or resumed.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use croner::Cron;

/// The longest interval a schedule may have.
pub const MAX_INTERVAL: Duration = Duration::from_hours(8784);

#[derive(Clone, Debug)]
pub enum Timing {
    Cron { expression: String, cron: Box<Cron> },
    Every(Duration),
}

impl Timing {
    /// A cron timing; `Err` says what is wrong with the expression, or that it never fires.
    pub fn cron(expression: &str) -> Result<Self, String> {
        let cron = Cron::from_str(expression).map_err(|e| format!("invalid cron expression {expression:?}: {e}"))?;
        let timing = Self::Cron { expression: expression.trim().to_owned(), cron: Box::new(cron) };
        let now = SystemTime::now();
        if timing.next_after(now, now).is_none() {
            return Err(format!("the cron expression {expression:?} never fires after now"));
        }
        Ok(timing)
    }

    pub fn every(interval: Duration) -> Result<Self, String> {
        if interval < Duration::from_secs(1) || interval > MAX_INTERVAL {
            return Err(format!("the interval must be between 1 s and {} s", MAX_INTERVAL.as_secs()));
        }
        Ok(Self::Every(interval))
    }

    /// The first time this timing names strictly after `after`, for a schedule defined (or
    /// resumed) at `since`; `None` if there is none.
    pub fn next_after(&self, after: SystemTime, since: SystemTime) -> Option<SystemTime> {
        match self {
            Self::Every(interval) => {
                let Ok(elapsed) = after.duration_since(since) else {
                    return since.checked_add(*interval);
                };
                let periods = elapsed.as_nanos() / interval.as_nanos() + 1;
                let offset = interval.checked_mul(u32::try_from(periods).ok()?)?;
                since.checked_add(offset)
            }
            Self::Cron { cron, .. } => {
                let start: DateTime<Utc> = after.max(since).into();
                cron.find_next_occurrence(&start, false).ok().map(SystemTime::from)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn an_interval_counts_from_its_definition() {
        let every = Timing::every(Duration::from_secs(10)).unwrap();
        assert_eq!(every.next_after(at(100), at(100)), Some(at(110)));
        assert_eq!(every.next_after(at(109), at(100)), Some(at(110)));
        assert_eq!(every.next_after(at(110), at(100)), Some(at(120)));
        assert_eq!(every.next_after(at(50), at(100)), Some(at(110)));
        assert!(Timing::every(Duration::ZERO).is_err());
        assert!(Timing::every(MAX_INTERVAL + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn cron_allows_seconds_and_five_fields() {
        let every_five_seconds = Timing::cron("*/5 * * * * *").unwrap();
        assert_eq!(every_five_seconds.next_after(at(1_000_002), at(0)), Some(at(1_000_005)));
        let hourly = Timing::cron("0 * * * *").unwrap();
        assert_eq!(hourly.next_after(at(3_600), at(0)), Some(at(7_200)));
        // Never before its definition.
        assert_eq!(hourly.next_after(at(0), at(3_700)), Some(at(7_200)));
    }

    #[test]
    fn bad_cron_expressions_say_why() {
        assert!(Timing::cron("every minute").unwrap_err().contains("invalid cron expression"));
        assert!(Timing::cron("61 * * * *").is_err());
        assert!(Timing::cron("0 0 30 2 *").is_err());
    }
}
