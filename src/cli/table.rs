//! Text tables for the listing commands: a header row, then one row per item, columns padded
//! to their widest cell (the last one is not padded, so long errors do not pad every line).

/// Renders `header` and `rows` as aligned columns separated by two spaces, one line each.
/// An empty cell is shown as `-`, so every row splits into the same number of words up to
/// the last column.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |text: &str| {
        if text.is_empty() {
            "-".to_owned()
        } else {
            text.to_owned()
        }
    };
    let lines: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| cell(h)).collect())
        .chain(rows.iter().map(|row| row.iter().map(|c| cell(c)).collect()))
        .collect();
    let mut widths = vec![0; header.len()];
    for line in &lines {
        for (width, text) in widths.iter_mut().zip(line) {
            *width = (*width).max(text.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let last = line.len().saturating_sub(1);
        for (i, (text, width)) in line.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(text);
            } else {
                out.push_str(text);
                out.push_str(&" ".repeat(width - text.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_under_their_header_and_empty_cells_show_a_dash() {
        let text = super::render(
            &["NAME", "STATUS", "ERROR"],
            &[
                vec!["a".into(), "succeeded".into(), String::new()],
                vec![
                    "longer-name".into(),
                    "failed".into(),
                    "timed out after 5s".into(),
                ],
            ],
        );
        assert_eq!(
            text,
            "NAME         STATUS     ERROR\n\
             a            succeeded  -\n\
             longer-name  failed     timed out after 5s\n"
        );
    }
}
