//! When an outbound queue may be used (SPEC §5, Wait): the schedule and
//! `route_at_once_if` of the connection document a queue leaves by, and the
//! low-priority window. Pure: the clock is passed in, in local time, since
//! schedules are written in the administrator's time.
//!
//! Owns the answers "which connection document governs this queue" and
//! "when does it open next". Holds no queue state (that is `outbound`'s).

use chrono::{DateTime, Datelike, Duration as Span, Local, NaiveTime, TimeZone, Timelike};
use directory::{ConnectionType, Schedule, TimeWindow, Weekday};
use routing::Via;

use crate::snapshot::Snapshot;

/// The connection document a queue leaves by, when it has a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gate {
    pub schedule: Schedule,
    /// `route_at_once_if`: this many messages waiting open the queue at once.
    pub threshold: u32,
}

/// The gate of the queue `queue` leaving by `via`: for a next server on a
/// Notes named network shared with this one, none (such servers route at
/// once, as Domino's do); else the enabled connection document from this
/// server to it (native) or for its virtual domain (SMTP), if any.
pub(crate) fn gate_for(snap: &Snapshot, via: &Via, queue: &str) -> Option<Gate> {
    let this = &snap.server;
    let doc = match via {
        Via::Native(next) => {
            let next = snap.dir.server_by_str(next)?;
            if this.shares_network_with(next) {
                return None;
            }
            snap.dir.connections.iter().find(|c| {
                c.enabled
                    && c.kind == ConnectionType::Native
                    && c.source == this.name
                    && c.destination == next.name
            })?
        }
        Via::Smtp(_) => snap.dir.connections.iter().find(|c| {
            c.enabled
                && c.kind == ConnectionType::Smtp
                && c.source == this.name
                && c.destination_domain.eq_ignore_ascii_case(queue)
        })?,
    };
    Some(Gate {
        schedule: doc.schedule,
        threshold: doc.route_at_once_if.max(1),
    })
}

fn weekday(t: &DateTime<Local>) -> Weekday {
    Weekday::from_monday_index(t.weekday().num_days_from_monday()).unwrap_or(Weekday::Mon)
}

fn minute(t: &DateTime<Local>) -> u16 {
    u16::try_from(t.hour() * 60 + t.minute()).unwrap_or(0)
}

/// Local midnight of the day `days` after `now`'s.
fn midnight(now: &DateTime<Local>, days: i64) -> Option<DateTime<Local>> {
    let date = now.date_naive().checked_add_signed(Span::days(days))?;
    Local
        .from_local_datetime(&date.and_time(NaiveTime::MIN))
        .earliest()
}

/// The first scheduled connection time at or after `now`: the window's
/// start on an allowed day, then every `repeat` while the window lasts
/// (`repeat` zero: the start only). `None` if the schedule never opens.
pub(crate) fn next_slot(schedule: &Schedule, now: DateTime<Local>) -> Option<DateTime<Local>> {
    let w = schedule.times;
    let (start, end) = (i64::from(w.start_minute()), i64::from(w.end_minute()));
    let length = if end >= start {
        end - start
    } else {
        end + 24 * 60 - start
    };
    let repeat = i64::try_from(schedule.repeat.as_secs() / 60).unwrap_or(i64::MAX);
    // Yesterday's window may wrap into today.
    for day in -1..=8 {
        let Some(base) = midnight(&now, day) else {
            continue;
        };
        if !schedule.days.contains(weekday(&base)) {
            continue;
        }
        let mut offset = 0;
        loop {
            let slot = base + Span::minutes(start + offset);
            if slot >= now {
                return Some(slot);
            }
            if repeat == 0 {
                break;
            }
            offset += repeat;
            if offset > length {
                break;
            }
        }
    }
    None
}

/// Is `now` inside the window?
pub(crate) fn in_window(window: TimeWindow, now: &DateTime<Local>) -> bool {
    window.contains(minute(now))
}

/// How a Wait reads on `show queues`.
pub(crate) fn describe(gate: &Gate, waiting: usize) -> String {
    let s = &gate.schedule;
    format!(
        "schedule {} every {} on {}, or at once with {} messages ({} waiting)",
        s.times,
        directory::format_duration(s.repeat),
        s.days,
        gate.threshold,
        waiting
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Local> {
        Local
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .expect("a local time")
    }

    fn schedule(times: &str, repeat_min: u64, days: &str) -> Schedule {
        Schedule {
            times: times.parse().expect("times"),
            repeat: std::time::Duration::from_secs(repeat_min * 60),
            days: days.parse().expect("days"),
        }
    }

    #[test]
    fn slots_repeat_within_the_window() {
        // 2026-12-02 is a Wednesday.
        let s = schedule("08:00-17:00", 60, "Mon-Fri");
        assert_eq!(
            next_slot(&s, at(2026, 12, 2, 7, 30)),
            Some(at(2026, 12, 2, 8, 0))
        );
        assert_eq!(
            next_slot(&s, at(2026, 12, 2, 8, 0)),
            Some(at(2026, 12, 2, 8, 0))
        );
        assert_eq!(
            next_slot(&s, at(2026, 12, 2, 8, 10)),
            Some(at(2026, 12, 2, 9, 0))
        );
        assert_eq!(
            next_slot(&s, at(2026, 12, 2, 16, 30)),
            Some(at(2026, 12, 2, 17, 0))
        );
        assert_eq!(
            next_slot(&s, at(2026, 12, 2, 17, 30)),
            Some(at(2026, 12, 3, 8, 0))
        );
        // Friday evening: Monday morning.
        assert_eq!(
            next_slot(&s, at(2026, 12, 4, 18, 0)),
            Some(at(2026, 12, 7, 8, 0))
        );
    }

    #[test]
    fn no_repeat_means_the_start_only_and_wrapping_windows_work() {
        let s = schedule("22:00-02:00", 0, "Mon-Sun");
        assert_eq!(
            next_slot(&s, at(2026, 12, 2, 23, 0)),
            Some(at(2026, 12, 3, 22, 0))
        );
        let s = schedule("22:00-02:00", 120, "Mon-Sun");
        assert_eq!(
            next_slot(&s, at(2026, 12, 2, 23, 0)),
            Some(at(2026, 12, 3, 0, 0))
        );
        assert_eq!(
            next_slot(&s, at(2026, 12, 3, 1, 0)),
            Some(at(2026, 12, 3, 2, 0))
        );
    }

    #[test]
    fn the_low_priority_window() {
        let w: TimeWindow = "00:00-06:00".parse().expect("window");
        assert!(in_window(w, &at(2026, 12, 2, 3, 0)));
        assert!(!in_window(w, &at(2026, 12, 2, 9, 0)));
    }
}
