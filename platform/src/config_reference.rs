//! `beffroi config reference`: the platform's configuration reference, generated from the
//! raw config types of [`crate::config`] (their doc comments, types and defaults) and committed
//! as `docs/configuration.md`. A test fails when the committed file is out of date.

/// The command that regenerates the committed file, from the workspace root.
pub const REGENERATE: &str = "cargo run -p beffroi -- config reference > docs/configuration.md";

/// The reference, as markdown.
pub fn markdown() -> String {
    let header = format!(
        "# Platform configuration reference\n\n\
         Generated from the config types (`platform/src/config.rs`) by \
         `beffroi config reference`: do not edit by hand. Regenerate it with\n\
         `{REGENERATE}`.\n\n\
         The platform reads one TOML file, given with `--config` (`beffroi.toml`). Every key is \
         optional and unknown keys are errors; a bad value is reported with its field name at \
         start. `deploy/platform/beffroi.toml` is an annotated example. The gateway agent's file \
         is described in [agent-configuration.md](agent-configuration.md); how to move from one \
         release to the next in [upgrading.md](upgrading.md).\n\n\
         In the tables, *unset* means the key has no default value: leaving it out has the \
         effect its meaning describes."
    );
    beffroi_config_reference::markdown::<crate::config::RawConfig>(&header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_reference_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let generated = markdown() + "\n";
        if let Some(why) = beffroi_config_reference::stale(&committed, &generated, REGENERATE) {
            panic!("{path}: {why}");
        }
    }
}
