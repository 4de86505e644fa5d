//! Text going into the page: HTML escaping (service names, URLs and annotations come from
//! the network) and the number and time formats people read.

use std::fmt;

/// Text escaped for HTML element content and quoted attribute values (`&`, `<`, `>`, `"`,
/// `'`), written through `Display`.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

/// `text`, escaped for HTML.
pub fn esc(text: &str) -> Escaped<'_> {
    Escaped(text)
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// `text` cut to `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A duration for people: `0.42 ms`, `12.3 ms`, `123 ms`, `12.3 s`.
pub fn millis(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// A time window's length for people: `45 s`, `5 min`, `1 h 30 min`.
pub fn span(secs: f64) -> String {
    // Rounded to whole seconds; windows are far below 2^63 s.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = secs.max(0.0).round() as u64;
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// An optional duration (`–` when unknown).
pub fn opt_millis(ms: Option<f64>) -> String {
    ms.map_or_else(|| "–".to_owned(), millis)
}

/// A fraction as a percentage: `0%`, `0.5%`, `12%`.
pub fn percent(fraction: f64) -> String {
    let pct = fraction * 100.0;
    if pct == 0.0 {
        "0%".to_owned()
    } else if pct < 10.0 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.0}%")
    }
}

/// Epoch seconds as UTC `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn utc(epoch_secs: f64) -> String {
    let (date, clock) = utc_parts(epoch_secs);
    format!("{date} {clock}")
}

/// Epoch seconds as UTC `HH:MM:SS.mmm`.
pub fn utc_clock(epoch_secs: f64) -> String {
    utc_parts(epoch_secs).1
}

fn utc_parts(epoch_secs: f64) -> (String, String) {
    if !epoch_secs.is_finite() || epoch_secs < 0.0 {
        return ("????-??-??".to_owned(), "??:??:??".to_owned());
    }
    // Finite, non-negative, below 2^63 ms for any real timestamp.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total_ms = (epoch_secs * 1000.0).round() as u64;
    let (secs, ms) = (total_ms / 1000, total_ms % 1000);
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}.{ms:03}",
            day_secs / 3600,
            day_secs / 60 % 60,
            day_secs % 60
        ),
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#).to_string(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(
            esc("reviews-v2 → ratings").to_string(),
            "reviews-v2 → ratings"
        );
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(millis(0.4234), "0.42 ms");
        assert_eq!(millis(24.04), "24.0 ms");
        assert_eq!(millis(1234.0), "1234 ms");
        assert_eq!(millis(12_345.0), "12.3 s");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.05), "5.0%");
        assert_eq!(percent(0.5), "50%");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(span(300.0), "5 min");
        assert_eq!(span(45.2), "45 s");
        assert_eq!(span(5400.0), "1 h 30 min");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00.000");
        // 2026-12-01 11:07:25.5 UTC
        assert_eq!(utc(1_796_123_245.5), "2026-12-01 11:07:25.500");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00.000");
        assert_eq!(utc_clock(1_796_123_245.5), "11:07:25.500");
    }
}
