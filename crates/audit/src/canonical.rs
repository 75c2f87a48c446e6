//! The canonical JSON text that is hashed and signed (RFC 8785 ordering and escaping; the
//! exact rules are in the crate docs).
//!
//! The writers stream into a [`Sink`]: a `String` for the stored detail text, or a SHA-256
//! state directly, so hashing an entry allocates nothing for its detail.

use beffroi_protocol::{TenantId, Timestamp};
use serde_json::{Map, Number, Value};
use sha2::{Digest as _, Sha256};

use crate::{AuditActor, AuditKind, Digest};

/// Where canonical text goes.
pub(crate) trait Sink {
    /// Appends `text`.
    fn put(&mut self, text: &str);
}

impl Sink for String {
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, text: &str) {
        self.update(text.as_bytes());
    }
}

/// The hashed content of an entry: everything but its hashes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryContent<'a> {
    pub tenant: &'a TenantId,
    pub seq: u64,
    pub time: Timestamp,
    pub actor: &'a AuditActor,
    pub kind: AuditKind,
    pub detail: &'a Map<String, Value>,
}

/// Writes an entry's content: `{"actor","detail","kind","seq","tenant","time"}`, in that
/// (sorted) order.
pub(crate) fn entry(out: &mut impl Sink, c: &EntryContent<'_>) {
    out.put("{\"actor\":");
    string(out, &c.actor.to_string());
    out.put(",\"detail\":");
    object(out, c.detail);
    out.put(",\"kind\":");
    string(out, c.kind.as_str());
    out.put(",\"seq\":");
    out.put(&c.seq.to_string());
    out.put(",\"tenant\":");
    string(out, c.tenant.as_str());
    out.put(",\"time\":");
    out.put(&c.time.unix_micros().to_string());
    out.put("}");
}

/// Writes a checkpoint's signed content: `{"head","seq","tenant","time"}`, in that (sorted)
/// order.
pub(crate) fn checkpoint(
    out: &mut impl Sink,
    tenant: &TenantId,
    seq: u64,
    head: &Digest,
    time: Timestamp,
) {
    out.put("{\"head\":");
    string(out, &head.to_string());
    out.put(",\"seq\":");
    out.put(&seq.to_string());
    out.put(",\"tenant\":");
    string(out, tenant.as_str());
    out.put(",\"time\":");
    out.put(&time.unix_micros().to_string());
    out.put("}");
}

/// Writes any JSON value.
pub(crate) fn value(out: &mut impl Sink, v: &Value) {
    match v {
        Value::Null => out.put("null"),
        Value::Bool(true) => out.put("true"),
        Value::Bool(false) => out.put("false"),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.put("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(",");
                }
                value(out, item);
            }
            out.put("]");
        }
        Value::Object(map) => object(out, map),
    }
}

/// Writes an object with its members sorted by the UTF-16 code units of their names.
pub(crate) fn object(out: &mut impl Sink, map: &Map<String, Value>) {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.put("{");
    for (i, (name, member)) in members.into_iter().enumerate() {
        if i > 0 {
            out.put(",");
        }
        string(out, name);
        out.put(":");
        value(out, member);
    }
    out.put("}");
}

/// Integers in decimal; other numbers in their shortest round-trip form.
fn number(out: &mut impl Sink, n: &Number) {
    out.put(&n.to_string());
}

/// A string, escaping only `"`, `\` and control characters.
fn string(out: &mut impl Sink, s: &str) {
    out.put("\"");
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x09 => "\\t",
            0x0a => "\\n",
            0x0c => "\\f",
            0x0d => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, hence on a character boundary.
        out.put(&s[start..i]);
        if short.is_empty() {
            out.put(&format!("\\u{b:04x}"));
        } else {
            out.put(short);
        }
        start = i + 1;
    }
    out.put(&s[start..]);
    out.put("\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &Value) -> String {
        let mut out = String::new();
        value(&mut out, v);
        out
    }

    #[test]
    fn sorts_members_and_drops_whitespace() {
        let v = serde_json::json!({"b": [1, {"z": null, "a": true}], "a": -3, "é": "x", "B": 1});
        assert_eq!(
            text(&v),
            r#"{"B":1,"a":-3,"b":[1,{"a":true,"z":null}],"é":"x"}"#
        );
    }

    #[test]
    fn escapes_like_rfc_8785() {
        let v = Value::from("q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é€😀");
        assert_eq!(
            text(&v),
            "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é€😀\""
        );
    }

    #[test]
    fn utf16_member_order() {
        // U+1F600 comes after U+FF61 by code point (and in UTF-8), but before it in UTF-16:
        // its first surrogate, D83D, is below FF61.
        let v = serde_json::json!({"\u{ff61}": 2, "\u{1f600}": 1});
        assert_eq!(text(&v), "{\"\u{1f600}\":1,\"\u{ff61}\":2}");
    }

    #[test]
    fn reparsing_is_stable() {
        let v = serde_json::json!({"f": 0.1, "g": 1.0, "h": 1e300, "i": u64::MAX, "j": i64::MIN});
        let once = text(&v);
        let again: Value = serde_json::from_str(&once).unwrap_or_default();
        assert_eq!(text(&again), once);
    }
}
