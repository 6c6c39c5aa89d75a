//! How every part of a spec reads its values: the one-line [`SpecError`]
//! that names the field, and durations (`250ms`, `30s`, `1.5s`, `2m`) read
//! with humantime into whole milliseconds. A bare number is refused: `30`
//! could mean seconds or milliseconds, and guessing wrong silently is
//! worse. The plan and each system's own fields use it alike.
use std::path::PathBuf;

/// Bad input: reported as one line, exit code 3, before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("spec {path}: {message}")]
    Parse { path: String, message: String },
    #[error("bad value for {field}: {message}")]
    Value { field: String, message: String },
    #[error("impossible combination: {0}")]
    Combination(String),
}

impl SpecError {
    pub fn value(field: &str, message: impl Into<String>) -> SpecError {
        SpecError::Value { field: field.to_string(), message: message.into() }
    }
}

/// The longest duration a spec may give, in milliseconds (about 31 years):
/// a bound against a typo, far above any real test.
const DURATION_MS_MAX: u64 = 1_000_000_000_000;

/// Parse a duration into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("{text:?} needs a unit (ms, s or m)"));
    }
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration like 500ms, 30s or 2m ({error})"))?;
    let ms = duration.as_millis();
    if ms > u128::from(DURATION_MS_MAX) {
        return Err(format!("{text:?} is too long"));
    }
    Ok(ms as u64)
}

/// `ms` for a person: `10s`, `1s 500ms`.
pub fn human_ms(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

pub fn duration(field: &str, text: &str) -> Result<u64, SpecError> {
    parse_duration_ms(text).map_err(|message| SpecError::value(field, message))
}

/// A duration that must be longer than zero.
pub fn positive_duration(field_name: &str, text: &str) -> Result<u64, SpecError> {
    let ms = duration(field_name, text)?;
    if ms == 0 {
        return Err(SpecError::value(field_name, "must be longer than 0"));
    }
    Ok(ms)
}

/// An optional duration that, when given, must be longer than zero.
pub fn optional_duration(field_name: &str, text: &Option<String>) -> Result<Option<u64>, SpecError> {
    text.as_deref().map(|text| positive_duration(field_name, text)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms(" 1s 500ms "), Ok(1_500));
        assert!(parse_duration_ms("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration_ms("3 parsecs").unwrap_err().contains("is not a duration"));
        assert!(parse_duration_ms("fast").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("100years").unwrap_err().contains("too long"));
        assert_eq!(human_ms(10_000), "10s");
        assert_eq!(human_ms(1_500), "1s 500ms");
    }
}
