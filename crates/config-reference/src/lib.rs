//! The configuration reference, generated from the config types so that it cannot drift.
//!
//! The raw config structs of the platform and the agent derive [`schemars::JsonSchema`]:
//! their doc comments become the descriptions, their serde attributes (`default`,
//! `deny_unknown_fields`, `rename_all`, tags) shape the schema, and the defaults come from the
//! same `Default` impls and `default = "…"` functions that serde uses. [`markdown`] renders
//! that schema as one markdown section per TOML table, one row per key: key, type, default and
//! meaning.
//!
//! Shapes, as serde maps them to TOML:
//! - a property whose schema is an object with properties is a table, `[parent.key]`;
//! - an array of such objects is an array of tables, `[[parent.key]]`; when the objects are an
//!   internally tagged enum (`oneOf` variants with a `const` tag), one section per variant;
//! - an object whose `additionalProperties` is such an object is a table of tables,
//!   `[parent.key.<name>]`;
//! - anything else is a key, in its table's rows.

use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value};

/// The markdown reference of the config file whose top level is `T`: `header` (title, how it
/// was generated), then the top-level keys, then one section per table.
pub fn markdown<T: JsonSchema>(header: &str) -> String {
    render(&schemars::schema_for!(T), header)
}

/// Renders an already generated schema (see [`markdown`]).
pub fn render(schema: &Schema, header: &str) -> String {
    let root = schema.as_value();
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let root = inline(root, &defs, 0);
    let mut renderer = Renderer {
        out: format!("{}\n\n", header.trim_end()),
    };
    if let Some(root) = root.as_object() {
        renderer.table("Top level", "", root, None);
    }
    let mut out = renderer.out;
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Why the committed reference `committed` differs from the `generated` one, naming the first
/// differing line and the command that regenerates it; `None` when they are equal.
pub fn stale(committed: &str, generated: &str, regenerate: &str) -> Option<String> {
    if committed == generated {
        return None;
    }
    let mut committed_lines = committed.lines();
    let mut generated_lines = generated.lines();
    let mut line = 1;
    let (was, now) = loop {
        match (committed_lines.next(), generated_lines.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (None, None) => break ("(end of file)", "(end of file)"),
            (a, b) => break (a.unwrap_or("(end of file)"), b.unwrap_or("(end of file)")),
        }
    };
    Some(format!(
        "the committed configuration reference is out of date (line {line}: committed {was:?}, \
         generated {now:?}); regenerate it with: {regenerate}"
    ))
}

/// Deepest chain of `$ref`s followed: the config types are not recursive, so this only stops
/// a schema that would be.
const MAX_REF_DEPTH: usize = 32;

/// `value` with every `$ref` to `defs` replaced by its target, merged with the keys beside
/// the `$ref` (an enum variant's tag property and description are beside it).
fn inline(value: &Value, defs: &Value, depth: usize) -> Value {
    match value {
        Value::Object(map) => {
            let target = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .and_then(|name| defs.get(name))
                .filter(|_| depth < MAX_REF_DEPTH);
            let mut out: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| target.is_none() || k.as_str() != "$ref")
                .filter(|(k, _)| k.as_str() != "$defs")
                .map(|(k, v)| (k.clone(), inline(v, defs, depth)))
                .collect();
            if let Some(Value::Object(target)) = target.map(|t| inline(t, defs, depth + 1)) {
                for (key, value) in target {
                    match (out.get_mut(&key), value) {
                        (Some(Value::Object(mine)), Value::Object(theirs)) => {
                            for (k, v) in theirs {
                                mine.entry(k).or_insert(v);
                            }
                        }
                        (Some(Value::Array(mine)), Value::Array(theirs)) => mine.extend(theirs),
                        (Some(_), _) => {}
                        (None, value) => {
                            out.insert(key, value);
                        }
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(v, defs, depth)).collect()),
        other => other.clone(),
    }
}

/// Writes the markdown.
struct Renderer {
    out: String,
}

/// A table found among a table's properties, rendered after the table's own rows.
struct Nested<'a> {
    heading: String,
    path: String,
    schema: &'a Map<String, Value>,
    description: Option<String>,
}

/// `schema` without its `null` alternative (an `Option`).
fn non_null(schema: &Map<String, Value>) -> &Map<String, Value> {
    let alternatives = schema.get("anyOf").and_then(Value::as_array);
    if let Some([a, b]) = alternatives.map(Vec::as_slice) {
        let is_null = |s: &Value| s.get("type") == Some(&Value::from("null"));
        match (a.as_object(), b.as_object()) {
            (Some(a), Some(_)) if is_null(b) => return a,
            (Some(_), Some(b)) if is_null(a) => return b,
            _ => {}
        }
    }
    schema
}

impl Renderer {
    /// One table: its heading, description, rows, then its nested tables.
    fn table(
        &mut self,
        heading: &str,
        path: &str,
        schema: &Map<String, Value>,
        description: Option<String>,
    ) {
        if let Some(tagged) = variants(schema) {
            for variant in tagged {
                let heading = format!("{heading} with `{} = \"{}\"`", variant.tag, variant.value);
                self.table(&heading, path, variant.schema, text(variant.schema));
            }
            return;
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut nested = Vec::new();
        for (key, property) in properties.into_iter().flatten() {
            // A tagged variant's tag is in the heading, not among the rows.
            let Some(property) = property.as_object().filter(|p| !p.contains_key("const")) else {
                continue;
            };
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let value = non_null(property);
            let description = text(property).or_else(|| text(value));
            if is_table(value) {
                nested.push(Nested {
                    heading: format!("`[{child}]`"),
                    path: child,
                    schema: value,
                    description,
                });
                continue;
            }
            if let Some(items) = value.get("items").and_then(Value::as_object) {
                if is_table(items) {
                    nested.push(Nested {
                        heading: format!("`[[{child}]]`"),
                        path: child,
                        schema: items,
                        description,
                    });
                    continue;
                }
            }
            if let Some(entries) = value.get("additionalProperties").and_then(Value::as_object) {
                if is_table(entries) {
                    let path = format!("{child}.<name>");
                    nested.push(Nested {
                        heading: format!("`[{path}]`"),
                        path,
                        schema: entries,
                        description,
                    });
                    continue;
                }
            }
            // An `Option` of a struct with a container default has the default `null`.
            let default = match property.get("default").filter(|v| !v.is_null()) {
                Some(value) => format!("`{}`", literal(value)),
                None if required.contains(&key.as_str()) => "*required*".to_owned(),
                None => "unset".to_owned(),
            };
            let mut meaning = description.unwrap_or_default();
            if let Some(choices) = self.choices(value) {
                meaning.push_str(&choices);
            }
            rows.push(format!(
                "| `{key}` | {} | {default} | {} |",
                cell(&self.type_name(value)),
                cell(&meaning)
            ));
        }
        // The top level is only a section when it has keys of its own (the header describes
        // the file).
        if !(path.is_empty() && rows.is_empty()) {
            self.out.push_str(&format!("## {heading}\n\n"));
            if let Some(description) = description.or_else(|| text(schema)) {
                self.out.push_str(&description);
                self.out.push_str("\n\n");
            }
        }
        if !rows.is_empty() {
            self.out
                .push_str("| Key | Type | Default | Meaning |\n| --- | --- | --- | --- |\n");
            for row in rows {
                self.out.push_str(&row);
                self.out.push('\n');
            }
            self.out.push('\n');
        }
        for table in nested {
            self.table(&table.heading, &table.path, table.schema, table.description);
        }
    }

    /// The type as a reader of the TOML file sees it.
    fn type_name(&self, schema: &Map<String, Value>) -> String {
        let schema = non_null(schema);
        if let Some(values) = enum_values(schema) {
            return values.join(" or ");
        }
        if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
            let names: Vec<String> = alternatives
                .iter()
                .filter_map(Value::as_object)
                .map(|a| self.type_name(a))
                .collect();
            return names.join(" or ");
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let names: Vec<String> = types
            .into_iter()
            .filter(|t| *t != "null")
            .map(|t| match t {
                "array" => {
                    let items = schema
                        .get("items")
                        .and_then(Value::as_object)
                        .map_or_else(|| "values".to_owned(), |i| self.type_name(i));
                    format!("array of {items}")
                }
                "object" => match schema
                    .get("additionalProperties")
                    .and_then(Value::as_object)
                {
                    Some(entries) => format!("table of {}", self.type_name(entries)),
                    None => "table".to_owned(),
                },
                "number" => "float".to_owned(),
                other => other.to_owned(),
            })
            .collect();
        if names.is_empty() {
            "value".to_owned()
        } else {
            names.join(" or ")
        }
    }

    /// For an enum whose values are documented, what each value means (appended to the
    /// key's meaning).
    fn choices(&self, schema: &Map<String, Value>) -> Option<String> {
        let alternatives = schema.get("oneOf")?.as_array()?;
        let described: Vec<String> = alternatives
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|a| {
                let values = enum_values(a)?;
                let meaning = text(a)?;
                Some(format!(
                    "{}: {}",
                    values.join(", "),
                    meaning.trim_end_matches('.')
                ))
            })
            .collect();
        (!described.is_empty()).then(|| format!(" ({})", described.join("; ")))
    }
}

/// Whether `schema` is written as a TOML table (or one per variant).
fn is_table(schema: &Map<String, Value>) -> bool {
    schema.contains_key("properties") || variants(schema).is_some()
}

/// One variant of an internally tagged enum: `tag = "value"` selects `schema`.
struct Variant<'a> {
    tag: &'a str,
    value: &'a str,
    schema: &'a Map<String, Value>,
}

