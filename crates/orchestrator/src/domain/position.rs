//! Where a byte offset is in a text, counted as people count: the 1-based line and column (in characters)
//! that error messages about a file show.
//!
//! ```
//! use orchestrator::domain::position::line_column;
//!
//! let text = "{\n  \"é\": 1,\n  \"b\": x\n}";
//! assert_eq!(line_column(text, text.find('x').unwrap()), (3, 8));
//! assert_eq!(line_column(text, text.find('1').unwrap()), (2, 8));
//! ```

/// The 1-based line and column (in characters) of byte `offset` in `text`. An offset past the end is the end;
/// one inside a character counts as that character.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_characters() {
        assert_eq!(line_column("", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab\n", 3), (2, 1));
        assert_eq!(line_column("ab", 99), (1, 3), "past the end is the end");
        // 'é' is two bytes, one column; an offset inside it is the character itself.
        assert_eq!(line_column("éx", 2), (1, 2));
        assert_eq!(line_column("éx", 1), (1, 1));
        assert_eq!(line_column("a\r\nb", 3), (2, 1));
    }
}
