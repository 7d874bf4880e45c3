//! Header names as upstreams read them. CGI-style servers (PHP, WSGI, Rack) turn
//! `X-Remote-User`, `X_Remote_User` and `X.Remote.User` into the same `HTTP_X_REMOTE_USER`
//! variable (PHP maps `.` and ` ` to `_` as well), so a header the proxy must own has to be
//! recognised in every spelling: any character that is not a letter or digit folds to `-`.

/// Whether `name` reaches a CGI-style application as the same variable as `protected`
/// (lowercase, with `-`).
pub fn same_variable(name: &str, protected: &str) -> bool {
    name.len() == protected.len() && starts_as(name, protected)
}

/// Whether `name` starts, as a CGI variable, with `prefix` (lowercase, with `-`).
pub fn starts_as(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len() && name.bytes().zip(prefix.bytes()).all(|(n, p)| fold(n) == p)
}

fn fold(c: u8) -> u8 {
    if c.is_ascii_alphanumeric() {
        c.to_ascii_lowercase()
    } else {
        b'-'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert!(same_variable("X_Remote_User", "x-remote-user"));
        assert!(same_variable("x-remote_user", "x-remote-user"));
        assert!(same_variable("X.Remote.User", "x-remote-user"));
        assert!(same_variable("x~remote!user", "x-remote-user"));
        assert!(!same_variable("x-remote-user2", "x-remote-user"));
        assert!(!same_variable("x-remote-use", "x-remote-user"));
        assert!(starts_as("X_Forwarded_Prefix", "x-forwarded-"));
        assert!(!starts_as("x-forwardedprefix", "x-forwarded-"));
    }
}
