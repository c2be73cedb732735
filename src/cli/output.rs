//! How commands print: aligned tables for people, `--json` for scripts.

use serde::Serialize;

/// Prints `value` as pretty JSON on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with a header row; cells are cut at `MAX_CELL` characters.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

const MAX_CELL: usize = 60;

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: vec![],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| cut(&c)).collect());
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        let mut out = vec![line(self.headers.clone())];
        out.extend(
            self.rows
                .iter()
                .map(|r| line(r.iter().map(String::as_str).collect())),
        );
        out.join("\n")
    }

    pub fn print(&self) {
        println!("{}", self.render());
        if self.rows.is_empty() {
            println!("(none)");
        }
    }
}

fn cut(s: &str) -> String {
    let one_line = s.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= MAX_CELL {
        return one_line;
    }
    let mut out: String = one_line.chars().take(MAX_CELL - 1).collect();
    out.push('…');
    out
}

/// `-` for nothing, so columns stay aligned.
pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// A time as people read it in a table: `2026-11-26 14:03:05`.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_long_cells_are_cut() {
        let mut t = Table::new(&["id", "title"]);
        t.row(vec!["t_1".into(), "short".into()]);
        t.row(vec!["t_22".into(), "x".repeat(80)]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id    title");
        assert_eq!(lines[1], "t_1   short");
        assert!(lines[2].ends_with('…') && lines[2].chars().count() == 6 + MAX_CELL);
    }
}
