//! Just enough XML reading for a UPnP device description and service
//! description (SCPD): the inner text of elements by local name. The input
//! is bounded by the caller; nothing here allocates more than the input, and
//! malformed input gives fewer elements, never a panic.

/// The inner text of each `<name>…</name>` element (any namespace prefix)
/// in document order. Elements of the same name must not nest (true of
/// `service`, `action`, `argument` and their leaves).
pub(super) fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    spans(xml, name)
        .into_iter()
        .map(|s| &xml[s.inner.clone()])
        .collect()
}

/// The text of the first `<name>` element, trimmed and unescaped.
pub(super) fn text(xml: &str, name: &str) -> Option<String> {
    elements(xml, name).first().map(|t| unescape(t.trim()))
}

/// `xml` without its `<name>…</name>` elements (to read an element's own
/// children and not its descendants').
pub(super) fn without(xml: &str, name: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut at = 0;
    for s in spans(xml, name) {
        out.push_str(&xml[at..s.outer.start]);
        at = s.outer.end;
    }
    out.push_str(&xml[at..]);
    out
}

/// Where an element is: its tags included (`outer`) and between them.
struct Span {
    outer: std::ops::Range<usize>,
    inner: std::ops::Range<usize>,
}

fn spans(xml: &str, name: &str) -> Vec<Span> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some((tag, after)) = next_tag(xml, at) {
        at = after;
        if tag.close || tag.name != name {
            continue;
        }
        if tag.empty {
            found.push(Span {
                outer: tag.start..after,
                inner: after..after,
            });
            continue;
        }
        // The matching close tag: the next `</[prefix:]name>`.
        let mut end = after;
        let mut closed = None;
        while let Some((t, t_after)) = next_tag(xml, end) {
            if t.close && t.name == name {
                closed = Some((t.start, t_after));
                break;
            }
            end = t_after;
        }
        let Some((close_start, close_after)) = closed else {
            break;
        };
        found.push(Span {
            outer: tag.start..close_after,
            inner: after..close_start,
        });
        at = close_after;
    }
    found
}

/// The five predefined entities and numeric character references.
pub(super) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&s| s <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

struct Tag<'a> {
    /// Local name (the namespace prefix removed).
    name: &'a str,
    close: bool,
    /// `<name/>`.
    empty: bool,
    /// Where `<` is.
    start: usize,
}

/// The next element tag at or after `from` (comments, declarations and
/// processing instructions skipped) and the index after its `>`.
fn next_tag(xml: &str, from: usize) -> Option<(Tag<'_>, usize)> {
    let mut at = from;
    loop {
        let start = at + xml.get(at..)?.find('<')?;
        let rest = &xml[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            at = start + 4 + comment.find("-->")? + 3;
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            at = start + rest.find('>')? + 1;
            continue;
        }
        let end = start + rest.find('>')?;
        let body = &xml[start + 1..end];
        let (close, body) = match body.strip_prefix('/') {
            Some(b) => (true, b),
            None => (false, body),
        };
        let empty = body.ends_with('/');
        let qname = body
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        let name = qname.rsplit(':').next().unwrap_or_default();
        return Some((
            Tag {
                name,
                close,
                empty,
                start,
            },
            end + 1,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_found_by_local_name_in_order() {
        let xml = r#"<?xml version="1.0"?><!-- <service>no</service> -->
            <root><s:service a="1"><x>one</x></s:service><service><x>two</x></service>
            <service/></root>"#;
        assert_eq!(
            elements(xml, "service"),
            vec!["<x>one</x>", "<x>two</x>", ""]
        );
        assert_eq!(text(xml, "x").as_deref(), Some("one"));
    }

    #[test]
    fn own_children_are_told_from_descendants() {
        let action = "<name>AddPortMapping</name><argumentList><argument><name>NewProtocol</name></argument></argumentList>";
        assert_eq!(
            text(&without(action, "argumentList"), "name").as_deref(),
            Some("AddPortMapping")
        );
    }

    #[test]
    fn malformed_input_gives_nothing_and_no_panic() {
        for xml in [
            "",
            "<",
            "<<<>>>",
            "<service>",
            "<service><x>1</x>",
            "<!--",
            "<?xml",
            "</service>",
            "<é:ß>\u{1F600}</é:ß>",
        ] {
            assert!(elements(xml, "service").is_empty(), "{xml:?}");
        }
    }

    #[test]
    fn entities_are_unescaped_and_bad_ones_kept() {
        assert_eq!(unescape("/ctl?a=1&amp;b=&#50;&#x33;"), "/ctl?a=1&b=23");
        assert_eq!(
            unescape("a & b &bogus; &#xFFFFFFFF;"),
            "a & b &bogus; &#xFFFFFFFF;"
        );
    }
}
