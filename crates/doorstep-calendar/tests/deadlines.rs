//! Deadlines and working-time sums in Asia/Shanghai across holiday blocks and year ends.

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset, Utc};
use doorstep_calendar::{Calendar, Reckoned, Tz, WorkingTime};

/// An instant written with its Beijing offset, e.g. "2026-09-30T10:00:00+08:00".
fn at(s: &str) -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&Utc)
}

fn years(ys: &[i32]) -> BTreeSet<i32> {
    ys.iter().copied().collect()
}

fn deadline(from: &str, n: u32) -> Reckoned<DateTime<Utc>> {
    let cal = Calendar::official();
    WorkingTime::new(&cal, Tz::Asia__Shanghai).end_of_nth_working_day_after(at(from), n)
}

#[test]
fn deadlines_across_holiday_blocks_and_year_ends() {
    // (from, working days, deadline, fallback years)
    let cases: &[(&str, u32, &str, &[i32])] = &[
        // National Day: Oct 8, Oct 9, then Saturday Oct 10 (adjusted working day).
        (
            "2026-09-30T10:00:00+08:00",
            3,
            "2026-10-11T00:00:00+08:00",
            &[],
        ),
        // LADDER: received Friday 17:00, Monday working: 3 working days end Wednesday 24:00.
        (
            "2026-03-13T17:00:00+08:00",
            3,
            "2026-03-19T00:00:00+08:00",
            &[],
        ),
        // n = 0 is the end of the day of receipt.
        (
            "2026-03-13T17:00:00+08:00",
            0,
            "2026-03-14T00:00:00+08:00",
            &[],
        ),
        // 2026 元旦 is Jan 1–3; Sunday Jan 4 is an adjusted working day.
        (
            "2025-12-31T15:00:00+08:00",
            1,
            "2026-01-05T00:00:00+08:00",
            &[],
        ),
        (
            "2025-12-31T15:00:00+08:00",
            3,
            "2026-01-07T00:00:00+08:00",
            &[],
        ),
        // Local midnight decides the day, not UTC: 2025-12-31T23:30+08:00 is still Dec 31.
        (
            "2025-12-31T23:30:00+08:00",
            1,
            "2026-01-05T00:00:00+08:00",
            &[],
        ),
        (
            "2026-01-01T00:00:00+08:00",
            1,
            "2026-01-05T00:00:00+08:00",
            &[],
        ),
        // 2024 into 2025: Jan 1 off; Jan 2, 3, 6, 7, 8.
        (
            "2024-12-31T09:00:00+08:00",
            5,
            "2025-01-09T00:00:00+08:00",
            &[],
        ),
        // 2025 春节: Sunday Jan 26 works, Jan 27, then Jan 28–Feb 4 off, Feb 5.
        (
            "2025-01-24T17:00:00+08:00",
            3,
            "2025-02-06T00:00:00+08:00",
            &[],
        ),
        // 2026 春节: Saturday Feb 14 works, Feb 15–23 off, Feb 24, 25.
        (
            "2026-02-13T12:00:00+08:00",
            3,
            "2026-02-26T00:00:00+08:00",
            &[],
        ),
        // 2026 劳动节 with the adjusted Saturday May 9.
        (
            "2026-04-30T08:00:00+08:00",
            4,
            "2026-05-10T00:00:00+08:00",
            &[],
        ),
        // Into 2027, which has no notice: fallback reported.
        (
            "2026-12-30T10:00:00+08:00",
            3,
            "2027-01-05T00:00:00+08:00",
            &[2027],
        ),
        (
            "2027-03-05T17:00:00+08:00",
            3,
            "2027-03-11T00:00:00+08:00",
            &[2027],
        ),
    ];
    for &(from, n, expected, fallback) in cases {
        let got = deadline(from, n);
        assert_eq!(got.value, at(expected), "{from} + {n}");
        assert_eq!(got.fallback_years, years(fallback), "{from} + {n}");
        assert_eq!(got.used_fallback(), !fallback.is_empty());
    }
}

#[test]
fn reckoned_helpers() {
    let mut r = deadline("2027-03-05T17:00:00+08:00", 3).map(|d| d.timestamp());
    assert_eq!(r.value, at("2027-03-11T00:00:00+08:00").timestamp());
    r.merge_years(&years(&[2028]));
    assert_eq!(r.fallback_years, years(&[2027, 2028]));
    assert!(!Reckoned::exact(1).used_fallback());
}

#[test]
fn calendar_days_after() {
    let cal = Calendar::official();
    let d = |s: &str| s.parse().unwrap();
    assert_eq!(
        cal.nth_working_day_after(d("2026-09-30"), 0),
        Reckoned::exact(d("2026-09-30"))
    );
    assert_eq!(
        cal.nth_working_day_after(d("2026-09-30"), 1),
        Reckoned::exact(d("2026-10-08"))
    );
    assert_eq!(
        cal.nth_working_day_after(d("2026-09-30"), 3),
        Reckoned::exact(d("2026-10-10"))
    );
}

const HOUR: i64 = 3600;

