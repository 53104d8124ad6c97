//! Splitting a long text into parts Discord accepts: each part at most
//! `limit` characters, cut between paragraphs where possible, then between
//! lines, then between words. A code block cut in two is closed at the end
//! of one part and reopened (with its language) at the start of the next,
//! so every part renders.

/// Discord's limit on a message's content, in characters.
pub const CONTENT_LIMIT: usize = 2000;
/// Discord's limit on an embed's description.
pub const EMBED_DESCRIPTION_LIMIT: usize = 4096;
/// Discord's limit on all the text of one message's embeds.
pub const MESSAGE_TOTAL_LIMIT: usize = 6000;

fn len(s: &str) -> usize {
    s.chars().count()
}

/// A paragraph, or a whole fenced code block.
enum Block<'a> {
    Text(Vec<&'a str>),
    Code { fence: &'a str, lines: Vec<&'a str> },
}

fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    let mut code: Option<(&str, Vec<&str>)> = None;
    for line in text.lines() {
        if let Some((fence, lines)) = &mut code {
            if line.trim_start().starts_with("```") {
                out.push(Block::Code {
                    fence,
                    lines: std::mem::take(lines),
                });
                code = None;
            } else {
                lines.push(line);
            }
            continue;
        }
        if line.trim_start().starts_with("```") {
            if !para.is_empty() {
                out.push(Block::Text(std::mem::take(&mut para)));
            }
            code = Some((line.trim(), Vec::new()));
        } else if line.trim().is_empty() {
            if !para.is_empty() {
                out.push(Block::Text(std::mem::take(&mut para)));
            }
        } else {
            para.push(line);
        }
    }
    if let Some((fence, lines)) = code {
        // An unclosed block: closed at the end, as Discord would show it.
        out.push(Block::Code { fence, lines });
    }
    if !para.is_empty() {
        out.push(Block::Text(para));
    }
    out
}

