//! The tables of `docs/annotations.md`, rendered from the annotation table.
//! Each sits between `<!-- BEGIN GENERATED <id> -->` and
//! `<!-- END GENERATED <id> -->`; the prose around them is hand-written.
//! A test compares; `TG_UPDATE_DOCS=1 cargo test -p tenant-gateway-xds --lib
//! annotations` rewrites them (refused when `CI` is set).

use super::table::{Group, OnInvalid, Refusal, REFUSED, TABLE};
use std::fmt::Write as _;

const BEGIN: &str = "<!-- BEGIN GENERATED ";
const MARKER_END: &str = " -->\n";

/// One group's table: key, aliases, value, default, what an invalid value does.
pub(crate) fn render_group(group: Group) -> String {
    let mut out = format!(
        "| ours | {} | value | default | invalid |\n|---|---|---|---|---|\n",
        group.alias_heading()
    );
    for row in TABLE.iter().filter(|row| row.group == group) {
        let aliases = if row.aliases.is_empty() {
            row.alias_note.unwrap_or("—").to_string()
        } else {
            let quoted: Vec<String> = row.aliases.iter().map(|a| format!("`{a}`")).collect();
            quoted.join(", ")
        };
        let invalid = match row.on_invalid {
            OnInvalid::Strict => "strict".to_string(),
            OnInvalid::Lenient => "lenient".to_string(),
            OnInvalid::LenientServing(fallback) => format!("lenient ({fallback})"),
        };
        let _ = writeln!(
            out,
            "| `{}` | {aliases} | {} | {} | {invalid} |",
            row.key, row.value, row.default
        );
    }
    out
}

/// The annotations refused whatever their value.
pub(crate) fn render_refused() -> String {
    let mut out = String::from("| ingress-nginx | refused as | the Ingress |\n|---|---|---|\n");
    for (key, refusal) in REFUSED {
        let (what, then) = match refusal {
            Refusal::Snippet => ("raw proxy configuration", "served without it (`Warning`)"),
            Refusal::FailClosed => (
                "authentication we do not implement",
                "its rules are not served (`Error`)",
            ),
        };
        let _ = writeln!(out, "| `{key}` | {what} | {then} |");
    }
    out
}

/// Every generated block: its id and content, in table order.
pub(crate) fn blocks() -> Vec<(&'static str, String)> {
    let mut groups: Vec<Group> = TABLE.iter().map(|row| row.group).collect();
    groups.dedup();
    groups
        .into_iter()
        .map(|g| (g.id(), render_group(g)))
        .chain(std::iter::once(("refused", render_refused())))
        .collect()
}

/// `doc` with every generated block rewritten; an error when a block is
/// unknown, repeated, unterminated, or missing from the doc.
pub(crate) fn regenerate(doc: &str) -> Result<String, String> {
    let blocks = blocks();
    let mut out = String::with_capacity(doc.len());
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(BEGIN) {
        let (before, block) = rest.split_at(start);
        out.push_str(before);
        let header_len = block
            .find(MARKER_END)
            .ok_or("a BEGIN GENERATED marker is not closed by \" -->\"")?;
        let id = &block[BEGIN.len()..header_len];
        let (_, content) = blocks
            .iter()
            .find(|(b, _)| *b == id)
            .ok_or_else(|| format!("block {id:?}: no such group in the annotation table"))?;
        if seen.contains(&id) {
            return Err(format!("block {id:?} appears twice"));
        }
        seen.push(id);
        let end_marker = format!("<!-- END GENERATED {id} -->");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| format!("block {id:?} has no {end_marker}"))?;
        out.push_str(&block[..header_len + MARKER_END.len()]);
        out.push_str(content);
        rest = &block[end..];
    }
    out.push_str(rest);
    let missing: Vec<&str> = blocks
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !seen.contains(id))
        .collect();
    if !missing.is_empty() {
        return Err(format!("no generated block for {missing:?}"));
    }
    Ok(out)
}
