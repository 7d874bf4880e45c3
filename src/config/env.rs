//! `${VAR}` substitution in scalar values, so secrets can stay out of the file.
//!
//! Substitution happens on the parsed tree, never on the raw text: a variable's value can never
//! change the structure of the document (no YAML injection through the environment).

use marked_yaml::types::{MarkedScalarNode, Node};

/// Replaces `${NAME}` in every scalar; `$${` is a literal `${`. Returns the places where a
/// variable was unset or a reference was malformed.
pub fn expand_env(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<(marked_yaml::Span, String)> {
    let mut errors = Vec::new();
    expand_node(node, lookup, &mut errors);
    errors
}

fn expand_node(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<(marked_yaml::Span, String)>,
) {
    match node {
        Node::Scalar(s) => {
            if s.contains('$') {
                match expand_str(s, lookup) {
                    Ok(value) => {
                        let mut replaced = MarkedScalarNode::new(*s.span(), value);
                        replaced.set_coerce(s.may_coerce());
                        *s = replaced;
                    }
                    Err(msg) => errors.push((*s.span(), msg)),
                }
            }
        }
        Node::Mapping(m) => {
            for (_, v) in m.iter_mut() {
                expand_node(v, lookup, errors);
            }
        }
        Node::Sequence(seq) => {
            for v in seq.iter_mut() {
                expand_node(v, lookup, errors);
            }
        }
    }
}

pub fn expand_str(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal)".to_string())?;
            let name = &tail[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable name"
                ));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand_str;

    fn env(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3cr3t".to_string())
    }

    #[test]
    fn substitutes_and_escapes() {
        assert_eq!(expand_str("a-${SECRET}-b", &env).unwrap(), "a-s3cr3t-b");
        assert_eq!(expand_str("$${SECRET}", &env).unwrap(), "${SECRET}");
        assert_eq!(expand_str("cost $5", &env).unwrap(), "cost $5");
    }

    #[test]
    fn rejects_unset_and_malformed() {
        assert!(expand_str("${MISSING}", &env)
            .unwrap_err()
            .contains("MISSING"));
        assert!(expand_str("${SECRET", &env).is_err());
        assert!(expand_str("${1X}", &env).is_err());
        assert!(expand_str("${A-B}", &env).is_err());
    }
}
