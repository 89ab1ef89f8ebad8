//! The character cursor under the expression parser: whitespace, keywords, symbols, and the
//! literal scanners (strings, numbers, durations, path extents). Positions are character
//! offsets, which is what diagnostics report as columns.

use serde_json::{Number, Value};

use super::ExprError;

/// A cursor over the expression's characters.
pub(super) struct Cursor {
    chars: Vec<char>,
    pub(super) pos: usize,
}

/// Characters that may continue a word (keywords, bare identifiers).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Cursor {
    pub(super) fn new(src: &str) -> Self {
        Cursor {
            chars: src.chars().collect(),
            pos: 0,
        }
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    pub(super) fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// The text between two positions.
    pub(super) fn text(&self, start: usize, end: usize) -> String {
        self.chars[start.min(self.chars.len())..end.min(self.chars.len())]
            .iter()
            .collect()
    }

    /// The word (letters, digits, `_`) starting at the cursor, possibly empty.
    pub(super) fn word(&self) -> String {
        let len = self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .take_while(|c| is_word_char(**c))
            .count();
        self.text(self.pos, self.pos + len)
    }

    /// True when `kw` is the next word, as a whole word: not followed by a character that would
    /// make it part of a longer word or a path (`notify`, `in.x`, `not-ready`).
    pub(super) fn at_keyword(&self, kw: &str) -> bool {
        let n = kw.chars().count();
        if self.pos + n > self.chars.len()
            || !self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(kw.chars())
        {
            return false;
        }
        !self
            .chars
            .get(self.pos + n)
            .is_some_and(|c| is_word_char(*c) || *c == '-' || *c == '.')
    }

    pub(super) fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.at_keyword(kw) {
            self.pos += kw.chars().count();
            true
        } else {
            false
        }
    }

    pub(super) fn at_symbol(&self, sym: &str) -> bool {
        let n = sym.chars().count();
        self.pos + n <= self.chars.len()
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(sym.chars())
    }

    pub(super) fn eat_symbol(&mut self, sym: &str) -> bool {
        if self.at_symbol(sym) {
            self.pos += sym.chars().count();
            true
        } else {
            false
        }
    }

    /// True when the next non-space character after the word at the cursor is `(`
    /// (`exists (`, `lower(`).
    pub(super) fn word_then_paren(&self, kw: &str) -> bool {
        if !self.at_keyword(kw) {
            return false;
        }
        self.chars[self.pos + kw.chars().count()..]
            .iter()
            .find(|c| !c.is_whitespace())
            == Some(&'(')
    }

    /// Extent of a path starting at the cursor: up to whitespace or an operator character
    /// outside brackets and quotes, so a JSONPath filter (`$.a[?(@.b == "x")]`) stays whole.
    pub(super) fn scan_path(&mut self) -> (usize, usize) {
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek() {
            if let Some(q) = quote {
                if c == '\\' {
                    self.pos += 1;
                } else if c == q {
                    quote = None;
                }
                self.pos += 1;
                continue;
            }
            match c {
                '"' | '\'' if depth > 0 => quote = Some(c),
                '[' => depth += 1,
                '(' if depth > 0 => depth += 1,
                ']' | ')' if depth > 0 => depth -= 1,
                ')' | '(' => break,
                c if depth == 0 && (c.is_whitespace() || "=!<>~,&|".contains(c)) => break,
                _ => {}
            }
            self.pos += 1;
        }
        (start, self.pos.min(self.chars.len()))
    }

    /// A quoted string at the cursor (`"…"` or `'…'`). Escapes: `\"` `\'` `\\` `\n` `\t` `\r`
    /// `\0` `\b` `\f` `\/` `\uXXXX` `\u{X…}`; any other backslash pair is kept as written, so
    /// regexes such as `"\d+"` need no doubling.
    pub(super) fn string(&mut self) -> Result<String, ExprError> {
        let start = self.pos;
        let Some(quote) = self.peek() else {
            return Err(ExprError::at(start, "expected a string", None));
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ExprError::at(
                    start,
                    format!("unterminated string starting at column {}", start + 1),
                    Some(format!("close it with {quote}")),
                ));
            };
            self.pos += 1;
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                continue; // reported as unterminated on the next turn
            };
            self.pos += 1;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                '/' | '\\' | '"' | '\'' => out.push(e),
                'u' => out.push(self.unicode_escape(self.pos - 2)?),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    /// After `\u`: `XXXX` (with a following low surrogate when needed) or `{X…}`.
    fn unicode_escape(&mut self, at: usize) -> Result<char, ExprError> {
        let bad = || {
            ExprError::at(
                at,
                format!("invalid unicode escape at column {}", at + 1),
                Some("write \\u00e9 or \\u{1F600}".into()),
            )
        };
        if self.peek() == Some('{') {
            let close = self.chars[self.pos..]
                .iter()
                .position(|c| *c == '}')
                .ok_or_else(bad)?;
            let hex = self.text(self.pos + 1, self.pos + close);
            self.pos += close + 1;
            return u32::from_str_radix(&hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(bad);
        }
        let read4 = |cur: &mut Cursor| -> Option<u32> {
            let hex = cur.text(cur.pos, cur.pos + 4);
            if hex.chars().count() != 4 {
                return None;
            }
            cur.pos += 4;
            u32::from_str_radix(&hex, 16).ok()
        };
        let high = read4(self).ok_or_else(bad)?;
        if (0xD800..0xDC00).contains(&high) {
            if !self.eat_symbol("\\u") {
                return Err(bad());
            }
            let low = read4(self).ok_or_else(bad)?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(bad());
            }
            return char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                .ok_or_else(bad);
        }
        char::from_u32(high).ok_or_else(bad)
    }

    /// True when a number starts at the cursor (`3`, `-1.5`, `+2`, `.5`).
    pub(super) fn at_number(&self) -> bool {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => true,
            Some('-' | '+') => match self.peek_at(1) {
                Some(c) if c.is_ascii_digit() => true,
                Some('.') => self.peek_at(2).is_some_and(|c| c.is_ascii_digit()),
                _ => false,
            },
            Some('.') => self.peek_at(1).is_some_and(|c| c.is_ascii_digit()),
            _ => false,
        }
    }

    /// A number at the cursor: an integer when it has no fraction or exponent (exact up to
    /// 64 bits), else a finite float.
    pub(super) fn number(&mut self) -> Result<Value, ExprError> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        let digits = |cur: &mut Cursor| {
            while cur.peek().is_some_and(|c| c.is_ascii_digit()) {
                cur.pos += 1;
            }
        };
        digits(self);
        let mut float = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            self.pos += 1;
            digits(self);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('+' | '-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                float = true;
                self.pos += 1 + sign;
                digits(self);
            }
        }
        let text = self.text(start, self.pos);
        if let Some(c) = self.peek().filter(|c| is_word_char(*c) || *c == '.') {
            return Err(ExprError::at(
                self.pos,
                format!(
                    "unexpected `{c}` after the number {text} at column {}",
                    self.pos + 1
                ),
                Some(
                    "strings need quotes; durations such as 10m only follow older_than/newer_than"
                        .into(),
                ),
            ));
        }
        let unsigned = text.trim_start_matches('+');
        let invalid = || {
            ExprError::at(
                start,
                format!("invalid number `{text}` at column {}", start + 1),
                None,
            )
        };
        if !float {
            if let Ok(i) = unsigned.parse::<i64>() {
                return Ok(Value::from(i));
            }
            if let Ok(u) = unsigned.parse::<u64>() {
                return Ok(Value::from(u));
            }
        }
        let f: f64 = unsigned.parse().map_err(|_| invalid())?;
        Number::from_f64(f).map(Value::Number).ok_or_else(invalid)
    }

    /// A bare duration token (`10m`, `1h30m`) at the cursor; validated by the leaf builder.
    pub(super) fn duration_token(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        self.text(start, self.pos)
    }
}