/// Cuts one line longer than `limit` at spaces where it can, else anywhere
/// (between characters).
fn cut_line(line: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while len(rest) > limit {
        let hard = rest
            .char_indices()
            .nth(limit)
            .map_or(rest.len(), |(i, _)| i);
        let at = rest[..hard]
            .rfind(' ')
            .filter(|&i| i > hard / 2)
            .map_or(hard, |i| i + 1);
        out.push(rest[..at].to_owned());
        rest = &rest[at..];
    }
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// Packs pieces into parts of at most `limit` characters, joined by `sep`.
fn pack(pieces: impl IntoIterator<Item = String>, sep: &str, limit: usize, out: &mut Vec<String>) {
    let mut current = String::new();
    for piece in pieces {
        let extra = if current.is_empty() {
            len(&piece)
        } else {
            len(sep) + len(&piece)
        };
        if !current.is_empty() && len(&current) + extra > limit {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str(sep);
        }
        current.push_str(&piece);
    }
    if !current.is_empty() {
        out.push(current);
    }
}

/// The pieces of one block, each at most `limit` characters and each a
/// complete paragraph or a complete (re)fenced code block.
fn block_pieces(block: &Block<'_>, limit: usize) -> Vec<String> {
    match block {
        Block::Text(lines) => {
            let text = lines.join("\n");
            if len(&text) <= limit {
                return vec![text];
            }
            let lines = lines.iter().flat_map(|l| cut_line(l, limit));
            let mut out = Vec::new();
            pack(lines, "\n", limit, &mut out);
            out
        }
        Block::Code { fence, lines } => {
            // "```lang\n" + body + "\n```"
            let overhead = len(fence) + 1 + 4;
            let room = limit.saturating_sub(overhead).max(1);
            let lines = lines.iter().flat_map(|l| {
                if l.is_empty() {
                    vec![String::new()]
                } else {
                    cut_line(l, room)
                }
            });
            let mut bodies = Vec::new();
            pack_keeping_empty(lines, room, &mut bodies);
            if bodies.is_empty() {
                bodies.push(String::new());
            }
            bodies
                .into_iter()
                .map(|body| format!("{fence}\n{body}\n```"))
                .collect()
        }
    }
}

/// Like [`pack`] with a newline separator, keeping empty lines (code).
fn pack_keeping_empty(
    lines: impl IntoIterator<Item = String>,
    limit: usize,
    out: &mut Vec<String>,
) {
    let mut current: Option<String> = None;
    for line in lines {
        match &mut current {
            Some(c) if len(c) + 1 + len(&line) <= limit => {
                c.push('\n');
                c.push_str(&line);
            }
            Some(c) => {
                out.push(std::mem::take(c));
                current = Some(line);
            }
            None => current = Some(line),
        }
    }
    out.extend(current);
}

/// Splits `text` into parts of at most `limit` characters (at least 16).
#[must_use]
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(16);
    if len(text) <= limit {
        return vec![text.to_owned()];
    }
    let pieces = blocks(text)
        .iter()
        .flat_map(|b| block_pieces(b, limit))
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    pack(pieces, "\n\n", limit, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fence opened in a part is closed in it.
    fn balanced(part: &str) -> bool {
        part.lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .count()
            % 2
            == 0
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split("hello", 2000), ["hello"]);
        let exact = "x".repeat(2000);
        assert_eq!(split(&exact, 2000), vec![exact]);
    }

    #[test]
    fn paragraphs_are_kept_whole_and_parts_stay_within_the_limit() {
        let para = |c: char| std::iter::repeat_n(c, 900).collect::<String>();
        let text = format!("{}\n\n{}\n\n{}", para('a'), para('b'), para('c'));
        let parts = split(&text, 2000);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(parts[0], format!("{}\n\n{}", para('a'), para('b')));
        assert_eq!(parts[1], para('c'));
        // One character over: the cut moves to the paragraph boundary.
        let text = format!("{}\n\n{}", "a".repeat(1000), "b".repeat(998));
        assert_eq!(split(&text, 2000).len(), 1);
        let text = format!("{}\n\n{}", "a".repeat(1000), "b".repeat(999));
        assert_eq!(split(&text, 2000), ["a".repeat(1000), "b".repeat(999)]);
    }

    #[test]
    fn a_long_code_block_is_closed_and_reopened() {
        let code: Vec<String> = (0..400).map(|i| format!("let x{i} = {i};")).collect();
        let text = format!("Intro.\n\n```rust\n{}\n```\n\nOutro.", code.join("\n"));
        let parts = split(&text, 2000);
        assert!(parts.len() >= 3, "{}", parts.len());
        for part in &parts {
            assert!(len(part) <= 2000, "{}", len(part));
            assert!(balanced(part), "unbalanced fences in {part:?}");
        }
        assert!(parts.iter().skip(1).any(|p| p.starts_with("```rust\n")));
        // Every line of code arrives, in order, once.
        let lines: Vec<&str> = parts
            .iter()
            .flat_map(|p| p.lines())
            .filter(|l| l.starts_with("let "))
            .collect();
        assert_eq!(lines, code.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn a_line_longer_than_a_part_is_cut_between_words_or_characters() {
        let words = "word ".repeat(1000);
        let parts = split(words.trim_end(), 2000);
        assert!(parts.iter().all(|p| len(p) <= 2000));
        assert_eq!(parts.concat().replace(' ', ""), "word".repeat(1000));
        let cjk = "漢".repeat(4500);
        let parts = split(&cjk, 2000);
        assert_eq!(
            parts.iter().map(|p| len(p)).collect::<Vec<_>>(),
            [2000, 2000, 500]
        );
        assert_eq!(parts.concat(), cjk);
    }

    #[test]
    fn embed_limits_split_too() {
        let text = "y".repeat(EMBED_DESCRIPTION_LIMIT + 1);
        let parts = split(&text, EMBED_DESCRIPTION_LIMIT);
        assert_eq!(parts.len(), 2);
    }
}
