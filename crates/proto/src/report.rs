//! How both binaries say an error to a person: one line, the error and
//! its causes, each said once. An error whose text already holds its
//! cause's (`cannot read /etc/hora/nts/privkey.pem: Permission denied`,
//! over an `io::Error` that says `Permission denied`) does not repeat it,
//! as a plain `{:#}` of the chain does once for each layer that saw it.

use std::error::Error;

/// `error` and its causes, `: ` between them, none repeated.
pub fn one_line(error: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct Layer {
        what: String,
        source: Option<Box<Layer>>,
    }

    fn layer(what: &str, source: Option<Layer>) -> Layer {
        Layer {
            what: what.to_owned(),
            source: source.map(Box::new),
        }
    }

    #[test]
    fn a_cause_already_said_is_not_said_again() {
        let denied = "/k.pem: Permission denied (os error 13)";
        let error = layer(
            "NTS-KE certificate",
            Some(layer(
                denied,
                Some(layer("Permission denied (os error 13)", None)),
            )),
        );
        assert_eq!(
            one_line(&error),
            "NTS-KE certificate: /k.pem: Permission denied (os error 13)"
        );
    }

    #[test]
    fn causes_not_yet_said_follow_in_order() {
        let error = layer(
            "cannot bind 10.0.0.1:123",
            Some(layer("Permission denied", None)),
        );
        assert_eq!(
            one_line(&error),
            "cannot bind 10.0.0.1:123: Permission denied"
        );
    }
}