#[test]
fn paused_over_a_weekend_moves_the_deadline_by_working_time() {
    let cal = Calendar::official();
    let wt = WorkingTime::new(&cal, Tz::Asia__Shanghai);
    // LADDER: paused Friday 17:00 → Monday 09:00 over a plain weekend = 16 working-day hours.
    let paused = wt.working_seconds_between(
        at("2026-03-13T17:00:00+08:00"),
        at("2026-03-16T09:00:00+08:00"),
    );
    assert_eq!(paused, Reckoned::exact(16 * HOUR));
    // A deadline of Wednesday 24:00 moves 16 working-day hours later: Thursday 16:00.
    let moved = wt.advance_working_seconds(at("2026-03-19T00:00:00+08:00"), 16 * HOUR);
    assert_eq!(moved, Reckoned::exact(at("2026-03-19T16:00:00+08:00")));
    // And a deadline on Friday 20:00 moves over the weekend: 4 h Friday, 12 h Monday.
    let moved = wt.advance_working_seconds(at("2026-03-20T20:00:00+08:00"), 16 * HOUR);
    assert_eq!(moved.value, at("2026-03-23T12:00:00+08:00"));
}

#[test]
fn working_time_across_a_holiday_block() {
    let cal = Calendar::official();
    let wt = WorkingTime::new(&cal, Tz::Asia__Shanghai);
    // 4 h on Sep 30, Oct 1–7 off, 12 h on Oct 8.
    let moved = wt.advance_working_seconds(at("2026-09-30T20:00:00+08:00"), 16 * HOUR);
    assert_eq!(moved, Reckoned::exact(at("2026-10-08T12:00:00+08:00")));
    assert_eq!(
        wt.working_seconds_between(at("2026-09-30T20:00:00+08:00"), moved.value),
        Reckoned::exact(16 * HOUR)
    );
    // Whole block: only Sep 30 and Oct 8 count.
    assert_eq!(
        wt.working_seconds_between(
            at("2026-09-30T00:00:00+08:00"),
            at("2026-10-09T00:00:00+08:00")
        )
        .value,
        48 * HOUR
    );
    // Ending exactly at the end of a working day lands on that day's 24:00, not after the block.
    assert_eq!(
        wt.advance_working_seconds(at("2026-09-30T20:00:00+08:00"), 4 * HOUR)
            .value,
        at("2026-10-01T00:00:00+08:00")
    );
    // Starting inside the block counts from the first working day.
    assert_eq!(
        wt.advance_working_seconds(at("2026-10-03T11:00:00+08:00"), HOUR)
            .value,
        at("2026-10-08T01:00:00+08:00")
    );
    // The adjusted working Saturday Oct 10 counts.
    assert_eq!(
        wt.working_seconds_between(
            at("2026-10-10T00:00:00+08:00"),
            at("2026-10-12T00:00:00+08:00")
        )
        .value,
        24 * HOUR
    );
}

#[test]
fn working_time_over_whole_years_and_fallback() {
    let cal = Calendar::official();
    let wt = WorkingTime::new(&cal, Tz::Asia__Shanghai);
    let year = wt.working_seconds_between(
        at("2026-01-01T00:00:00+08:00"),
        at("2027-01-01T00:00:00+08:00"),
    );
    assert_eq!(year, Reckoned::exact(248 * 24 * HOUR));
    let into_2027 = wt.working_seconds_between(
        at("2026-12-31T12:00:00+08:00"),
        at("2027-01-02T12:00:00+08:00"),
    );
    assert_eq!(into_2027.value, 36 * HOUR);
    assert_eq!(into_2027.fallback_years, years(&[2027]));
    // Empty and reversed spans are zero and consult nothing.
    let t = at("2027-06-01T00:00:00+08:00");
    assert_eq!(wt.working_seconds_between(t, t), Reckoned::exact(0));
    assert_eq!(
        wt.working_seconds_between(t, at("2026-01-01T00:00:00+08:00")),
        Reckoned::exact(0)
    );
    assert_eq!(wt.advance_working_seconds(t, 0), Reckoned::exact(t));
    assert_eq!(wt.advance_working_seconds(t, -5), Reckoned::exact(t));
}

#[test]
fn local_days_follow_the_time_zone() {
    let cal = Calendar::official();
    let wt = WorkingTime::new(&cal, Tz::Asia__Shanghai);
    let t = at("2026-09-30T16:30:00Z"); // Oct 1, 00:30 in Beijing
    assert_eq!(wt.local_date(t), "2026-10-01".parse().unwrap());
    assert_eq!(
        wt.start_of_day("2026-10-01".parse().unwrap()),
        at("2026-10-01T00:00:00+08:00")
    );
    // The same calendar reckoned in UTC: still Sep 30, a working day.
    let utc = WorkingTime::new(&cal, Tz::UTC);
    assert_eq!(utc.local_date(t), "2026-09-30".parse().unwrap());
    assert_eq!(
        utc.end_of_nth_working_day_after(t, 1).value,
        at("2026-10-09T00:00:00Z")
    );
}
