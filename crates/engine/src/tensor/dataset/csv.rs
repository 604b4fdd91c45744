//! A small RFC 4180 CSV record reader: quoted fields with `""` escapes, newlines inside
//! quotes, CRLF line ends. Written here because the only need is numbers in named columns
//! and every error must carry the line number.

use super::DatasetError;

/// Iterates CSV records as `(line number, fields)`, RFC 4180 style.
pub(super) struct CsvRecords<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> CsvRecords<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        CsvRecords {
            text,
            pos: 0,
            line: 1,
        }
    }

    /// The byte offset in the text where the next record starts.
    pub(super) fn offset(&self) -> usize {
        self.pos
    }
}

impl Iterator for CsvRecords<'_> {
    type Item = Result<(usize, Vec<String>), DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        let start_line = self.line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut in_quotes = false;
        let mut after_quote = false;
        let mut chars = self.text[self.pos..].char_indices();
        let mut consumed = self.text.len() - self.pos;
        while let Some((i, c)) = chars.next() {
            if in_quotes {
                match c {
                    '"' => {
                        if self.text[self.pos + i + 1..].starts_with('"') {
                            field.push('"');
                            chars.next();
                        } else {
                            in_quotes = false;
                            after_quote = true;
                        }
                    }
                    '\n' => {
                        self.line += 1;
                        field.push(c);
                    }
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    after_quote = false;
                }
                '\n' => {
                    consumed = i + 1;
                    self.line += 1;
                    break;
                }
                '\r' if self.text[self.pos + i + 1..].starts_with('\n') => {}
                '"' if field.is_empty() && !after_quote => in_quotes = true,
                _ if after_quote => {
                    self.pos = self.text.len();
                    return Some(Err(DatasetError::BadQuote { line: self.line }));
                }
                _ => field.push(c),
            }
        }
        if in_quotes {
            self.pos = self.text.len();
            return Some(Err(DatasetError::UnterminatedQuote { line: start_line }));
        }
        fields.push(field);
        self.pos += consumed;
        Some(Ok((start_line, fields)))
    }
}