/// The variants of an internally tagged enum, when `schema` is one.
fn variants(schema: &Map<String, Value>) -> Option<Vec<Variant<'_>>> {
    let alternatives = schema.get("oneOf")?.as_array()?;
    alternatives
        .iter()
        .map(|variant| {
            let variant = variant.as_object()?;
            let (tag, value) = variant
                .get("properties")?
                .as_object()?
                .iter()
                .find_map(|(key, p)| Some((key.as_str(), p.get("const")?.as_str()?)))?;
            Some(Variant {
                tag,
                value,
                schema: variant,
            })
        })
        .collect()
}

/// The literal values of an enum or constant schema, as TOML.
fn enum_values(schema: &Map<String, Value>) -> Option<Vec<String>> {
    if let Some(value) = schema.get("const") {
        return Some(vec![format!("`{}`", literal(value))]);
    }
    let values = schema.get("enum")?.as_array()?;
    Some(values.iter().map(|v| format!("`{}`", literal(v))).collect())
}

/// The schema's doc comment, on one line.
fn text(schema: &Map<String, Value>) -> Option<String> {
    let description = schema.get("description").and_then(Value::as_str)?;
    let words: Vec<&str> = description.split_whitespace().collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// A JSON value written as TOML.
fn literal(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(literal).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k} = {}", literal(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        other => other.to_string(),
    }
}

