//! Times on the command line and in exports: Unix seconds or RFC 3339 in
//! UTC (`2026-12-06T17:21:00Z`, `2026-12-06`), no time-zone database.

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Unix seconds from `1765000000`, `2026-12-06`, `2026-12-06T17:21:00Z`,
/// `2026-12-06T17:21:00.5+01:00` or `now`.
pub fn parse(s: &str) -> Result<f64, String> {
    let bad =
        || format!("{s:?} is not a time: give Unix seconds or RFC 3339 like 2026-12-06T17:21:00Z");
    if s == "now" {
        return Ok(now());
    }
    if let Ok(v) = s.parse::<f64>() {
        return v.is_finite().then_some(v).ok_or_else(bad);
    }
    let (date, rest) = s.split_at(s.find(['T', ' ']).unwrap_or(s.len()));
    let ymd: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, d] = ymd[..] else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) as f64 * 86_400.0;
    let rest = rest.get(1..).unwrap_or("");
    if rest.is_empty() {
        return Ok(secs);
    }
    // The offset: Z, +HH:MM or -HH:MM after the clock time.
    let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let hms: Vec<f64> = clock
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (h, mi, se) = match hms[..] {
        [h, m] => (h, m, 0.0),
        [h, m, s] => (h, m, s),
        _ => return Err(bad()),
    };
    if !(0.0..24.0).contains(&h) || !(0.0..60.0).contains(&mi) || !(0.0..61.0).contains(&se) {
        return Err(bad());
    }
    secs += h * 3600.0 + mi * 60.0 + se;
    if let Some(sign) = offset.chars().next().filter(|c| *c == '+' || *c == '-') {
        let hm: Vec<f64> = offset[1..]
            .split(':')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let off = match hm[..] {
            [h, m] => h * 3600.0 + m * 60.0,
            _ => return Err(bad()),
        };
        secs -= if sign == '+' { off } else { -off };
    }
    Ok(secs)
}

/// `2026-12-06T17:21:00Z` (to the second; fractions are dropped).
pub fn rfc3339(t: f64) -> String {
    let s = t.floor() as i64;
    let (days, sod) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Now, Unix seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_print() {
        assert_eq!(parse("0"), Ok(0.0));
        assert_eq!(parse("1970-01-02"), Ok(86_400.0));
        let t = parse("2026-12-06T17:21:05Z").expect("a time");
        assert_eq!(rfc3339(t), "2026-12-06T17:21:05Z");
        assert_eq!(parse("2026-12-06T18:21:05+01:00"), Ok(t));
        assert_eq!(
            parse("2000-02-29T00:00:00Z").map(rfc3339).as_deref(),
            Ok("2000-02-29T00:00:00Z")
        );
        for bad in ["yesterday", "2026-13-01", "2026-12-06T25:00:00Z", "nan"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
