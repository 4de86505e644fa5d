//! Go's `net/url.ParseRequestURI`, as far as the WasmPlugin `url` rule needs it.
//!
//! The CRD's CEL rule is `isURL(self) ? url(self).getScheme() in [...] :
//! (isURL("http://" + self) && url("http://" + self).getScheme() in [...])`, and
//! CEL's `isURL`/`url` are `url.ParseRequestURI`: an absolute URI, or an absolute
//! path; no fragment splitting; the authority's user info, host and port, and
//! every `%` escape must be well formed. [`request_uri_scheme`] answers "does it
//! parse, and with which scheme".

/// The scheme (lowercased, `""` for a path) if Go's `url.ParseRequestURI(text)`
/// succeeds, `None` if it fails.
pub fn request_uri_scheme(text: &str) -> Option<String> {
    if text.is_empty() || text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    if text == "*" {
        return Some(String::new());
    }
    let (scheme, rest) = split_scheme(text)?;
    let scheme = scheme.to_ascii_lowercase();
    // A trailing lone `?` forces an empty query; otherwise the query starts at the first `?`.
    let rest = match rest.strip_suffix('?') {
        Some(before) if !before.contains('?') => before,
        _ => rest.split_once('?').map_or(rest, |(before, _)| before),
    };
    if !rest.starts_with('/') {
        // `scheme:opaque` is fine; a relative reference is not a request URI.
        return (!scheme.is_empty()).then_some(scheme);
    }
    let path = match rest.strip_prefix("//") {
        Some(after) if !scheme.is_empty() => {
            let (authority, path) = after.find('/').map_or((after, ""), |i| after.split_at(i));
            if !valid_authority(authority) {
                return None;
            }
            path
        }
        _ => rest,
    };
    valid_escapes(path).then_some(scheme)
}

/// Go's `getScheme`: `[A-Za-z][A-Za-z0-9+.-]*:` is a scheme; a leading `:` is an
/// error; anything else means "no scheme".
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    for (i, c) in text.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return None,
            ':' => return Some((&text[..i], &text[i + 1..])),
            _ => return Some(("", text)),
        }
    }
    Some(("", text))
}

fn valid_authority(authority: &str) -> bool {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    userinfo.is_none_or(valid_userinfo) && valid_host(host)
}

/// Go's `validUserinfo`: unreserved, sub-delims, `:`, `%` and `@`.
fn valid_userinfo(userinfo: &str) -> bool {
    userinfo
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c))
}

/// Go's `parseHost`: an optional `[IPv6]`, an optional `:digits` port, and host
/// characters (alphanumerics, `-._~`, sub-delims, `%XX`).
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(after) = host.strip_prefix('[') {
        let Some(end) = after.find(']') else {
            return false;
        };
        (&after[..end], &after[end + 1..])
    } else {
        match host.rfind(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = name.chars().all(|c| {
        !c.is_ascii() || c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:[]<>\"%".contains(c)
    });
    port_ok && name_ok && valid_escapes(name)
}

/// Every `%` starts a two-hex-digit escape.
fn valid_escapes(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_uris_and_paths_parse() {
        for (text, scheme) in [
            (
                "oci://111122223333.dkr.ecr.us-east-1.amazonaws.com/meshray-filter:0.1.0",
                "oci",
            ),
            ("https://example.com/filter.wasm?x=1#frag", "https"),
            ("file:///opt/filters/meshray.wasm", "file"),
            ("HTTP://Example.com:8080/a", "http"),
            ("fake://example.com", "fake"),
            ("localhost:5000/img", "localhost"),
            ("/abs/path.wasm", ""),
            ("mailto:ops@example.com", "mailto"),
        ] {
            assert_eq!(request_uri_scheme(text).as_deref(), Some(scheme), "{text}");
        }
    }

    #[test]
    fn what_go_refuses_is_refused() {
        for text in [
            "",
            "test",
            "#%blah$#@",
            "http://#%blah$#@",
            ":no-scheme",
            "http://host:port/x",
            "http://ho st/x",
            "https://example.com/%zz",
            "http://[::1/x",
            "a\u{7f}b",
        ] {
            assert_eq!(request_uri_scheme(text), None, "{text:?}");
        }
    }

    #[test]
    fn bare_names_parse_once_prefixed_as_cel_does() {
        assert_eq!(request_uri_scheme("http://test").as_deref(), Some("http"));
        assert_eq!(
            request_uri_scheme("http://[::1]:5000/x").as_deref(),
            Some("http")
        );
    }
}