/// Text made safe for a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table.
    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        /// Where, as `host:port` | anything.
        #[serde(default = "default_listen")]
        listen: String,
        /// The mode.
        #[serde(default)]
        mode: Mode,
        /// Optional sub-table.
        limits: Option<Limits>,
        /// Items.
        #[serde(default)]
        items: Vec<Item>,
        /// Tuning.
        #[serde(default)]
        tuning: Tuning,
    }

    #[derive(schemars::JsonSchema, serde::Deserialize, Default)]
    #[serde(default)]
    #[allow(dead_code)]
    struct Tuning {
        /// Cap, in days.
        cap_days: Option<u32>,
    }

    fn default_listen() -> String {
        "127.0.0.1:1".into()
    }

    #[derive(schemars::JsonSchema, serde::Deserialize, serde::Serialize, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        /// Decide alone.
        #[default]
        Auto,
        /// Never.
        Off,
    }

    /// Limits of something.
    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[allow(dead_code)]
    struct Limits {
        /// At most this many, per second.
        rate: f64,
        /// Names.
        names: Option<Vec<String>>,
    }

    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Item {
        /// A first kind.
        One(Limits),
        /// A second kind.
        Two { seed: u64 },
    }

    #[test]
    fn stale_names_the_first_difference_and_the_command() {
        assert_eq!(stale("a\nb\n", "a\nb\n", "make it"), None);
        let why = stale("a\nb\n", "a\nc\n", "make it").unwrap_or_default();
        assert!(
            why.contains("line 2: committed \"b\", generated \"c\""),
            "{why}"
        );
        assert!(why.ends_with("regenerate it with: make it"), "{why}");
        let why = stale("a\n", "a\nb", "make it").unwrap_or_default();
        assert!(why.contains("line 2: committed \"(end of file)\""), "{why}");
        let why = stale("a\n", "a", "make it").unwrap_or_default();
        assert!(why.contains("(end of file)"), "{why}");
    }

    #[test]
    fn tables_rows_defaults_and_variants() {
        let text = markdown::<File>("# Reference");
        for expected in [
            "# Reference\n\n## Top level\n\nA table.\n\n| Key | Type | Default | Meaning |",
            "| `listen` | string | `\"127.0.0.1:1\"` | Where, as `host:port` \\| anything. |",
            "| `mode` | `\"auto\"` or `\"off\"` | `\"auto\"` | The mode. (`\"auto\"`: Decide alone; `\"off\"`: Never) |",
            "## `[limits]`\n\nOptional sub-table.\n\n",
            "| `rate` | float | *required* | At most this many, per second. |",
            "| `names` | array of string | unset | Names. |",
            "## `[[items]]` with `kind = \"one\"`\n\nA first kind.",
            "## `[[items]]` with `kind = \"two\"`",
            "| `seed` | integer | *required* |",
            "## `[tuning]`\n\nTuning.\n\n",
            "| `cap_days` | integer | unset | Cap, in days. |",
        ] {
            assert!(text.contains(expected), "{expected}\nnot in\n{text}");
        }
        assert!(!text.ends_with("\n\n"), "{text}");
    }
}
