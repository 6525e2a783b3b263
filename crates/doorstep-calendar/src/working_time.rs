//! Working-time arithmetic on UTC instants, reckoned in a district's time zone.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;

use crate::calendar::Calendar;
use crate::reckoned::Reckoned;

/// The most local days [`WorkingTime::working_seconds_between`] and
/// [`WorkingTime::advance_working_seconds`] walk: 200 000 days, some 547 years. Spans beyond it
/// are counted only over their first `MAX_SPAN_DAYS` local days, which keeps absurd inputs (e.g.
/// instants at chrono's limits) to a few tens of milliseconds.
pub const MAX_SPAN_DAYS: u32 = 200_000;

/// Working-time arithmetic on instants, in a district's time zone.
///
/// A local day runs from its [`start_of_day`](WorkingTime::start_of_day) to the start of the next
/// local day; it is a working day or not as the [`Calendar`] says.
#[derive(Debug, Clone, Copy)]
pub struct WorkingTime<'a> {
    calendar: &'a Calendar,
    tz: Tz,
}

impl<'a> WorkingTime<'a> {
    /// Working time per `calendar`, with local days in `tz`.
    pub fn new(calendar: &'a Calendar, tz: Tz) -> Self {
        Self { calendar, tz }
    }

    /// The calendar consulted.
    pub fn calendar(&self) -> &'a Calendar {
        self.calendar
    }

    /// The time zone of the local days.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The local date of `t`. At chrono's limits, where the local date is not representable, the
    /// nearest representable date.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        let utc = t.naive_utc();
        let offset = self.tz.offset_from_utc_datetime(&utc).fix();
        match utc.checked_add_offset(offset) {
            Some(local) => local.date(),
            None if offset.local_minus_utc() > 0 => NaiveDate::MAX,
            None => NaiveDate::MIN,
        }
    }

    /// The first instant of local `date`: local 00:00, or, where a time-zone change makes 00:00
    /// ambiguous, the earlier 00:00, or where it skips 00:00, the first instant the local date is
    /// `date` (or later, if the whole date is skipped). Saturates at chrono's limits.
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&date.and_time(NaiveTime::MIN)) {
            MappedLocalTime::Single(t) => t.with_timezone(&Utc),
            MappedLocalTime::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
            MappedLocalTime::None => self.search_start_of_day(date),
        }
    }

    /// The earliest whole second whose local date is `date` or later, by bisection over the
    /// 60 hours around `date` 00:00 UTC (UTC offsets stay well within ±30 hours).
    fn search_start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        let base = date.and_time(NaiveTime::MIN).and_utc().timestamp();
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        );
        let at = |secs: i64| {
            DateTime::from_timestamp(secs.clamp(min, max), 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        let mut lo = base.saturating_sub(30 * 3600).max(min);
        let mut hi = base.saturating_add(30 * 3600).min(max);
        if self.local_date(at(hi)) < date {
            return DateTime::<Utc>::MAX_UTC;
        }
        if self.local_date(at(lo)) >= date {
            return at(lo);
        }
        // Invariant: local_date(lo) < date <= local_date(hi).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.local_date(at(mid)) >= date {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        at(hi)
    }

    /// The end of local `date` (the start of the next local day), saturating at chrono's limit.
    fn end_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        date.succ_opt()
            .map_or(DateTime::<Utc>::MAX_UTC, |next| self.start_of_day(next))
    }

    /// The end (24:00 local, i.e. the start of the next local day) of the `n`-th working day after
    /// the local day of `t`; `n = 0` gives the end of that local day itself.
    ///
    /// Received Friday 17:00 with Monday a working day, 3 working days end Wednesday 24:00.
    /// `n` is clamped to [`MAX_WORKING_DAYS`](crate::MAX_WORKING_DAYS), as in
    /// [`Calendar::nth_working_day_after`].
    pub fn end_of_nth_working_day_after(
        &self,
        t: DateTime<Utc>,
        n: u32,
    ) -> Reckoned<DateTime<Utc>> {
        self.calendar
            .nth_working_day_after(self.local_date(t), n)
            .map(|last| self.end_of_day(last))
    }

    /// Seconds of `[a, b)` that fall on local working days (0 if `b <= a`), truncated to whole
    /// seconds. Counts at most [`MAX_SPAN_DAYS`] local days from the local day of `a`.
    pub fn working_seconds_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Reckoned<i64> {
        let mut fallback_years = BTreeSet::new();
        let mut total = TimeDelta::zero();
        if b > a {
            let mut date = self.local_date(a);
            let mut cursor = a;
            for _ in 0..MAX_SPAN_DAYS {
                let end = self.end_of_day(date).min(b);
                if end > cursor {
                    let (working, fallback) = self.calendar.judge(date);
                    if fallback {
                        fallback_years.insert(date.year());
                    }
                    if working {
                        total = total.checked_add(&(end - cursor)).unwrap_or(TimeDelta::MAX);
                    }
                    cursor = end;
                }
                if cursor >= b {
                    break;
                }
                let Some(next) = date.succ_opt() else {
                    break;
                };
                date = next;
            }
        }
        Reckoned {
            value: total.num_seconds(),
            fallback_years,
        }
    }

    /// The earliest instant `r >= t` with `working_seconds_between(t, r) == secs` (a negative
    /// `secs` counts as 0, giving `t`): `t` moved forward by `secs` of working-day time, skipping
    /// off days. Paused Friday 17:00 → Monday 09:00 over a plain weekend is 16 working-day hours;
    /// the deadline moves 16 working-day hours later.
    ///
    /// Walks at most [`MAX_SPAN_DAYS`] local days; if `secs` is not used up by then, the end of
    /// the last day walked is returned (and at chrono's limit, the last representable instant).
    pub fn advance_working_seconds(&self, t: DateTime<Utc>, secs: i64) -> Reckoned<DateTime<Utc>> {
        let mut fallback_years = BTreeSet::new();
        if secs <= 0 {
            return Reckoned::exact(t);
        }
        let mut remaining = TimeDelta::try_seconds(secs).unwrap_or(TimeDelta::MAX);
        let mut date = self.local_date(t);
        let mut cursor = t;
        for _ in 0..MAX_SPAN_DAYS {
            let end = self.end_of_day(date);
            if end > cursor {
                let (working, fallback) = self.calendar.judge(date);
                if fallback {
                    fallback_years.insert(date.year());
                }
                if working {
                    let available = end - cursor;
                    if remaining <= available {
                        let value = cursor.checked_add_signed(remaining).unwrap_or(end);
                        return Reckoned {
                            value,
                            fallback_years,
                        };
                    }
                    remaining -= available;
                }
                cursor = end;
            }
            let Some(next) = date.succ_opt() else {
                break;
            };
            date = next;
        }
        Reckoned {
            value: cursor,
            fallback_years,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_do_not_panic() {
        let cal = Calendar::official();
        for tz in [
            chrono_tz::Asia::Shanghai,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::Etc::GMTPlus12,
            chrono_tz::America::New_York,
        ] {
            let wt = WorkingTime::new(&cal, tz);
            for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                let _ = wt.local_date(t);
                let _ = wt.end_of_nth_working_day_after(t, u32::MAX);
                let _ = wt.advance_working_seconds(t, i64::MAX);
                let _ = wt.working_seconds_between(t, DateTime::<Utc>::MAX_UTC);
                let _ = wt.working_seconds_between(DateTime::<Utc>::MIN_UTC, t);
            }
            for d in [NaiveDate::MIN, NaiveDate::MAX] {
                let _ = wt.start_of_day(d);
                let _ = wt.end_of_day(d);
                let _ = cal.nth_working_day_after(d, u32::MAX);
            }
        }
    }

    #[test]
    fn n_is_clamped() {
        let cal = Calendar::default();
        let d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert_eq!(
            cal.nth_working_day_after(d, u32::MAX),
            cal.nth_working_day_after(d, crate::MAX_WORKING_DAYS)
        );
    }

    #[test]
    fn midnight_gap_starts_the_day_at_the_transition() {
        // America/Sao_Paulo skipped 00:00–01:00 on 2018-11-04.
        let cal = Calendar::default();
        let wt = WorkingTime::new(&cal, chrono_tz::America::Sao_Paulo);
        let d = NaiveDate::from_ymd_opt(2018, 11, 4).unwrap();
        let start = wt.start_of_day(d);
        assert_eq!(
            start,
            "2018-11-04T03:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(wt.local_date(start), d);
        assert!(wt.local_date(start - TimeDelta::seconds(1)) < d);
    }

    #[test]
    fn a_skipped_date_is_an_empty_day() {
        // Pacific/Apia skipped 2011-12-30 entirely.
        let cal = Calendar::default();
        let wt = WorkingTime::new(&cal, chrono_tz::Pacific::Apia);
        let skipped = NaiveDate::from_ymd_opt(2011, 12, 30).unwrap();
        assert_eq!(
            wt.start_of_day(skipped),
            wt.start_of_day(skipped.succ_opt().unwrap())
        );
    }
}
