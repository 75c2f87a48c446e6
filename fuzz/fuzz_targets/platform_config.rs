//! Fuzzes the platform's config parser: TOML text → `PlatformConfig`, validation included
//! (`PlatformConfig::from_toml`, what `beffroi --config` runs, no IO).
//!
//! Properties: no panic; the same text always gives the same config (validation is pure);
//! a refusal is an error that says something, and names the field when a value is invalid.

#![no_main]

use beffroi::config::{ConfigError, PlatformConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PlatformConfig::from_toml(text) {
        Ok(config) => {
            let again = PlatformConfig::from_toml(text).expect("the same text validates again");
            assert_eq!(
                format!("{config:?}"),
                format!("{again:?}"),
                "validation is not pure"
            );
        }
        Err(ConfigError::Invalid { field, reason }) => {
            assert!(
                !field.is_empty() && !reason.is_empty(),
                "an unnamed refusal"
            );
        }
        Err(error) => assert!(!error.to_string().is_empty(), "an empty error message"),
    }
});
