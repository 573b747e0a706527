//! The IGD's XML, read as a stream (xml-rs) with a depth bound: no tree is
//! built and nothing recurses, so a deeply nested answer costs no stack.
//! The input is already bounded in size by the caller. A document with a
//! DTD is refused: neither a description nor a SOAP answer has one, and its
//! entities would expand.

use xml::reader::{EventReader, ParserConfig, XmlEvent};

/// Deeper nesting than this is refused (a description is ~8 levels deep).
const MAX_DEPTH: usize = 32;

/// The longest text kept from one element (URLs, service types, numbers).
const MAX_TEXT: usize = 512;

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum XmlError {
    /// Not well-formed XML.
    Malformed,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// It declares a DTD.
    Dtd,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("not well-formed XML"),
            Self::TooDeep => write!(f, "XML nested deeper than {MAX_DEPTH} levels"),
            Self::Dtd => f.write_str("XML with a DTD (refused)"),
        }
    }
}

/// What [`walk`] reports, with the path of local element names, outermost
/// first (e.g. `["root", "device", "UDN"]`).
enum Step<'a> {
    /// The text of the innermost element of the path.
    Text(&'a [String], &'a str),
    /// The innermost element of the path closes.
    End(&'a [String]),
}

/// Calls `step` for each text and each closing element of `doc`.
fn walk(doc: &str, mut step: impl FnMut(Step<'_>)) -> Result<(), XmlError> {
    if doc.contains("<!") && doc.to_ascii_uppercase().contains("<!DOCTYPE") {
        return Err(XmlError::Dtd);
    }
    let config = ParserConfig::new()
        .trim_whitespace(true)
        .ignore_comments(true)
        .coalesce_characters(true);
    let reader = EventReader::new_with_config(doc.as_bytes(), config);
    let mut path: Vec<String> = Vec::new();
    for event in reader {
        match event.map_err(|_| XmlError::Malformed)? {
            XmlEvent::StartElement { name, .. } => {
                if path.len() == MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                path.push(name.local_name);
            }
            XmlEvent::EndElement { .. } => {
                step(Step::End(&path));
                path.pop();
            }
            XmlEvent::Characters(text) | XmlEvent::CData(text) if text.len() <= MAX_TEXT => {
                step(Step::Text(&path, &text));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `<service>` of a device description, its URLs as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Service {
    pub service_type: String,
    pub control_url: String,
    /// Its service description (SCPD), when named.
    pub scpd_url: Option<String>,
}

/// The first service of a device description whose `serviceType`
/// `accept`s and which has a `controlURL`, at any depth.
pub(super) fn find_service(
    description: &str,
    accept: impl Fn(&str) -> bool,
) -> Result<Option<Service>, XmlError> {
    let mut service_type = None::<String>;
    let mut control_url = None::<String>;
    let mut scpd_url = None::<String>;
    let mut found = None;
    walk(description, |step| match step {
        Step::Text([.., s, field], text) if s == "service" => match field.as_str() {
            "serviceType" => service_type = Some(text.to_owned()),
            "controlURL" => control_url = Some(text.to_owned()),
            "SCPDURL" => scpd_url = Some(text.to_owned()),
            _ => {}
        },
        Step::End([.., s]) if s == "service" => {
            let (st, url, scpd) = (service_type.take(), control_url.take(), scpd_url.take());
            if let (None, Some(st), Some(url)) = (&found, st, url) {
                if accept(&st) {
                    found = Some(Service {
                        service_type: st,
                        control_url: url,
                        scpd_url: scpd,
                    });
                }
            }
        }
        _ => {}
    })?;
    Ok(found)
}

/// Each `<action>` of a service description (SCPD) with the names of its
/// `in` arguments, as igd-next's `control_schema` holds them.
pub(super) fn actions(scpd: &str) -> Result<Vec<(String, Vec<String>)>, XmlError> {
    let mut out = Vec::new();
    let mut action: Option<String> = None;
    let mut ins: Vec<String> = Vec::new();
    let mut argument: (Option<String>, Option<String>) = (None, None);
    walk(scpd, |step| match step {
        Step::Text([.., a, field], text) if a == "action" && field == "name" => {
            action = Some(text.to_owned());
        }
        Step::Text([.., a, field], text) if a == "argument" && field == "name" => {
            argument.0 = Some(text.to_owned());
        }
        Step::Text([.., a, field], text) if a == "argument" && field == "direction" => {
            argument.1 = Some(text.to_owned());
        }
        Step::End([.., a]) if a == "argument" => {
            if let (Some(name), Some("in")) = (argument.0.take(), argument.1.take().as_deref()) {
                ins.push(name);
            }
        }
        Step::End([.., a]) if a == "action" => {
            if let Some(name) = action.take() {
                out.push((name, std::mem::take(&mut ins)));
            }
            ins.clear();
        }
        _ => {}
    })?;
    Ok(out)
}

/// The text of the first element named `name` (local name, at any depth).
pub(super) fn text_of(doc: &str, name: &str) -> Result<Option<String>, XmlError> {
    let mut found = None;
    walk(doc, |step| {
        if let Step::Text([.., last], text) = step {
            if found.is_none() && last == name {
                found = Some(text.to_owned());
            }
        }
    })?;
    Ok(found)
}

/// Whether an element named `name` occurs (at any depth).
pub(super) fn has_element(doc: &str, name: &str) -> Result<bool, XmlError> {
    let mut found = false;
    walk(doc, |step| {
        if let Step::End([.., last]) = step {
            found |= last == name;
        }
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_accepted_service_is_found_at_any_depth() {
        let doc = "<root><device><serviceList><service><serviceType>a:1</serviceType>\
                   <controlURL>/a</controlURL></service></serviceList><deviceList><device>\
                   <serviceList><service><serviceType>b:1</serviceType><controlURL>/b</controlURL>\
                   </service><service><serviceType>b:2</serviceType><controlURL>/b2</controlURL>\
                   </service></serviceList></device></deviceList></device></root>";
        assert_eq!(
            find_service(doc, |st| st.starts_with("b:")).unwrap(),
            Some(Service {
                service_type: "b:1".into(),
                control_url: "/b".into(),
                scpd_url: None,
            })
        );
        assert_eq!(find_service(doc, |st| st == "c:1").unwrap(), None);
    }

    #[test]
    fn a_service_without_a_control_url_is_skipped() {
        let doc = "<root><service><serviceType>b:1</serviceType></service>\
                   <service><controlURL>/x</controlURL></service></root>";
        assert_eq!(find_service(doc, |_| true).unwrap(), None);
    }

    #[test]
    fn actions_keep_their_in_arguments_in_order() {
        let scpd = "<scpd><actionList><action><name>AddPortMapping</name><argumentList>\
                    <argument><name>NewRemoteHost</name><direction>in</direction></argument>\
                    <argument><direction>in</direction><name>NewExternalPort</name></argument>\
                    <argument><name>NewOut</name><direction>out</direction></argument>\
                    </argumentList></action><action><name>GetExternalIPAddress</name>\
                    </action></actionList></scpd>";
        assert_eq!(
            actions(scpd).unwrap(),
            vec![
                (
                    "AddPortMapping".to_owned(),
                    vec!["NewRemoteHost".to_owned(), "NewExternalPort".to_owned()]
                ),
                ("GetExternalIPAddress".to_owned(), Vec::new()),
            ]
        );
        assert_eq!(actions("<a><b></a>"), Err(XmlError::Malformed));
    }

    #[test]
    fn deep_nesting_and_garbage_are_errors_not_panics() {
        let deep = format!("{}{}", "<a>".repeat(5000), "</a>".repeat(5000));
        assert_eq!(text_of(&deep, "x"), Err(XmlError::TooDeep));
        assert_eq!(find_service(&deep, |_| true), Err(XmlError::TooDeep));
        assert_eq!(text_of("<a><b>1</a>", "b"), Err(XmlError::Malformed));
        assert_eq!(text_of("not xml at all", "b"), Err(XmlError::Malformed));
        assert_eq!(
            text_of("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "a"),
            Err(XmlError::Dtd)
        );
        assert_eq!(text_of("<!doctype a><a>1</a>", "a"), Err(XmlError::Dtd));
        assert_eq!(
            text_of("<a><![CDATA[<!x]]></a>", "a").unwrap().as_deref(),
            Some("<!x")
        );
    }

    #[test]
    fn text_and_elements_are_found_by_local_name() {
        let doc = "<s:Envelope xmlns:s=\"x\"><s:Body><u:R xmlns:u=\"y\"><UniqueID> 7 </UniqueID>\
                   </u:R></s:Body></s:Envelope>";
        assert_eq!(text_of(doc, "UniqueID").unwrap().as_deref(), Some("7"));
        assert!(has_element(doc, "R").unwrap());
        assert!(!has_element(doc, "Fault").unwrap());
        let long = format!("<a>{}</a>", "x".repeat(MAX_TEXT + 1));
        assert_eq!(text_of(&long, "a").unwrap(), None);
    }
}
