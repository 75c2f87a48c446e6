//! Fuzzes the agent's config parser: TOML text → `beffroi_agent::Config`, validation of every
//! section and source included (`Config::from_toml`, what `beffroi-agent --config` runs, no IO).
//!
//! Properties: no panic; the same text always gives the same config (validation is pure);
//! a refusal is an error that says something.

#![no_main]

use std::path::Path;

use beffroi_agent::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/etc/beffroi-agent");
    match Config::from_toml(text, base) {
        Ok(config) => {
            let again = Config::from_toml(text, base).expect("the same text validates again");
            assert_eq!(
                format!("{config:?}"),
                format!("{again:?}"),
                "validation is not pure"
            );
        }
        Err(error) => assert!(!error.to_string().is_empty(), "an empty error message"),
    }
});
