//! Properties of deadlines and working-time sums over 2024-01-01..2027-06-30 in Asia/Shanghai.

use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, Utc};
use doorstep_calendar::{Calendar, Tz, WorkingTime};
use proptest::prelude::*;

/// 2024-01-01T00:00:00+08:00 and 2027-06-30T00:00:00+08:00 as Unix seconds.
const FROM: i64 = 1_704_038_400;
const UNTIL: i64 = 1_719_676_800 + 3 * 365 * 86_400; // 2024-06-30 plus three 365-day years

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (FROM..UNTIL, 0u32..1_000_000_000).prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn deadline_is_the_end_of_the_nth_working_day(t in instant(), n in 0u32..30) {
        let cal = Calendar::official();
        let wt = WorkingTime::new(&cal, Tz::Asia__Shanghai);
        let deadline = wt.end_of_nth_working_day_after(t, n);
        prop_assert!(deadline.value >= t);
        let local = deadline.value.with_timezone(&Tz::Asia__Shanghai);
        prop_assert_eq!(local.time(), NaiveTime::MIN);
        let start_day = wt.local_date(t);
        let end_day = local.date_naive();
        let mut working = 0;
        let mut d = start_day.succ_opt().unwrap();
        while d < end_day {
            working += u32::from(cal.is_working_day(d));
            d = d.succ_opt().unwrap();
        }
        prop_assert_eq!(working, n);
        // The last day counted is itself a working day (unless n = 0).
        let last = end_day.pred_opt().unwrap();
        if n > 0 {
            prop_assert!(cal.is_working_day(last));
        }
        // Fallback is reported exactly when a day beyond the loaded notices was consulted.
        prop_assert_eq!(deadline.used_fallback(), n > 0 && last.year() >= 2027);
    }

    #[test]
    fn deadline_is_monotonic_in_the_start(a in instant(), b in instant(), n in 0u32..30) {
        let cal = Calendar::official();
        let wt = WorkingTime::new(&cal, Tz::Asia__Shanghai);
        let (t1, t2) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(
            wt.end_of_nth_working_day_after(t1, n).value
                <= wt.end_of_nth_working_day_after(t2, n).value
        );
    }

    #[test]
    fn advance_inverts_working_seconds(t in instant(), s1 in 0i64..40 * 86_400, s2 in 0i64..40 * 86_400) {
        let cal = Calendar::official();
        let wt = WorkingTime::new(&cal, Tz::Asia__Shanghai);
        let r1 = wt.advance_working_seconds(t, s1).value;
        let r2 = wt.advance_working_seconds(t, s2).value;
        prop_assert!(r1 >= t);
        prop_assert_eq!(wt.working_seconds_between(t, r1).value, s1);
        prop_assert_eq!(wt.working_seconds_between(t, r2).value, s2);
        prop_assert_eq!(s1 <= s2, r1 <= r2);
        // Earliest: one second less of wall time is not enough.
        if s1 > 0 {
            prop_assert!(wt.working_seconds_between(t, r1 - TimeDelta::seconds(1)).value < s1);
        }
    }

    #[test]
    fn working_seconds_add_up(a in instant(), b in instant(), c in instant()) {
        let cal = Calendar::official();
        let wt = WorkingTime::new(&cal, Tz::Asia__Shanghai);
        let mut v = [a, b, c];
        v.sort();
        let [a, b, c] = v;
        let ab = wt.working_seconds_between(a, b).value;
        let bc = wt.working_seconds_between(b, c).value;
        let ac = wt.working_seconds_between(a, c).value;
        // Truncation to whole seconds can lose at most one second per split.
        prop_assert!(ac - (ab + bc) >= 0 && ac - (ab + bc) <= 1);
        prop_assert!(ac <= (c - a).num_seconds() + 1);
    }
}

/// 2017-01-01T00:00:00Z .. 2020-01-01T00:00:00Z: São Paulo still skipped or repeated local
/// midnight for daylight saving then.
fn instant_2017_2019() -> impl Strategy<Value = DateTime<Utc>> {
    (1_483_228_800i64..1_577_836_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn midnight_daylight_saving_keeps_days_consistent(
        t in instant_2017_2019(),
        n in 0u32..30,
        s in 0i64..40 * 86_400,
        tz in prop::sample::select(vec![Tz::America__Sao_Paulo, Tz::America__New_York, Tz::Europe__London]),
    ) {
        let cal = Calendar::default();
        let wt = WorkingTime::new(&cal, tz);
        let deadline = wt.end_of_nth_working_day_after(t, n).value;
        let last = cal.nth_working_day_after(wt.local_date(t), n).value;
        // The deadline is the first instant of the day after the last working day.
        prop_assert_eq!(wt.local_date(deadline), last.succ_opt().unwrap());
        prop_assert_eq!(wt.local_date(deadline - TimeDelta::seconds(1)), last);
        let r = wt.advance_working_seconds(t, s);
        prop_assert_eq!(wt.working_seconds_between(t, r.value).value, s);
        prop_assert_eq!(r.fallback_years.is_empty(), s == 0);
    }
}
