//! One renderer for every command's output: a table for people, JSON or YAML for machines.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

/// The `-o/--format` choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
    /// Rows for spreadsheets; only where a command has rows (`servo trials`).
    Csv,
    /// A Kubernetes ConfigMap holding the config, as ServoX's `config -f configmap`; only
    /// `servo config`.
    Configmap,
}

/// Rows and columns, aligned when printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |row: &[String]| {
            let mut text = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
                }
            }
            let _ = writeln!(out, "{}", text.trim_end());
        };
        if !self.headers.is_empty() {
            line(&self.headers);
        }
        for row in &self.rows {
            line(row);
        }
        out
    }
}

/// What a command prints: serializable for machines, a table (or text) for people.
pub trait Render: Serialize {
    fn human(&self) -> String;
}

/// Prints `value` to stdout in `format`. A format the command has no output in is an
/// `InvalidInput` error, which the CLI reports as a usage error.
pub fn emit<T: Render>(format: Format, value: &T) -> io::Result<()> {
    let text = match format {
        Format::Table => value.human(),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
            s.push('\n');
            s
        }
        Format::Yaml => to_yaml(value).map_err(io::Error::other)?,
        Format::Csv => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "this command has no CSV output: use -o json or -o yaml (CSV is for `servo trials`)",
            ));
        }
        Format::Configmap => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only `servo config` prints a ConfigMap: use -o json or -o yaml",
            ));
        }
    };
    print(&text)
}

/// Writes `text` to stdout, the one way commands print. A reader that went away
/// (`servo trials -o json | head -c 1`) ends the output: not an error, so nothing is reported and
/// the command's exit code stands. (`print!` would panic on the closed pipe instead.)
pub fn print(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// YAML text of a value (block style, keys in order).
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut t = Table::new(["NAME", "VALUE"]);
        t.row(["a", "1"]).row(["longer", "22"]);
        assert_eq!(t.render(), "NAME    VALUE\na       1\nlonger  22\n");
    }
}
