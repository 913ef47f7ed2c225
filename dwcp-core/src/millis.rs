//! Serde for a [`Duration`] as whole milliseconds, for configuration fields named
//! `..._ms`: `#[serde(rename = "tick_ms", with = "dwcp_core::millis")]`.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Writes `d` as milliseconds (saturating at `u64::MAX`).
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads milliseconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(rename = "wait_ms", with = "super")]
        wait: Duration,
    }

    #[test]
    fn round_trips_as_whole_milliseconds() {
        let t = T {
            wait: Duration::from_millis(250),
        };
        let json = serde_json::to_string(&t).expect("encodes");
        assert_eq!(json, r#"{"wait_ms":250}"#);
        assert_eq!(serde_json::from_str::<T>(&json).expect("decodes"), t);
    }
}
