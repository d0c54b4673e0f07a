//! Time values of the directory: durations (`30s`, `15m`, `4h`, `5d`,
//! `1h30m`), daily windows (`HH:MM-HH:MM`), day sets (`Mon-Fri`, `Sat,Sun`)
//! and connection schedules. Owns the syntax and the "is this moment inside"
//! questions; it never reads the clock.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{ValueError, shown};

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses a duration such as `30s`, `15m`, `4h`, `5d` or `1h30m` (whole seconds).
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(ValueError::new(
            "empty duration: write e.g. 30s, 15m, 4h, 5d",
        ));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        let mut chars = after.chars();
        let unit = chars.next().map(|c| c.to_ascii_lowercase());
        let seconds = UNITS
            .iter()
            .find(|(u, _)| Some(*u) == unit)
            .map(|(_, secs)| *secs);
        let (false, Some(seconds)) = (digits.is_empty(), seconds) else {
            return Err(ValueError::new(format!(
                "{text} is not a duration: write a number and a unit s, m, h or d (e.g. 15m, 1h30m)",
                text = shown(text)
            )));
        };
        total = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds))
            .and_then(|n| n.checked_add(total))
            .ok_or_else(|| {
                ValueError::new(format!("duration {text} is too long", text = shown(text)))
            })?;
        rest = chars.as_str().trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// Prints a duration in the form [`parse_duration`] reads (`1h30m`, `0s`);
/// fractions of a second are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if secs >= size {
            out.push_str(&(secs / size).to_string());
            out.push(unit);
            secs %= size;
        }
    }
    out
}

/// A daily window `HH:MM-HH:MM`, both ends included, that may wrap midnight
/// (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    start: u16,
    end: u16,
}

impl TimeWindow {
    /// `00:00-06:00`, the default low-priority window.
    pub const MIDNIGHT_TO_SIX: TimeWindow = TimeWindow {
        start: 0,
        end: 6 * 60,
    };

    /// `start` and `end` in minutes after midnight (0..1440).
    pub fn new(start: u16, end: u16) -> Option<Self> {
        (start < 1440 && end < 1440).then_some(Self { start, end })
    }

    pub fn start_minute(self) -> u16 {
        self.start
    }

    pub fn end_minute(self) -> u16 {
        self.end
    }

    /// Is the minute of the day (0..1440) inside the window?
    pub fn contains(self, minute_of_day: u16) -> bool {
        if self.start <= self.end {
            (self.start..=self.end).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start || minute_of_day <= self.end
        }
    }
}

fn parse_clock(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let digits = |t: &str, max_len: usize| {
        (!t.is_empty() && t.len() <= max_len && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u16>().ok())
            .flatten()
    };
    let (h, m) = (digits(h, 2)?, digits(m, 2).filter(|_| m.len() == 2)?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl FromStr for TimeWindow {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split_once('-')
            .and_then(|(a, b)| {
                Some(Self {
                    start: parse_clock(a)?,
                    end: parse_clock(b)?,
                })
            })
            .ok_or_else(|| {
                ValueError::new(format!(
                    "{} is not a time window: write HH:MM-HH:MM, e.g. 00:00-06:00",
                    shown(s.trim())
                ))
            })
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl Weekday {
    /// 0 = Monday ... 6 = Sunday (chrono's `num_days_from_monday`).
    pub fn from_monday_index(index: u32) -> Option<Self> {
        WEEK.get(usize::try_from(index).ok()?).copied()
    }

    fn index(self) -> usize {
        self as usize
    }

    fn parse(s: &str) -> Option<Self> {
        let lower = s.trim().to_ascii_lowercase();
        FULL_DAY_NAMES
            .iter()
            .position(|full| *full == lower || full.get(..3) == Some(lower.as_str()))
            .map(|i| WEEK[i])
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DAY_NAMES[self.index()])
    }
}

/// A non-empty set of weekdays: `Mon-Sun`, `Mon-Fri`, `Sat,Sun`, `Fri-Mon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DaySet(u8);

impl DaySet {
    pub const ALL: DaySet = DaySet(0x7f);

    /// The set of the given days; `None` when empty.
    pub fn of(days: impl IntoIterator<Item = Weekday>) -> Option<Self> {
        let bits = days.into_iter().fold(0u8, |acc, d| acc | 1 << d.index());
        (bits != 0).then_some(Self(bits))
    }

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.index()) != 0
    }
}

impl FromStr for DaySet {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |item: &str| {
            ValueError::new(format!(
                "{item:?} is not a day or day range: write e.g. Mon-Sun, Mon-Fri, Sat,Sun"
            ))
        };
        let mut days = Vec::new();
        for item in s.split(',') {
            match item.split_once('-') {
                Some((a, b)) => {
                    let from = Weekday::parse(a).ok_or_else(|| bad(item.trim()))?;
                    let to = Weekday::parse(b).ok_or_else(|| bad(item.trim()))?;
                    let span = (to.index() + 7 - from.index()) % 7;
                    days.extend((0..=span).map(|k| WEEK[(from.index() + k) % 7]));
                }
                None => days.push(Weekday::parse(item).ok_or_else(|| bad(item.trim()))?),
            }
        }
        DaySet::of(days).ok_or_else(|| bad(s.trim()))
    }
}

