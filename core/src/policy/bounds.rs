//! Size and nesting bounds on policy text, checked in one linear pass **before** any parser
//! sees it. serde_yaml, and serde_norway (its fork, which we use), spend time quadratic in
//! nesting depth before they give up ("recursion limit exceeded": ~30 s for 200 KB of `[`),
//! so depth is refused here instead.
//!
//! The scan over-counts rather than under-counts: it adds flow nesting (`[`, `{` outside
//! quoted scalars and comments), block nesting (the stack of indentation levels) and `- `
//! entries that open on the same line (`- - - x`). A real policy is about ten levels deep;
//! [`MAX_DEPTH`] leaves room for Lists and generous formatting.

/// Largest policy text accepted (per document field, and for a whole apply).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Deepest nesting accepted, counted as described in the module docs.
pub const MAX_DEPTH: usize = 64;

/// Why text was refused before parsing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("the input is {len} bytes; at most {MAX_DOCUMENT_BYTES} bytes (1 MiB) are accepted, split it")]
    TooLarge { len: usize },
    #[error("line {line} nests {MAX_DEPTH}+ levels deep; at most {MAX_DEPTH} levels are accepted")]
    TooDeep { line: usize },
}

/// Where the scan is between two bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between tokens: the next non-blank byte starts one.
    Token,
    /// Inside a plain (unquoted) scalar: quotes are text, brackets are text in block context.
    Plain,
    Double,
    Single,
}

/// A block scalar (`|`, `>`) being skipped: lines more indented than `parent` are its text;
/// the first of them fixes the indentation of the rest (`content`).
#[derive(Clone, Copy)]
struct BlockScalar {
    parent: isize,
    content: Option<usize>,
}

/// The scan's state across lines. It follows the lexical rules of the YAML scanner (libyaml)
/// closely enough to know where quoted scalars, plain scalars, comments and block scalars
/// are, and over-counts where it cannot tell: brackets in a block-context plain scalar count.
struct Scan {
    state: State,
    flow: usize,
    /// Indentation levels of the open block collections (by line indentation).
    indents: Vec<usize>,
    block: Option<BlockScalar>,
    /// A block-context plain scalar ended the previous line: more indented lines than this
    /// continue it (their quotes are text).
    plain_parent: Option<isize>,
}

/// Checks `text` against [`MAX_DOCUMENT_BYTES`] and [`MAX_DEPTH`] in time linear in its size.
pub fn check_bounds(text: &str) -> Result<(), BoundsError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(BoundsError::TooLarge { len: text.len() });
    }
    let mut scan = Scan {
        state: State::Token,
        flow: 0,
        indents: Vec::new(),
        block: None,
        plain_parent: None,
    };
    for (n, line) in text.split('\n').enumerate() {
        if scan.line(line.as_bytes()) > MAX_DEPTH {
            return Err(BoundsError::TooDeep { line: n + 1 });
        }
    }
    Ok(())
}

fn is_blank(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t' | b'\r'))
}

fn is_flow_indicator(b: u8) -> bool {
    matches!(b, b',' | b'[' | b']' | b'{' | b'}')
}

