//! Identity to upstreams: the verified user, groups and email as headers, and nothing a client
//! sent in their place. Plus the authorization rules (`allow`) that read the same identity.

use crate::header_names::same_variable;
use crate::oidc::tokens::Identity;
use crate::oidc::Authenticated;
use crate::{router::Allow, user::IdentityHeaderNames};
use pingora::http::RequestHeader;

/// Names stripped from every client request whatever the config says, because upstreams of
/// the stack we replace trust them (see DESIGN.md: the desktop proxy trusts X-Remote-User).
const ALWAYS_STRIPPED: [&str; 5] = [
    "x-remote-user",
    "x-remote-groups",
    "x-remote-user-groups",
    "x-remote-email",
    "x-forwarded-user",
];

/// Removes identity headers a client sent, in every spelling an upstream could read as one:
/// only the proxy may speak for a user.
pub fn strip_client_identity(req: &mut RequestHeader, names: &IdentityHeaderNames) {
    let protected = |name: &str| {
        ALWAYS_STRIPPED
            .iter()
            .copied()
            .chain([
                names.user.as_str(),
                names.groups.as_str(),
                names.email.as_str(),
            ])
            .any(|p| same_variable(name, p))
    };
    let spoofed: Vec<_> = req
        .headers
        .keys()
        .filter(|k| protected(k.as_str()))
        .cloned()
        .collect();
    for name in spoofed {
        req.remove_header(&name);
    }
}

/// Sets the identity headers from a verified identity. The client's copies were already
/// removed; a claim the token lacks leaves its header absent, never client-controlled.
pub fn inject_identity(
    req: &mut RequestHeader,
    names: &IdentityHeaderNames,
    auth: Option<&Authenticated>,
) -> pingora::Result<()> {
    if names.access_token {
        req.remove_header(&http::header::AUTHORIZATION);
    }
    let Some(auth) = auth else { return Ok(()) };
    let id = &auth.identity;
    req.insert_header(names.user.clone(), id.user.as_str())?;
    if !id.groups.is_empty() {
        req.insert_header(names.groups.clone(), id.groups.join(","))?;
    }
    if let Some(email) = &id.email {
        req.insert_header(names.email.clone(), email.as_str())?;
    }
    if names.access_token {
        req.insert_header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", auth.access_token),
        )?;
    }
    Ok(())
}

/// Whether `identity` may use a route with `allow`. `owner` is the desktop's owner, if the
/// route is a desktops route.
pub fn is_allowed(
    allow: &Allow,
    identity: &Identity,
    owner: Option<&str>,
    admin_groups: &[String],
) -> bool {
    match allow {
        Allow::Anyone => true,
        Allow::Groups(groups) => identity.groups.iter().any(|g| groups.contains(g)),
        Allow::Owner => {
            owner.is_some_and(|o| o == identity.user)
                || identity.groups.iter().any(|g| admin_groups.contains(g))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(groups: &[&str]) -> Identity {
        Identity {
            sub: "1".into(),
            user: "alice".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            email: None,
            sid: None,
        }
    }

    #[test]
    fn allow_rules() {
        let admins = vec!["admins".to_string()];
        assert!(is_allowed(&Allow::Anyone, &alice(&[]), None, &admins));
        assert!(is_allowed(
            &Allow::Groups(vec!["staff".into()]),
            &alice(&["x", "staff"]),
            None,
            &admins
        ));
        assert!(!is_allowed(
            &Allow::Groups(vec!["staff".into()]),
            &alice(&["staffx"]),
            None,
            &admins
        ));
        assert!(is_allowed(
            &Allow::Owner,
            &alice(&[]),
            Some("alice"),
            &admins
        ));
        assert!(!is_allowed(
            &Allow::Owner,
            &alice(&[]),
            Some("bob"),
            &admins
        ));
        assert!(!is_allowed(&Allow::Owner, &alice(&[]), None, &admins));
        assert!(is_allowed(
            &Allow::Owner,
            &alice(&["admins"]),
            Some("bob"),
            &admins
        ));
    }

    #[test]
    fn strips_spoofed_headers_and_injects_verified_ones() {
        let names = IdentityHeaderNames {
            user: "x-user".into(),
            ..IdentityHeaderNames::default()
        };
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for h in [
            "x-user",
            "x-remote-user",
            "X-Remote-Groups",
            "x-remote-email",
            "X_Remote_User",
            "x-remote_groups",
            "X_USER",
        ] {
            req.append_header(h, "mallory").unwrap();
        }
        strip_client_identity(&mut req, &names);
        assert!(req.headers.is_empty(), "{:?}", req.headers);
        let auth = Authenticated {
            identity: alice(&["a", "b"]),
            access_token: "t".into(),
            session: None,
        };
        inject_identity(&mut req, &names, Some(&auth)).unwrap();
        assert_eq!(req.headers["x-user"], "alice");
        assert_eq!(req.headers["x-remote-groups"], "a,b");
        assert!(req.headers.get("x-remote-email").is_none());
        assert!(req.headers.get("authorization").is_none());
    }
}