impl fmt::Display for DaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Runs of consecutive days (Monday-based, no wrap), three or more as a range.
        let mut items = Vec::new();
        let mut i = 0;
        while i < 7 {
            if !self.contains(WEEK[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < 7 && self.contains(WEEK[i]) {
                i += 1;
            }
            if i - start >= 3 {
                items.push(format!("{}-{}", WEEK[start], WEEK[i - 1]));
            } else {
                items.extend(WEEK[start..i].iter().map(Weekday::to_string));
            }
        }
        f.write_str(&items.join(","))
    }
}

/// When a connection may be used: inside `times`, on `days`, every `repeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub times: TimeWindow,
    /// Interval between connection attempts; zero: once at the window's start.
    pub repeat: Duration,
    pub days: DaySet,
}

impl Default for Schedule {
    /// `{ times = "00:00-23:59", repeat = "60m", days = "Mon-Sun" }`.
    fn default() -> Self {
        Self {
            times: TimeWindow {
                start: 0,
                end: 23 * 60 + 59,
            },
            repeat: Duration::from_secs(3600),
            days: DaySet::ALL,
        }
    }
}

impl Schedule {
    /// Is the moment (weekday, minute of the day) inside the schedule?
    /// A window that wraps midnight belongs to the day it starts on.
    pub fn allows(&self, day: Weekday, minute_of_day: u16) -> bool {
        if !self.times.contains(minute_of_day) {
            return false;
        }
        let starts_yesterday = self.times.start > self.times.end && minute_of_day <= self.times.end;
        let day = if starts_yesterday {
            WEEK[(day.index() + 6) % 7]
        } else {
            day
        };
        self.days.contains(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        let cases = [
            ("30s", 30),
            ("15m", 900),
            ("4h", 14_400),
            ("5d", 432_000),
            ("1h30m", 5_400),
            ("1H 30M", 5_400),
            ("0s", 0),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(90_061)), "1d1h1m1s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        for bad in [
            "",
            "15",
            "m",
            "15x",
            "1.5h",
            "-1m",
            "99999999999999999999d",
            "15mm",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn windows() {
        let w: TimeWindow = "22:00-06:00".parse().unwrap();
        assert!(w.contains(23 * 60) && w.contains(0) && w.contains(6 * 60));
        assert!(!w.contains(12 * 60));
        let day: TimeWindow = "08:00-17:30".parse().unwrap();
        assert!(day.contains(8 * 60) && day.contains(17 * 60 + 30) && !day.contains(7 * 60));
        assert_eq!(day.to_string(), "08:00-17:30");
        assert_eq!(
            "8:05-9:00".parse::<TimeWindow>().unwrap().to_string(),
            "08:05-09:00"
        );
        for bad in [
            "",
            "08:00",
            "24:00-01:00",
            "08:60-09:00",
            "8-9",
            "08:0-09:00",
            "a:bc-d:ef",
        ] {
            assert!(bad.parse::<TimeWindow>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn day_sets() {
        let weekdays: DaySet = "Mon-Fri".parse().unwrap();
        assert!(weekdays.contains(Weekday::Fri) && !weekdays.contains(Weekday::Sat));
        assert_eq!(weekdays.to_string(), "Mon-Fri");
        assert_eq!("Sat,Sun".parse::<DaySet>().unwrap().to_string(), "Sat,Sun");
        assert_eq!("mon-sun".parse::<DaySet>().unwrap(), DaySet::ALL);
        assert_eq!(
            "Fri-Mon".parse::<DaySet>().unwrap().to_string(),
            "Mon,Fri-Sun"
        );
        assert_eq!(
            "Tuesday, thu".parse::<DaySet>().unwrap().to_string(),
            "Tue,Thu"
        );
        for bad in ["", "Mon-", "Funday", "Mon,,Tue"] {
            assert!(bad.parse::<DaySet>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn schedules() {
        let night = Schedule {
            times: "22:00-02:00".parse().unwrap(),
            repeat: Duration::from_secs(1800),
            days: "Mon-Fri".parse().unwrap(),
        };
        assert!(night.allows(Weekday::Fri, 23 * 60));
        // 01:00 on Saturday belongs to Friday night
        assert!(night.allows(Weekday::Sat, 60));
        assert!(!night.allows(Weekday::Sat, 23 * 60));
        assert!(!night.allows(Weekday::Mon, 60));
        assert!(Schedule::default().allows(Weekday::Sun, 0));
    }

    proptest! {
        #[test]
        fn duration_round_trips(secs in 0u64..10_000_000_000) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn window_round_trips(a in 0u16..1440, b in 0u16..1440) {
            let w = TimeWindow::new(a, b).unwrap();
            prop_assert_eq!(w.to_string().parse::<TimeWindow>().unwrap(), w);
        }

        #[test]
        fn day_set_round_trips(bits in 1u8..128) {
            let set = DaySet::of(WEEK.iter().copied().filter(|d| bits & (1 << d.index()) != 0)).unwrap();
            prop_assert_eq!(set.to_string().parse::<DaySet>().unwrap(), set);
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_duration(&s);
            let _ = s.parse::<TimeWindow>();
            let _ = s.parse::<DaySet>();
        }
    }
}
