//! The time values of the directory (`time.rs`): durations (`1h30m`),
//! daily windows (`HH:MM-HH:MM`), day sets (`Mon-Fri,Sun`) and the
//! schedules they make, on arbitrary text.
//!
//! Input: one byte choosing the parser, then the text; for a schedule the
//! text is `times|days|repeat`.
//!
//! Checked: no panic; what parses prints in a form that parses back to the
//! same value; a window holds its ends; a schedule allows exactly the
//! minutes of its window on its days, a window that wraps midnight
//! belonging to the day it starts on.

#![no_main]

use std::time::Duration;

use directory::{DaySet, Schedule, TimeWindow, Weekday, format_duration, parse_duration};
use libfuzzer_sys::fuzz_target;

fn duration(text: &str) -> Option<Duration> {
    let d = parse_duration(text).ok()?;
    let shown = format_duration(d);
    let again = parse_duration(&shown)
        .unwrap_or_else(|e| panic!("{text:?} printed as {shown:?}, which fails: {e}"));
    assert_eq!(again, d, "{text:?} printed as {shown:?}");
    Some(d)
}

fn window(text: &str) -> Option<TimeWindow> {
    let w: TimeWindow = text.parse().ok()?;
    let shown = w.to_string();
    assert_eq!(
        shown.parse::<TimeWindow>().ok(),
        Some(w),
        "{text:?} printed as {shown:?}"
    );
    assert!(w.start_minute() < 1440 && w.end_minute() < 1440);
    assert!(w.contains(w.start_minute()) && w.contains(w.end_minute()));
    Some(w)
}

fn days(text: &str) -> Option<DaySet> {
    let d: DaySet = text.parse().ok()?;
    let shown = d.to_string();
    assert_eq!(
        shown.parse::<DaySet>().ok(),
        Some(d),
        "{text:?} printed as {shown:?}"
    );
    Some(d)
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

fn schedule(text: &str) {
    let mut parts = text.splitn(3, '|');
    let (Some(times), Some(on), Some(repeat)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Some(times), Some(on), Some(repeat)) = (window(times), days(on), duration(repeat)) else {
        return;
    };
    let schedule = Schedule {
        times,
        repeat,
        days: on,
    };
    let (start, end) = (times.start_minute(), times.end_minute());
    for (i, &day) in WEEK.iter().enumerate() {
        let yesterday = WEEK[(i + 6) % 7];
        for minute in 0..1440 {
            let expected = if start <= end {
                (start..=end).contains(&minute) && on.contains(day)
            } else if minute >= start {
                on.contains(day)
            } else if minute <= end {
                on.contains(yesterday)
            } else {
                false
            };
            assert_eq!(
                schedule.allows(day, minute),
                expected,
                "{text:?} on {day} at minute {minute}"
            );
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let [which, text @ ..] = input else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    match which % 4 {
        0 => drop(duration(&text)),
        1 => drop(window(&text)),
        2 => drop(days(&text)),
        _ => schedule(&text),
    }
});
