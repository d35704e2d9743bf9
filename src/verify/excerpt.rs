//! Report excerpts: the start or end of an output, cut to a line and byte budget with the cut
//! marked, so a report quotes real output without growing without bound.

/// Keep at most `max_bytes` of `text` (tail or head), cut on a char boundary, marking the cut.
pub fn excerpt(text: &str, max_lines: usize, max_bytes: usize, tail: bool) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let (picked, cut_lines) = if lines.len() > max_lines {
        if tail {
            (
                lines[lines.len() - max_lines..].to_vec(),
                lines.len() - max_lines,
            )
        } else {
            (lines[..max_lines].to_vec(), lines.len() - max_lines)
        }
    } else {
        (lines, 0)
    };
    let mut s = picked.join("\n");
    let mut cut_bytes = false;
    if s.len() > max_bytes {
        let mut end = max_bytes;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        cut_bytes = true;
    }
    if cut_lines > 0 {
        let note = format!("[… {cut_lines} lines omitted …]");
        s = if tail {
            format!("{note}\n{s}")
        } else {
            format!("{s}\n{note}")
        };
    }
    if cut_bytes {
        s.push_str("\n[… truncated …]");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_tail_and_bytes() {
        let t = (1..=10)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let e = excerpt(&t, 3, 1000, true);
        assert!(e.starts_with("[… 7 lines omitted …]"));
        assert!(e.ends_with("8\n9\n10"));
        let e = excerpt("ééééé", 10, 3, false);
        assert!(e.starts_with('é') && e.contains("truncated"));
    }
}
