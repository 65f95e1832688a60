//! Where a key sits in the file, for refusals found after parsing (a
//! value checked against another, a port used twice): the position of the
//! deepest part of the key that the text spells out.

use toml::de::{DeTable, DeValue};

/// The byte offset of `key` (`apps.site.reverse_proxy[0].upstream[1]`)
/// in `text`, or of its longest prefix found there; `None` when not even
/// its first part is written (a required key left out).
pub(crate) fn key_offset(text: &str, key: &str) -> Option<usize> {
    let document = DeTable::parse(text).ok()?;
    let mut table = Some(document.get_ref());
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    let mut found = None;
    for step in steps(key) {
        let (span, value) = match (step, table, array) {
            (Step::Key(name), Some(t), _) => match t.iter().find(|(k, _)| k.get_ref() == name) {
                Some((k, v)) => (k.span(), v.get_ref()),
                None => break,
            },
            (Step::Index(i), _, Some(a)) => match a.get(i) {
                Some(item) => (item.span(), item.get_ref()),
                None => break,
            },
            _ => break,
        };
        found = Some(span.start);
        (table, array) = match &value {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(&a[..])),
            _ => (None, None),
        };
    }
    found
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'k> {
    Key(&'k str),
    Index(usize),
}

/// `a.b[2].c` → `a`, `b`, `2`, `c`. Names with dots in them (quoted in
/// TOML) are split too: the walk stops early and names the table.
fn steps(key: &str) -> impl Iterator<Item = Step<'_>> {
    key.split('.').flat_map(|part| {
        let mut pieces = part.split('[');
        let name = pieces.next().filter(|n| !n.is_empty()).map(Step::Key);
        let indices = pieces.map(|index| {
            index
                .trim_end_matches(']')
                .parse()
                .map_or(Step::Index(usize::MAX), Step::Index)
        });
        name.into_iter().chain(indices)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"listen_port = 8080

[apps.site]
server_name = "a.example"
tls = { https_redirection = true }

[[apps.site.reverse_proxy]]
upstream = [{ location = "127.0.0.1:1" }, { location = "127.0.0.1:2" }]

[[apps.site.reverse_proxy]]
path = "/b"
upstream = [{ location = "127.0.0.1:3" }]
"#;

    fn line(key: &str) -> Option<usize> {
        key_offset(TEXT, key).map(|at| TEXT[..at].matches('\n').count() + 1)
    }

    #[test]
    fn keys_are_found_at_their_lines() {
        assert_eq!(line("listen_port"), Some(1));
        assert_eq!(line("apps.site.server_name"), Some(4));
        assert_eq!(line("apps.site.tls.https_redirection"), Some(5));
        assert_eq!(line("apps.site.reverse_proxy[1].path"), Some(11));
        assert_eq!(
            line("apps.site.reverse_proxy[0].upstream[1].location"),
            Some(8)
        );
        assert_eq!(line("apps.site.reverse_proxy[1].upstream[0]"), Some(12));
    }

    #[test]
    fn a_key_not_written_is_placed_at_what_is() {
        assert_eq!(line("apps.site.tls.client_ca_cert_path"), Some(5));
        assert_eq!(
            line("apps.site.reverse_proxy[7]"),
            line("apps.site.reverse_proxy")
        );
        assert_eq!(line("listen_port_tls"), None);
        assert_eq!(line("admin.listen_address"), None);
    }

    #[test]
    fn text_that_does_not_parse_has_no_positions() {
        assert_eq!(key_offset("listen_port = ", "listen_port"), None);
    }
}
