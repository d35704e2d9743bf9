//! What the HTML page and its SVG charts share: the palette and HTML escaping (so neither
//! renderer imports the other).

/// HTML-escape text for element content and double- or single-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Hits.
pub(super) const HIT: &str = "#2f9e44";
/// Misses.
pub(super) const MISS: &str = "#e8590c";
/// Incidents.
pub(super) const INCIDENT: &str = "#c92a2a";
/// The main series.
pub(super) const ACCENT: &str = "#1971c2";
/// Secondary series and axes.
pub(super) const MUTED: &str = "#868e96";
/// Commands that ended before the cache lookup.
pub(super) const NO_LOOKUP: &str = "#adb5bd";
/// Failed commands.
pub(super) const ERROR: &str = "#862e9c";
