//! Output helpers: the process streams ([`Io`]), text-or-JSON printing,
//! confirmation prompts and the borderless `status` table.
//!
//! Write errors are ignored on purpose: a closed stdout (`| head`) must not
//! turn a completed administrative change into a failure.

use std::fmt;
use std::io::{BufRead, Write};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// The line Scalelite prints before reading a confirmation.
pub(crate) const CONFIRM_PROMPT: &str = "If you still wish to continue please enter `yes`";

/// The streams a command talks to: stdout, stderr and stdin.
///
/// `main` passes the locked process streams; tests pass `Vec<u8>` buffers and
/// a `std::io::Cursor` holding the answers to prompts.
pub struct Io<'a> {
    /// Standard output: results.
    pub out: &'a mut dyn Write,
    /// Standard error: errors, warnings, and in `--json` mode progress and prompts.
    pub err: &'a mut dyn Write,
    /// Standard input: answers to confirmations, `servers sync -` documents.
    pub input: &'a mut dyn BufRead,
}

impl fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io").finish_non_exhaustive()
    }
}

/// A command stopped with this exit code; its message was already printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit(pub(crate) u8);

/// What a command returns: `Ok` is exit code 0.
pub(crate) type Outcome = Result<(), Exit>;

/// The streams plus the global flags that decide where lines go.
pub(crate) struct Ui<'i, 'a> {
    io: &'i mut Io<'a>,
    /// `--json`.
    pub(crate) json: bool,
    /// `--yes`.
    pub(crate) yes: bool,
}

// === impl Ui ===

impl<'i, 'a> Ui<'i, 'a> {
    pub(crate) fn new(io: &'i mut Io<'a>, json: bool, yes: bool) -> Self {
        Self { io, json, yes }
    }

    /// A line of text output (dropped in `--json` mode, where the JSON
    /// document carries the result).
    pub(crate) fn text(&mut self, line: impl fmt::Display) {
        if !self.json {
            let _ = writeln!(self.io.out, "{line}");
        }
    }

    /// Raw text output without an added newline (dropped in `--json` mode).
    pub(crate) fn text_raw(&mut self, text: &str) {
        if !self.json {
            let _ = self.io.out.write_all(text.as_bytes());
        }
    }

    /// A line Scalelite prints on stdout that is not part of the result
    /// (progress, warnings, prompts): stdout in text mode, stderr with
    /// `--json` so stdout stays one JSON document.
    pub(crate) fn notice(&mut self, line: impl fmt::Display) {
        if self.json {
            let _ = writeln!(self.io.err, "{line}");
        } else {
            let _ = writeln!(self.io.out, "{line}");
        }
    }

    /// A line on stderr, in both modes.
    pub(crate) fn error(&mut self, line: impl fmt::Display) {
        let _ = writeln!(self.io.err, "{line}");
    }

    /// Prints `line` on stderr and stops the command with exit code 1.
    pub(crate) fn fail(&mut self, line: impl fmt::Display) -> Exit {
        self.error(line);
        Exit(1)
    }

    /// The JSON document of a command (only in `--json` mode).
    pub(crate) fn json(&mut self, value: &Value) {
        if self.json {
            let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            let _ = writeln!(self.io.out, "{text}");
        }
    }

    /// Asks for confirmation: unless `--yes` was given, prints `warning`
    /// and Scalelite's prompt, then reads one line. Only `yes` (any case,
    /// surrounding blanks ignored) proceeds; end of input means no.
    pub(crate) fn confirm(&mut self, warning: &[String]) -> bool {
        if self.yes {
            return true;
        }
        for line in warning {
            self.notice(line);
        }
        self.notice(CONFIRM_PROMPT);
        let _ = self.io.out.flush();
        let _ = self.io.err.flush();
        let mut answer = String::new();
        match self.io.input.read_line(&mut answer) {
            Ok(0) | Err(_) => false,
            Ok(_) => answer.trim().eq_ignore_ascii_case("yes"),
        }
    }

