//! Folding of full-width forms and typographic spaces and dashes to ASCII, so detectors
//! written for ASCII also find `１３８１２３４５６７８` or `06 12 34 56 78` with
//! no-break spaces, while offsets still point into the original text.

use std::borrow::Cow;

/// A folded copy of the input plus the way back to original byte offsets.
pub(crate) struct Folded<'a> {
    pub text: Cow<'a, str>,
    /// `original[i]` is the original byte offset of the folded byte `i`; one extra entry
    /// holds the original length. `None` when folding changed nothing.
    original: Option<Vec<usize>>,
}

impl<'a> Folded<'a> {
    pub fn new(input: &'a str) -> Folded<'a> {
        if !input.chars().any(|c| fold_char(c).is_some()) {
            return Folded {
                text: Cow::Borrowed(input),
                original: None,
            };
        }
        let mut text = String::with_capacity(input.len());
        let mut original = Vec::with_capacity(input.len() + 1);
        for (offset, c) in input.char_indices() {
            let folded = fold_char(c).unwrap_or(c);
            text.push(folded);
            original.extend(std::iter::repeat_n(offset, folded.len_utf8()));
        }
        original.push(input.len());
        Folded {
            text: Cow::Owned(text),
            original: Some(original),
        }
    }

    /// Maps a char-boundary offset of the folded text back to the original text. Every
    /// folded char stands for exactly one original char, so boundaries map to boundaries.
    pub fn to_original(&self, folded_offset: usize) -> Option<usize> {
        match &self.original {
            None => Some(folded_offset),
            Some(original) => original.get(folded_offset).copied(),
        }
    }
}

fn fold_char(c: char) -> Option<char> {
    match c {
        // Full-width ASCII variants (digits, letters, `＋`, `＠`, `－`, `（`…) sit at a
        // fixed distance from their ASCII twins.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21),
        '\u{3000}' | '\u{00A0}' | '\u{2007}' | '\u{202F}' => Some(' '),
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2212}' => Some('-'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_offsets_back() {
        let input = "电话１３８";
        let folded = Folded::new(input);
        assert_eq!(folded.text, "电话138");
        let start = folded.text.find('1').unwrap();
        assert_eq!(folded.to_original(start), Some("电话".len()));
        assert_eq!(folded.to_original(folded.text.len()), Some(input.len()));
    }

    #[test]
    fn ascii_is_borrowed() {
        assert!(matches!(Folded::new("a 1").text, Cow::Borrowed(_)));
    }
}
