use super::*;

fn canon(p: &str) -> Result<String, PathError> {
    canonicalize(p.as_bytes(), Separators::Reject).map(Cow::into_owned)
}

#[test]
fn canonical_paths_are_borrowed() {
    for p in [
        "/",
        "/console/",
        "/api/v1/items",
        "/a.b/c-d_e~f",
        "/desktop/d-42/x",
        "/a/.hidden",
        "/x:y@z!$&'()*+,=",
    ] {
        assert!(
            matches!(
                canonicalize(p.as_bytes(), Separators::Reject),
                Ok(Cow::Borrowed(_))
            ),
            "{p}"
        );
    }
}

#[test]
fn dot_segments_and_slashes() {
    let table = [
        ("/a/../b", "/b"),
        ("/a/./b", "/a/b"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/public/../desktop/d-42/", "/desktop/d-42/"),
        ("//desktop//d-42/", "/desktop/d-42/"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/.hidden", "/a/.hidden"),
        ("/a/..b", "/a/..b"),
        ("/x/../.git/config", "/.git/config"),
        ("//.git/config", "/.git/config"),
        ("/%2egit/config", "/.git/config"),
    ];
    for (input, want) in table {
        assert_eq!(canon(input).as_deref(), Ok(want), "{input}");
    }
}

#[test]
fn escapes() {
    let table = [
        ("/%2e%2e/desktop/d-42/", "/desktop/d-42/"),
        ("/%2E%2e/x", "/x"),
        ("/a/%2e/b", "/a/b"),
        ("/%7Euser", "/~user"),
        ("/%41%42", "/AB"),
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/my%20file.pdf", "/my%20file.pdf"),
        ("/a%3fb", "/a%3Fb"),
        ("/a%23b", "/a%23b"),
        ("/a|b{c}", "/a%7Cb%7Bc%7D"),
        ("/100%25", "/100%25"),
    ];
    for (input, want) in table {
        assert_eq!(canon(input).as_deref(), Ok(want), "{input}");
    }
}

#[test]
fn every_form_a_server_reads_differently_is_refused() {
    use PathError::*;
    let table = [
        ("console", NotAbsolute),
        ("", NotAbsolute),
        ("*", NotAbsolute),
        ("admin/secret.txt", NotAbsolute),
        ("%2e%2e/admin/x", NotAbsolute),
        ("/a%zz", BadEscape),
        ("/a%2", BadEscape),
        ("/a%", BadEscape),
        ("/%u002e%u002e/admin", BadEscape),
        ("/a%00b", ControlCharacter),
        ("/a%0ab", ControlCharacter),
        ("/a%09", ControlCharacter),
        ("/a\u{1}b", ControlCharacter),
        ("/a b", ControlCharacter),
        ("/public/..%2Fadmin/x", EncodedSeparator),
        ("/public/%2e%2e%2Fadmin/x", EncodedSeparator),
        ("/public%2F..%2Fadmin/x", EncodedSeparator),
        ("/public/..%5Cadmin/x", EncodedSeparator),
        ("/public/..%5cadmin/x", EncodedSeparator),
        ("/public/..\\admin/x", Backslash),
        ("/public\\..\\admin", Backslash),
        ("/public/..;/admin/x", PathParameter),
        ("/admin;x/", PathParameter),
        ("/admin%3bx/", PathParameter),
        ("/a;jsessionid=1", PathParameter),
        ("/public/%252e%252e/admin", DoubleEncoding),
        ("/public/%252F..%252Fadmin", DoubleEncoding),
        ("/public/%25%32%65%25%32%65/admin", DoubleEncoding),
        ("/public/%c0%ae%c0%ae/admin", InvalidUtf8),
        ("/public/%c0%af", InvalidUtf8),
        ("/public/%e0%80%ae", InvalidUtf8),
        ("/public/%ed%a0%80", InvalidUtf8),
        ("/public/%ff", InvalidUtf8),
        ("/admin./", AmbiguousSegment),
        ("/admin%2e/x", AmbiguousSegment),
        ("/admin.../x", AmbiguousSegment),
        ("/admin%20/x", AmbiguousSegment),
        ("/public/..%20/admin", AmbiguousSegment),
        ("/a#b", ForbiddenCharacter),
        ("/public/\u{ff0e}\u{ff0e}\u{ff0f}admin", ForbiddenCharacter),
        ("/public/%ef%bc%8e%ef%bc%8e/admin", ForbiddenCharacter),
        ("/public\u{2215}..\u{2215}admin", ForbiddenCharacter),
    ];
    for (input, want) in table {
        assert_eq!(canon(input), Err(want), "{input}");
    }
    assert_eq!(
        canonicalize(b"/a\xffb", Separators::Reject),
        Err(InvalidUtf8)
    );
}

#[test]
fn characters_some_server_reads_as_ascii_letters_are_refused() {
    for input in [
        "/\u{ff41}dmin/",  // fullwidth a (NFKC)
        "/%EF%BD%81dmin/", // the same, escaped
        "/\u{17f}ecret",   // long s: upper-cases to S
        "/%C5%BFecret",
        "/adm\u{131}n/", // dotless i: upper-cases to I
        "/adm%C4%B1n/",
        "/\u{212a}eys",    // Kelvin sign: lower-cases to k
        "/\u{130}nbox",    // capital I with dot: lower-cases to i and a dot
        "/\u{fb01}les/",   // the fi ligature (NFKC)
        "/\u{1d41a}dmin/", // mathematical bold a (NFKC)
        "/v\u{2162}/",     // roman numeral three (NFKC: III)
        "/x\u{b2}",        // superscript two (NFKC: 2)
        "/a\u{2100}b",     // account of (NFKC: a/c)
    ] {
        assert_eq!(
            canon(input),
            Err(PathError::ForbiddenCharacter),
            "{input:?}"
        );
    }
    // Letters no server reads as ASCII stay, escaped: accents, other scripts, `ß` (`SS` is two).
    for (input, want) in [
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/stra\u{df}e", "/stra%C3%9Fe"),
        ("/\u{43c}\u{438}\u{440}", "/%D0%BC%D0%B8%D1%80"),
        ("/\u{65e5}\u{672c}", "/%E6%97%A5%E6%9C%AC"),
    ] {
        assert_eq!(canon(input).as_deref(), Ok(want), "{input:?}");
    }
}

#[test]
fn kept_separators_must_mean_the_same_path_either_way() {
    let keep = |p: &str| canonicalize(p.as_bytes(), Separators::Keep).map(Cow::into_owned);
    assert_eq!(keep("/api/a%2fb").as_deref(), Ok("/api/a%2Fb"));
    assert_eq!(separators_decoded("/api/a%2Fb%5Cc"), "/api/a/b/c");
    for attack in [
        "/api/..%2Fadmin",
        "/api/a%2F..%2F..%2Fadmin",
        "/api/a%2F%2Fb",
        "/api/%2F",
        "/api/a%5C.%5Cb",
    ] {
        assert_eq!(keep(attack), Err(PathError::EncodedSeparator), "{attack}");
    }
    assert_eq!(keep("/api/a%2Fb."), Err(PathError::AmbiguousSegment));
}

#[test]
fn hostile_paths_canonicalize_to_a_fixed_point_every_server_reads_alike() {
    let mut rng = crate::fuzz_inputs::Rng::new(0x5eed_0001);
    let mut accepted = 0;
    for _ in 0..50_000 {
        let input = format!("/{}", rng.string(crate::fuzz_inputs::URL_PIECES, 12));
        let Ok(out) = canon(&input) else { continue };
        accepted += 1;
        assert!(out.starts_with('/'), "{input:?} -> {out:?}");
        assert!(!out.contains("//"), "{input:?} -> {out:?}");
        assert!(out.is_ascii(), "{input:?} -> {out:?}");
        for forbidden in ["\\", ";", "%2F", "%5C", "%00", "#"] {
            assert!(!out.contains(forbidden), "{input:?} -> {out:?}");
        }
        assert!(
            !out.bytes().any(|b| b.is_ascii_control() || b == b' '),
            "{input:?} -> {out:?}"
        );
        // Decoded once, as any upstream does, the path has no dot segment to resolve.
        let decoded = crate::fuzz_inputs::percent_decode(&out);
        for segment in decoded.split('/') {
            assert!(segment != "." && segment != "..", "{input:?} -> {out:?}");
            assert!(!segment.ends_with('.'), "{input:?} -> {out:?}");
        }
        assert_eq!(canon(&out), Ok(out.clone()), "not a fixed point: {input:?}");
    }
    assert!(accepted > 2_000, "only {accepted} inputs were valid paths");
}
