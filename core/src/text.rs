//! User input inside messages. Every error message that repeats something a caller sent (an
//! id, a name, an address, a label key or value) goes through [`quote`], so that a 1 MB id
//! comes back as a short, escaped prefix instead of a 1 MB status message (which gRPC clients
//! then refuse as "metadata size exceeds hard limit"), and control characters (NUL, ESC, BEL)
//! never reach a terminal or a log raw.

use std::fmt::Write;

/// Most bytes of escaped input a quote shows before it is cut.
pub const QUOTE_MAX: usize = 40;

/// `text` quoted and escaped as Rust's `{:?}` does, cut after [`QUOTE_MAX`] bytes of escaped
/// text with the total size appended: `"aaaa…" (1048576 bytes)`. Short input is exactly
/// `format!("{text:?}")`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(QUOTE_MAX + 24);
    out.push('"');
    for (i, c) in text.char_indices() {
        let escaped: String = c.escape_debug().collect();
        if out.len() - 1 + escaped.len() > QUOTE_MAX {
            let _ = write!(out, "…\" ({} bytes, {} shown)", text.len(), i);
            return out;
        }
        out.push_str(&escaped);
    }
    out.push('"');
    out
}

/// `text` (a message that may carry input, e.g. a parser's error) cut to at most `max` bytes
/// on a character boundary, with `…` when something was cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_input_is_quoted_as_debug_does() {
        for s in ["", "h1", "a b", "tab\there", "x\u{1b}[31m", "nul\0"] {
            assert_eq!(quote(s), format!("{s:?}"), "{s}");
        }
    }

    #[test]
    fn long_input_is_cut_and_says_how_long_it_was() {
        let q = quote(&"x".repeat(1 << 20));
        assert!(q.len() < 100, "{q}");
        assert!(q.starts_with("\"xxxx"), "{q}");
        assert!(q.ends_with("(1048576 bytes, 40 shown)"), "{q}");
    }

    #[test]
    fn cut_keeps_short_text_and_cuts_on_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééé", 3), "é…");
    }

    proptest! {
        #[test]
        fn a_quote_is_bounded_and_has_no_control_characters(s in any::<String>()) {
            let q = quote(&s);
            prop_assert!(q.len() <= QUOTE_MAX + 60, "{}", q);
            prop_assert!(!q.chars().any(char::is_control), "{}", q);
        }
    }
}
