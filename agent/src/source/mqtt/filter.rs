//! MQTT topic filters (MQTT 3.1.1 section 4.7): validation and matching of topic names.
//!
//! `+` matches exactly one level (possibly empty), `#` (last level only) matches the parent
//! level and any number of levels below; filters starting with a wildcard do not match topics
//! starting with `$` (`$SYS/…`). Shared subscriptions (`$share/…`) are not supported.

use std::fmt;

/// Longest topic filter, in bytes (the MQTT string limit).
const MAX_FILTER_BYTES: usize = 65_535;

/// A validated MQTT topic filter such as `city/+/air` or `application/#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicFilter(String);

impl TopicFilter {
    /// Validates `filter`: non-empty, no NUL, `+` and `#` only as whole levels, `#` last.
    pub fn new(filter: impl Into<String>) -> Result<Self, String> {
        let filter = filter.into();
        if filter.is_empty() {
            return Err("must not be empty".into());
        }
        if filter.len() > MAX_FILTER_BYTES {
            return Err(format!("must be at most {MAX_FILTER_BYTES} bytes"));
        }
        if filter.contains('\0') {
            return Err("must not contain NUL".into());
        }
        if filter.starts_with("$share/") {
            return Err("shared subscriptions ($share/…) are not supported".into());
        }
        let levels: Vec<&str> = filter.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
                return Err("`#` must be a whole level and the last one".into());
            }
            if level.contains('+') && *level != "+" {
                return Err("`+` must be a whole level".into());
            }
        }
        Ok(Self(filter))
    }

    /// The filter as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The filter's levels.
    pub fn levels(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether the topic name `topic` matches this filter.
    pub fn matches(&self, topic: &str) -> bool {
        if topic.starts_with('$') && self.0.starts_with(['+', '#']) {
            return false;
        }
        let mut topic_levels = topic.split('/');
        for level in self.0.split('/') {
            match level {
                "#" => return true,
                "+" => {
                    if topic_levels.next().is_none() {
                        return false;
                    }
                }
                literal => {
                    if topic_levels.next() != Some(literal) {
                        return false;
                    }
                }
            }
        }
        topic_levels.next().is_none()
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn matches(filter: &str, topic: &str) -> bool {
        TopicFilter::new(filter).unwrap().matches(topic)
    }

    #[test]
    fn validation() {
        for good in [
            "a", "a/b", "+", "#", "a/+/c", "a/#", "+/+", "/", "a//b", "$SYS/#",
        ] {
            assert!(TopicFilter::new(good).is_ok(), "{good} rejected");
        }
        for bad in [
            "",
            "a#",
            "a/#/b",
            "a/b#",
            "#/a",
            "a+",
            "a/+b/c",
            "a\0b",
            "$share/g/a",
        ] {
            assert!(TopicFilter::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn matching_follows_mqtt_3_1_1() {
        // Examples from MQTT 3.1.1 section 4.7.
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(!matches("#", "$SYS/broker/load"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        // Literals, case and empty levels.
        assert!(matches("city/+/air", "city/station-1/air"));
        assert!(!matches("city/+/air", "city/station-1/noise"));
        assert!(!matches("city/+/air", "City/station-1/air"));
        assert!(matches("a/+/b", "a//b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(matches("#", "anything/at/all"));
    }
}