impl Scan {
    /// Scans one line; returns the deepest nesting seen on it.
    fn line(&mut self, bytes: &[u8]) -> usize {
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let rest = &bytes[indent..];
        let blank = rest.iter().all(u8::is_ascii_whitespace);
        if let Some(block) = &mut self.block {
            if blank {
                return 0;
            }
            if indent as isize > block.parent && block.content.is_none_or(|c| indent >= c) {
                block.content.get_or_insert(indent);
                return 0;
            }
            self.block = None;
        }
        let mut i = 0;
        let mut dashes = 0;
        let mut last_dash = indent as isize;
        if matches!(self.state, State::Token | State::Plain) {
            if blank {
                return 0;
            }
            if rest[0] == b'#' {
                // A comment line ends a plain scalar, in either context.
                self.state = State::Token;
                self.plain_parent = None;
                return 0;
            }
            if self.flow == 0 {
                let continues = self.plain_parent.is_some_and(|p| indent as isize > p);
                self.state = if continues {
                    State::Plain
                } else {
                    State::Token
                };
            }
            self.plain_parent = None;
            while self.indents.last().is_some_and(|&top| top > indent) {
                self.indents.pop();
            }
            if self.indents.last() != Some(&indent) {
                self.indents.push(indent);
            }
            i = indent;
            if self.state == State::Token {
                // `- - - x` opens a sequence per dash on this one line.
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'?')
                    && is_blank(bytes.get(i + 1))
                {
                    dashes += 1;
                    last_dash = i as isize;
                    i += 1;
                    while i < bytes.len() && bytes[i] == b' ' {
                        i += 1;
                    }
                }
            }
        }
        let key_column = i as isize;
        let mut deepest = self.indents.len() + dashes + self.flow;
        // Where the current plain scalar's line had its key (for continuation lines).
        let mut plain_parent = key_column - 1;
        let mut after_value = false;
        if i == indent
            && indent == 0
            && (rest.starts_with(b"---") || rest.starts_with(b"..."))
            && is_blank(rest.get(3))
        {
            // A document marker.
            self.state = State::Token;
            i = 3;
        }
        while i < bytes.len() {
            let b = bytes[i];
            let prev_blank = i == 0 || matches!(bytes[i - 1], b' ' | b'\t');
            match self.state {
                State::Double => match b {
                    b'\\' => i += 1,
                    b'"' => self.state = State::Token,
                    _ => {}
                },
                State::Single => {
                    if b == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            self.state = State::Token;
                        }
                    }
                }
                State::Plain => {
                    if b == b'#' && prev_blank {
                        break;
                    }
                    if b == b':' && is_blank(bytes.get(i + 1)) {
                        self.state = State::Token;
                        after_value = true;
                    } else if self.flow > 0 && is_flow_indicator(b) {
                        self.state = State::Token;
                        continue;
                    }
                }
                State::Token => match b {
                    b' ' | b'\t' | b'\r' => {}
                    b'#' if prev_blank => break,
                    b'[' | b'{' => {
                        self.flow += 1;
                        deepest = deepest.max(self.indents.len() + dashes + self.flow);
                    }
                    b']' | b'}' => self.flow = self.flow.saturating_sub(1),
                    b',' => {}
                    b'"' => self.state = State::Double,
                    b'\'' => self.state = State::Single,
                    b':' if self.flow > 0 || is_blank(bytes.get(i + 1)) => {
                        after_value = true;
                    }
                    b'-' | b'?' if is_blank(bytes.get(i + 1)) => {}
                    b'|' | b'>' if self.flow == 0 => {
                        let parent = if after_value { key_column } else { last_dash };
                        let parent = if dashes == 0 && !after_value {
                            -1
                        } else {
                            parent
                        };
                        // An explicit indentation indicator (`|2`) fixes the content's.
                        let content = bytes[i + 1..]
                            .iter()
                            .take(2)
                            .find(|c| c.is_ascii_digit())
                            .map(|d| (parent.max(0) as usize) + usize::from(d - b'0'));
                        self.block = Some(BlockScalar { parent, content });
                        return deepest;
                    }
                    b'!' | b'&' | b'*' => {
                        // A tag, anchor or alias: up to a blank (or a flow indicator).
                        while i + 1 < bytes.len()
                            && !is_blank(bytes.get(i + 1))
                            && !(self.flow > 0 && is_flow_indicator(bytes[i + 1]))
                        {
                            i += 1;
                        }
                    }
                    b'%' if i == 0 => break,
                    _ => {
                        self.state = State::Plain;
                        plain_parent = if after_value {
                            key_column
                        } else if dashes > 0 {
                            last_dash
                        } else {
                            key_column - 1
                        };
                    }
                },
            }
            i += 1;
        }
        if self.state == State::Plain && self.flow == 0 {
            self.state = State::Token;
            self.plain_parent = Some(plain_parent);
        }
        deepest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn usual_policies_pass() {
        let yaml =
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: a\n  \
                    namespace: b\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - \
                    from:\n    - namespaceSelector:\n        matchExpressions:\n        - {key: \
                    env, operator: In, values: [prod, \"x]]]\"]}\n      podSelector: {}\n    \
                    ports: [{port: 80}]\n";
        assert_eq!(check_bounds(yaml), Ok(()));
        let json = r#"{"name":"p","rules":[{"peers":[{"tenant":"t"}],"ports":[{"port":1}]}]}"#;
        assert_eq!(check_bounds(json), Ok(()));
        let block = "metadata:\n  annotations:\n    note: |\n      a\n                                                                                                                                 deep text\n  name: x\n";
        assert_eq!(check_bounds(block), Ok(()));
    }

    #[test]
    fn deep_flow_and_block_nesting_are_refused_fast() {
        let start = Instant::now();
        for text in [
            "[".repeat(200_000),
            "{a: ".repeat(100),
            "- ".repeat(100) + "x",
            (0..100)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>(),
            "a: [".to_string() + &"'x', [".repeat(100),
        ] {
            assert!(
                matches!(check_bounds(&text), Err(BoundsError::TooDeep { .. })),
                "{}",
                &text[..40.min(text.len())]
            );
        }
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let deep = "[".repeat(100);
        for text in [
            format!("a: \"{deep}\"\n"),
            format!("a: '{deep}'\n"),
            format!("a: 'it''s {deep}'\n"),
            format!("a: b # {deep}\n"),
        ] {
            assert_eq!(check_bounds(&text), Ok(()), "{text}");
        }
        // In block context brackets in a plain scalar are text, as in YAML; in flow context
        // a quote inside a plain scalar opens nothing, so the brackets after it count.
        assert_eq!(check_bounds(&format!("a: don't {deep}\n")), Ok(()));
        assert!(check_bounds(&format!("a: [don't, {deep}\n")).is_err());
        assert!(check_bounds(&format!("a: [b\"c, {deep}\n")).is_err());
        // A quote continuing a plain scalar on the next line is text too.
        assert!(check_bounds(&format!("a: x\n  'y\nb: [{deep}\n")).is_err());
    }

    #[test]
    fn size_is_bounded() {
        let big = "#".repeat(MAX_DOCUMENT_BYTES + 1);
        assert_eq!(
            check_bounds(&big),
            Err(BoundsError::TooLarge {
                len: MAX_DOCUMENT_BYTES + 1
            })
        );
    }
}
