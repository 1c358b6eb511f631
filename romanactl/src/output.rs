//! Rendering views as tables for people, or JSON/YAML for scripts.
//!
//! Tables follow kubectl: an upper-case header row, columns separated by three spaces and
//! padded to the widest cell, no trailing whitespace. A single object prints the same
//! one-row table as a list of it. A view's columns come from its `#[derive(Tabled)]`;
//! the layout is [`table`]'s alone (tabled's own renderer draws borders and measures
//! display width, which would change what scripts cut). JSON and YAML serialize the views
//! in [`crate::view`] as they are; a list is an array of objects.

use serde::Serialize;
use tabled::Tabled;

use crate::Error;

/// `-o table|json|yaml` (and a context's `output:`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

const GAP: &str = "   ";

/// A list of objects: one row each, or an array.
pub fn list<T: Tabled + Serialize>(items: &[T], format: Format) -> Result<String, Error> {
    match format {
        Format::Table => Ok(rows(items)),
        _ => encode(items, format),
    }
}

/// One object: the same one-row table as in a list of it, or an object.
pub fn one<T: Tabled + Serialize>(item: &T, format: Format) -> Result<String, Error> {
    match format {
        Format::Table => Ok(rows(std::slice::from_ref(item))),
        _ => encode(item, format),
    }
}

/// The table of `items`, one row each, under their header.
pub fn rows<T: Tabled>(items: &[T]) -> String {
    table(&T::headers(), &items.iter().map(row).collect::<Vec<_>>())
}

/// One view's cells, as its table row shows them.
pub fn row<T: Tabled>(item: &T) -> Vec<String> {
    item.fields().into_iter().map(String::from).collect()
}

/// The outcome of a change that has no row of its own (a removal, a release): a sentence
/// for people, the object for scripts.
pub fn message<T: Serialize>(text: &str, value: &T, format: Format) -> Result<String, Error> {
    match format {
        Format::Table => Ok(format!("{text}\n")),
        _ => encode(value, format),
    }
}

/// `value` as JSON (pretty, with a final newline) or YAML.
pub fn encode<T: Serialize + ?Sized>(value: &T, format: Format) -> Result<String, Error> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| Error::Encode {
                format: "json",
                reason: e.to_string(),
            }),
        Format::Yaml => serde_norway::to_string(value).map_err(|e| Error::Encode {
            format: "yaml",
            reason: e.to_string(),
        }),
        Format::Table => Err(Error::Encode {
            format: "table",
            reason: "this value has no table form".into(),
        }),
    }
}

/// An aligned table with a header row. Rows shorter than the header are padded with empty
/// cells so a bad row cannot panic the formatter.
pub fn table<H: AsRef<str>>(headers: &[H], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h.as_ref())).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.as_ref().to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, w) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                line.push_str(GAP);
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - width(cell)));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Tabled)]
    #[tabled(rename_all = "UPPERCASE")]
    struct Thing {
        name: String,
        size: u32,
    }

    fn mk_things() -> Vec<Thing> {
        vec![
            Thing {
                name: "a-long-name".into(),
                size: 1,
            },
            Thing {
                name: "b".into(),
                size: 12345,
            },
        ]
    }

    #[test]
    fn table_columns_are_aligned_under_an_upper_case_header() {
        let out = list(&mk_things(), Format::Table).unwrap();
        assert_eq!(
            out,
            "NAME          SIZE\n\
             a-long-name   1\n\
             b             12345\n"
        );
    }

    #[test]
    fn table_lines_have_no_trailing_whitespace() {
        let out = table(&["A", "LONGER"], &[vec!["xxxxxx".into(), "".into()]]);
        assert_eq!(out, "A        LONGER\nxxxxxx\n");
    }

    #[test]
    fn empty_list_prints_only_the_header() {
        assert_eq!(list::<Thing>(&[], Format::Table).unwrap(), "NAME   SIZE\n");
        assert_eq!(list::<Thing>(&[], Format::Json).unwrap(), "[]\n");
    }

    #[test]
    fn single_object_prints_the_same_one_row_table() {
        let things = mk_things();
        let one_table = one(&things[1], Format::Table).unwrap();
        assert_eq!(one_table, "NAME   SIZE\nb      12345\n");
    }

    #[test]
    fn json_list_is_an_array_of_objects_with_snake_case_fields() {
        let out = list(&mk_things(), Format::Json).unwrap();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!([{"name": "a-long-name", "size": 1}, {"name": "b", "size": 12345}])
        );
    }

    #[test]
    fn yaml_keeps_field_order() {
        let out = one(&mk_things()[0], Format::Yaml).unwrap();
        assert_eq!(out, "name: a-long-name\nsize: 1\n");
    }

    #[test]
    fn message_is_a_sentence_in_a_table_and_the_object_otherwise() {
        let thing = &mk_things()[1];
        assert_eq!(
            message("removed thing b", thing, Format::Table).unwrap(),
            "removed thing b\n"
        );
        assert!(message("removed thing b", thing, Format::Json)
            .unwrap()
            .contains("\"size\": 12345"));
    }

    #[test]
    fn short_rows_are_padded_not_a_panic() {
        let out = table(&["A", "B"], &[vec!["x".into()]]);
        assert_eq!(out, "A   B\nx\n");
    }
}
