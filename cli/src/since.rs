//! `--since 5m`: a look-back like `90s`, `5m`, `1h30m`, `2d`.

use std::time::Duration;

/// A look-back that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration; write a number and a unit, like 90s, 5m, 1h30m or 2d")]
pub struct SinceError {
    /// What was given.
    pub text: String,
}

/// Parses a look-back: one or more `<number><unit>` parts, units `s`, `m`, `h`, `d`.
///
/// # Errors
/// [`SinceError`] for anything else, and for zero.
pub fn parse_since(text: &str) -> Result<Duration, SinceError> {
    let fail = || SinceError {
        text: text.to_owned(),
    };
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(fail()),
        };
        let value: u64 = number.parse().map_err(|_| fail())?;
        number.clear();
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(fail)?;
    }
    if !number.is_empty() || total == 0 {
        return Err(fail());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units_and_combinations() {
        assert_eq!(parse_since("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_since("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_since("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_since("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "5", "m", "5x", "0m", "-5m", "5 m"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
