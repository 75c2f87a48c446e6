//! `beffroi-agent config-reference`: the agent's configuration reference, generated from the
//! raw config types of [`crate::config`] and [`crate::source`] (their doc comments, types and
//! defaults) and committed as `docs/agent-configuration.md`. A test fails when the committed
//! file is out of date.

/// The command that regenerates the committed file, from the workspace root.
pub const REGENERATE: &str =
    "cargo run -p beffroi-agent -- config-reference > docs/agent-configuration.md";

/// The reference, as markdown.
pub fn markdown() -> String {
    let header = format!(
        "# Agent configuration reference\n\n\
         Generated from the config types (`agent/src/config.rs`, `agent/src/source/`) by \
         `beffroi-agent config-reference`: do not edit by hand. Regenerate it with\n\
         `{REGENERATE}`.\n\n\
         The agent reads one TOML file, `/etc/beffroi-agent/agent.toml` unless `--config` names \
         another; `beffroi-agent enroll` writes a complete one. Unknown keys are errors; \
         `beffroi-agent check-config` validates a file and names the offending field. Relative \
         paths are resolved from the file's directory. `deploy/agent/agent.toml` is an \
         annotated example. The platform's file is described in \
         [configuration.md](configuration.md); how to move from one release to the next in \
         [upgrading.md](upgrading.md).\n\n\
         In the tables, *required* keys must be set; *unset* means the key has no default \
         value: leaving it out has the effect its meaning describes."
    );
    beffroi_config_reference::markdown::<crate::config::RawConfig>(&header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_reference_is_up_to_date() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/agent-configuration.md"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let generated = markdown() + "\n";
        if let Some(why) = beffroi_config_reference::stale(&committed, &generated, REGENERATE) {
            panic!("{path}: {why}");
        }
    }

    #[test]
    fn sizes_are_shown_with_their_unit() {
        let text = markdown();
        assert!(
            text.contains("| `max_bytes` | integer or string | `\"256 MiB\"` |"),
            "{text}"
        );
        assert!(text.contains("`\"256 KiB\"`"), "{text}");
    }
}
