//! Pure calendar helpers on i64 microseconds since the Unix epoch, UTC.
//!
//! No clock is read here: every instant is an argument. Civil dates use
//! Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms
//! (proleptic Gregorian calendar, day 0 = 1970-01-01). The functions are
//! total: arithmetic saturates at the ends of i64 instead of wrapping or
//! panicking, and decisions validate their times to `BUSINESS_TIME_US_MAX`
//! first, so saturation never shows in practice.

/// Microseconds per day: UTC days have no leap seconds in this ledger.
pub const US_PER_DAY: i64 = 86_400_000_000;

/// Days in a 400-year Gregorian era.
const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01 to 1970-01-01: shifts Hinnant's March-based epoch.
const DAYS_0000_03_01_TO_EPOCH: i64 = 719_468;

/// A civil (proleptic Gregorian) date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDate {
    /// Year, astronomical numbering (year 0 exists).
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of month, 1..=31.
    pub day: u32,
}

/// The day number (days since 1970-01-01) containing instant `us`; instants
/// before the epoch round down to the earlier day.
pub fn day_of(us: i64) -> i64 {
    us.div_euclid(US_PER_DAY)
}

/// The reporting day containing instant `us` for a program whose days begin
/// at `utc_offset_minutes` from UTC: days since 1970-01-01 in that offset.
pub fn report_day_of(us: i64, utc_offset_minutes: i32) -> i64 {
    day_of(us.saturating_add(i64::from(utc_offset_minutes).saturating_mul(60_000_000)))
}

/// The first instant (UTC µs) of reporting day `day` at `utc_offset_minutes`.
pub fn start_of_report_day_us(day: i64, utc_offset_minutes: i32) -> i64 {
    start_of_day_us(day).saturating_sub(i64::from(utc_offset_minutes).saturating_mul(60_000_000))
}

/// The first microsecond of day number `day`.
pub fn start_of_day_us(day: i64) -> i64 {
    day.saturating_mul(US_PER_DAY)
}

/// `us` plus whole days.
pub fn add_days_us(us: i64, days: i64) -> i64 {
    us.saturating_add(days.saturating_mul(US_PER_DAY))
}

/// Hinnant's `days_from_civil`: the day number of a civil date. The month is
/// taken modulo its valid range by the caller (only valid dates are passed).
pub fn days_from_civil(date: CivilDate) -> i64 {
    let month = i64::from(date.month);
    let day = i64::from(date.day);
    // Years start in March so that the leap day is the last day of a year.
    let year = if month <= 2 {
        date.year.saturating_sub(1)
    } else {
        date.year
    };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400; // [0, 399]
    let month_from_march = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1; // [0, 365]
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era.saturating_mul(DAYS_PER_ERA)
        .saturating_add(day_of_era)
        .saturating_sub(DAYS_0000_03_01_TO_EPOCH)
}

/// The day number of an ISO 8601 calendar date `YYYY-MM-DD` (years
/// 1970..=9999); `None` when it is not one, or names a day that does not
/// exist (2026-02-30).
pub fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if bytes.len() != 10 || bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let date = CivilDate {
        year: i64::from(digits(0..4)?),
        month: digits(5..7)?,
        day: digits(8..10)?,
    };
    if date.year < 1970 || !(1..=12).contains(&date.month) || !(1..=31).contains(&date.day) {
        return None;
    }
    let day = days_from_civil(date);
    (civil_from_days(day) == date).then_some(day)
}

/// A day number as `YYYY-MM-DD`.
pub fn format_date(day: i64) -> String {
    let date = civil_from_days(day);
    format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
}

/// Hinnant's `civil_from_days`: the civil date of a day number.
pub fn civil_from_days(day: i64) -> CivilDate {
    let shifted = day.saturating_add(DAYS_0000_03_01_TO_EPOCH);
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted - era * DAYS_PER_ERA; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day_of_month = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era.saturating_mul(400).saturating_add(year_of_era);
    CivilDate {
        year: if month <= 2 {
            year.saturating_add(1)
        } else {
            year
        },
        // Both are in small ranges shown above, so the casts are exact.
        month: month as u32,
        day: day_of_month as u32,
    }
}

/// The civil date containing instant `us`.
pub fn civil_of(us: i64) -> CivilDate {
    civil_from_days(day_of(us))
}

