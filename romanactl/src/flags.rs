//! Strict parsers for the repeated flags. A typo such as `--label app:web` or
//! `--port http=80` must fail at once with a message showing the expected shape, not
//! reach a service as a label named "app:web".

use std::collections::BTreeMap;

use romana_proto::pb;

use crate::Error;

/// A `--label KEY=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub key: String,
    pub value: String,
}

/// A `--port NAME=PROTO/NUMBER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub protocol: String,
    pub number: u16,
}

/// Parses `KEY=VALUE`. The value may be empty (Kubernetes allows it); the key may not, and
/// neither may contain whitespace.
pub fn parse_label(text: &str) -> Result<Label, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    check_key(key, text)?;
    if value.contains(char::is_whitespace) || value.contains('=') {
        return Err(format!(
            "{text:?}: the value {value:?} may not contain whitespace or '='"
        ));
    }
    Ok(Label {
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// Parses a `--remove-label KEY`.
pub fn parse_label_key(text: &str) -> Result<String, String> {
    if text.contains('=') {
        return Err(format!("{text:?}: give only the KEY, without =VALUE"));
    }
    check_key(text, text)?;
    Ok(text.to_string())
}

/// Parses `NAME=PROTO/NUMBER`, e.g. `http=tcp/80`.
pub fn parse_port(text: &str) -> Result<Port, String> {
    let port = romana_core::labels::parse_named_port(text).map_err(|e| e.to_string())?;
    Ok(Port {
        name: port.name,
        protocol: port.protocol,
        number: port.port,
    })
}

/// `--pod NAMESPACE/NAME`, held to Kubernetes' name rules.
pub fn parse_pod(text: &str) -> Result<romana_core::Pod, String> {
    let (namespace, name) = text
        .split_once('/')
        .ok_or_else(|| format!("{} is not NAMESPACE/NAME", romana_core::text::quote(text)))?;
    let pod = romana_core::Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        ..Default::default()
    };
    romana_core::validate_pod(&pod).map_err(|e| e.to_string())?;
    Ok(pod)
}

/// The labels as a map. A key given twice is refused rather than letting the last one
/// silently win.
pub fn label_map(labels: &[Label]) -> Result<BTreeMap<String, String>, Error> {
    let mut map = BTreeMap::new();
    for Label { key, value } in labels {
        if map.insert(key.clone(), value.clone()).is_some() {
            return Err(Error::Usage(format!(
                "label {key:?} is given more than once"
            )));
        }
    }
    Ok(map)
}

/// The ports as wire types. A name given twice is refused, as policy looks ports up by name.
pub fn named_ports(ports: &[Port]) -> Result<Vec<pb::NamedPort>, Error> {
    let mut out: Vec<pb::NamedPort> = Vec::with_capacity(ports.len());
    for port in ports {
        if out.iter().any(|p| p.name == port.name) {
            return Err(Error::Usage(format!(
                "port {:?} is given more than once",
                port.name
            )));
        }
        out.push(pb::NamedPort {
            name: port.name.clone(),
            protocol: port.protocol.clone(),
            port: port.number.into(),
        });
    }
    Ok(out)
}

fn check_key(key: &str, text: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!("{text:?}: the KEY is empty"));
    }
    if key.contains(char::is_whitespace) {
        return Err(format!(
            "{text:?}: the KEY {key:?} may not contain whitespace"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_label(key: &str, value: &str) -> Label {
        Label {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn label_is_key_equals_value() {
        assert_eq!(parse_label("app=web"), Ok(mk_label("app", "web")));
        assert_eq!(
            parse_label("kubernetes.io/metadata.name=t1"),
            Ok(mk_label("kubernetes.io/metadata.name", "t1"))
        );
        assert_eq!(parse_label("tier="), Ok(mk_label("tier", "")));
    }

    #[test]
    fn label_without_equals_or_key_is_refused() {
        assert!(parse_label("app:web")
            .unwrap_err()
            .contains("is not KEY=VALUE"));
        assert!(parse_label("=web").unwrap_err().contains("KEY is empty"));
        assert!(parse_label("a b=c").unwrap_err().contains("whitespace"));
        assert!(parse_label("a=b=c").is_err());
    }

    #[test]
    fn remove_label_takes_only_a_key() {
        assert_eq!(parse_label_key("app"), Ok("app".to_string()));
        assert!(parse_label_key("app=web")
            .unwrap_err()
            .contains("only the KEY"));
        assert!(parse_label_key("").is_err());
    }

    #[test]
    fn port_is_name_equals_proto_slash_number() {
        assert_eq!(
            parse_port("http=TCP/80"),
            Ok(Port {
                name: "http".into(),
                protocol: "tcp".into(),
                number: 80
            })
        );
        assert_eq!(parse_port("dns=udp/53").unwrap().protocol, "udp");
    }

    #[test]
    fn port_shapes_that_are_refused() {
        assert!(parse_port("http=80")
            .unwrap_err()
            .contains("NAME=PROTO/NUMBER"));
        assert!(parse_port("tcp/80")
            .unwrap_err()
            .contains("NAME=PROTO/NUMBER"));
        assert!(parse_port("=tcp/80")
            .unwrap_err()
            .contains("NAME=PROTO/NUMBER"));
        assert!(parse_port("ping=icmp/1")
            .unwrap_err()
            .contains("not tcp, udp or sctp"));
        assert!(parse_port("http=tcp/0").unwrap_err().contains("1..=65535"));
        assert!(parse_port("http=tcp/65536")
            .unwrap_err()
            .contains("1..=65535"));
        assert!(parse_port("http=tcp/eighty")
            .unwrap_err()
            .contains("1..=65535"));
    }

    #[test]
    fn label_key_given_twice_is_a_usage_error() {
        let err = label_map(&[mk_label("app", "a"), mk_label("app", "b")]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.line(), "label \"app\" is given more than once");
        let ok = label_map(&[mk_label("b", "2"), mk_label("a", "1")]).unwrap();
        assert_eq!(ok.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn port_name_given_twice_is_a_usage_error() {
        let http = parse_port("http=tcp/80").unwrap();
        let err = named_ports(&[http.clone(), http]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