    /// All of stdin (for `servers sync -`).
    pub(crate) fn read_input(&mut self) -> std::io::Result<String> {
        let mut text = String::new();
        self.io.input.read_to_string(&mut text)?;
        Ok(text)
    }
}

/// How a table column aligns its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Renders a borderless table like Tabulo's `border: :blank`: each cell is
/// padded with one space on both sides, a column is as wide as its widest
/// header or cell, headers are centred (the odd space goes right, like
/// Ruby's `String#center`), and there are no rules. Lines end with `\n`.
pub(crate) fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, _))| {
            rows.iter().filter_map(|row| row.get(i)).map(|c| width(c)).fold(width(header), usize::max)
        })
        .collect();
    let mut out = String::new();
    for (i, (header, _)) in columns.iter().enumerate() {
        let room = widths[i] - width(header);
        let left = room / 2;
        push_padded(&mut out, header, left, room - left);
    }
    out.push('\n');
    for row in rows {
        for (i, (_, align)) in columns.iter().enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            let room = widths[i] - width(cell);
            match align {
                Align::Left => push_padded(&mut out, cell, 0, room),
                Align::Right => push_padded(&mut out, cell, room, 0),
            }
        }
        out.push('\n');
    }
    out
}

fn push_padded(out: &mut String, cell: &str, left: usize, right: usize) {
    out.extend(std::iter::repeat_n(' ', left + 1));
    out.push_str(cell);
    out.extend(std::iter::repeat_n(' ', right + 1));
}

/// Splits Scalelite's `id1:id2:…` argument (empty parts ignored).
pub(crate) fn split_ids(ids: Option<&str>) -> Vec<String> {
    ids.unwrap_or_default().split(':').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A byte count for people: `512 B`, `5.0 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Milliseconds since the epoch as RFC 3339 UTC, to the second.
pub(crate) fn timestamp(epoch_ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(epoch_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn table_is_padded_centred_and_aligned() {
        let columns = [("HOSTNAME", Align::Left), ("STATE", Align::Left), ("MEETINGS", Align::Right)];
        let rows = vec![
            vec!["bbb1.example.com".to_owned(), "enabled".to_owned(), "12".to_owned()],
            vec!["b2".to_owned(), "cordoned".to_owned(), String::new()],
        ];
        let text = table(&columns, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "     HOSTNAME       STATE    MEETINGS ");
        assert_eq!(lines[1], " bbb1.example.com  enabled         12 ");
        assert_eq!(lines[2], " b2                cordoned           ");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn empty_table_is_the_header() {
        assert_eq!(table(&[("TAG", Align::Left)], &[]), " TAG \n");
    }

    #[test]
    fn confirmation_needs_yes() {
        let answers = [("yes\n", true), (" YES \n", true), ("Yes", true), ("no\n", false), ("", false), ("y\n", false)];
        for (input, expected) in answers {
            let (mut out, mut err, mut input) = (Vec::new(), Vec::new(), Cursor::new(input.as_bytes().to_vec()));
            let mut io = Io { out: &mut out, err: &mut err, input: &mut input };
            let mut ui = Ui::new(&mut io, false, false);
            assert_eq!(ui.confirm(&["WARNING: x".to_owned()]), expected, "{input:?}");
            assert_eq!(String::from_utf8(out).unwrap(), format!("WARNING: x\n{CONFIRM_PROMPT}\n"));
        }
        let (mut out, mut err, mut input) = (Vec::new(), Vec::new(), Cursor::new(Vec::new()));
        let mut io = Io { out: &mut out, err: &mut err, input: &mut input };
        assert!(Ui::new(&mut io, false, true).confirm(&["WARNING: x".to_owned()]));
        assert!(out.is_empty(), "--yes asks nothing");
    }

    #[test]
    fn ids_are_colon_separated() {
        assert_eq!(split_ids(Some("a:b::c")), ["a", "b", "c"]);
        assert!(split_ids(None).is_empty());
        assert!(split_ids(Some("")).is_empty());
    }
}