/// The first microsecond of the month that follows the `months`-th month
/// after the month containing `us`: the instant a lot earned at `us` expires
/// under "end of the Nth month after the month earned". With `months = 6`,
/// anything earned in March expires when September ends (October 1, 00:00).
pub fn end_of_month_after_us(us: i64, months: u32) -> i64 {
    let date = civil_of(us);
    // Month index counted from year 0, then moved forward; +1 for "end of".
    let index = date
        .year
        .saturating_mul(12)
        .saturating_add(i64::from(date.month) - 1)
        .saturating_add(i64::from(months))
        .saturating_add(1);
    let start = CivilDate {
        year: index.div_euclid(12),
        month: (index.rem_euclid(12) + 1) as u32,
        day: 1,
    };
    start_of_day_us(days_from_civil(start))
}

/// The first microsecond of the calendar year containing `us`.
pub fn start_of_year_us(us: i64) -> i64 {
    let year = civil_of(us).year;
    start_of_day_us(days_from_civil(CivilDate {
        year,
        month: 1,
        day: 1,
    }))
}

/// The first microsecond of the calendar year after the one containing `us`.
pub fn start_of_next_year_us(us: i64) -> i64 {
    let year = civil_of(us).year.saturating_add(1);
    start_of_day_us(days_from_civil(CivilDate {
        year,
        month: 1,
        day: 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i64, month: u32, day: u32) -> CivilDate {
        CivilDate { year, month, day }
    }

    #[test]
    fn dates_parse_strictly_and_format_back() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(format_date(19_782), "2024-02-29");
        for bad in [
            "",
            "2024-2-29",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "1969-12-31",
            "2024/02/29",
            "+024-02-29",
            "2024-02-29T",
            "２０２４-02-29",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
        for day in [0, 10_000, 20_000, 2_932_896] {
            assert_eq!(parse_date(&format_date(day)), Some(day));
        }
    }

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(days_from_civil(date(1970, 1, 1)), 0);
        assert_eq!(days_from_civil(date(2000, 3, 1)), 11_017);
        assert_eq!(days_from_civil(date(1969, 12, 31)), -1);
        assert_eq!(civil_from_days(19_723), date(2024, 1, 1));
        assert_eq!(civil_from_days(19_782), date(2024, 2, 29));
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn round_trip_over_a_wide_range() {
        let mut expected = date(1600, 1, 1);
        let mut day = days_from_civil(expected);
        let end = days_from_civil(date(2500, 1, 1));
        while day < end {
            let got = civil_from_days(day);
            assert_eq!(got, expected, "day {day}");
            assert_eq!(days_from_civil(got), day);
            // Step the expected date by brute force.
            let leap =
                (expected.year % 4 == 0 && expected.year % 100 != 0) || expected.year % 400 == 0;
            let month_days = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            expected.day += 1;
            if expected.day > month_days[(expected.month - 1) as usize] {
                expected.day = 1;
                expected.month += 1;
                if expected.month > 12 {
                    expected.month = 1;
                    expected.year += 1;
                }
            }
            day += 1;
        }
    }

    #[test]
    fn end_of_month_after() {
        let march_15 = start_of_day_us(days_from_civil(date(2024, 3, 15))) + 3_600_000_000;
        let october_1 = start_of_day_us(days_from_civil(date(2024, 10, 1)));
        assert_eq!(end_of_month_after_us(march_15, 6), october_1);
        let end_of_march = start_of_day_us(days_from_civil(date(2024, 4, 1)));
        assert_eq!(end_of_month_after_us(march_15, 0), end_of_march);
        let december = start_of_day_us(days_from_civil(date(2024, 12, 31)));
        let end_of_june_2025 = start_of_day_us(days_from_civil(date(2025, 7, 1)));
        assert_eq!(end_of_month_after_us(december, 6), end_of_june_2025);
    }

    #[test]
    fn year_boundaries() {
        let mid_2024 = start_of_day_us(days_from_civil(date(2024, 7, 4)));
        assert_eq!(
            start_of_year_us(mid_2024),
            start_of_day_us(days_from_civil(date(2024, 1, 1)))
        );
        assert_eq!(
            start_of_next_year_us(mid_2024),
            start_of_day_us(days_from_civil(date(2025, 1, 1)))
        );
        let new_year = start_of_day_us(days_from_civil(date(2025, 1, 1)));
        assert_eq!(start_of_year_us(new_year), new_year);
        assert_eq!(start_of_next_year_us(new_year - 1), new_year);
    }

    #[test]
    fn total_at_the_extremes() {
        for us in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let _ = end_of_month_after_us(us, u32::MAX); // must not panic
            let _ = start_of_next_year_us(us);
            let _ = add_days_us(us, i64::MAX);
        }
    }
}
