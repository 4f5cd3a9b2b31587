//! Small helpers for pages a crawler fetches.

/// The text of the page's first `<title>` element, entities decoded and whitespace collapsed;
/// `None` if the page has none.
pub fn title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let content_start = open + lower[open..].find('>')? + 1;
    let content_len = lower[content_start..].find("</title")?;
    let raw = &html[content_start..content_start + content_len];
    Some(decode_entities(&raw.split_whitespace().collect::<Vec<_>>().join(" ")))
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| Some((entity(&rest[1..end])?, end)));
        if let Some((c, end)) = decoded {
            out.push(c);
            rest = &rest[end + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => name.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::title;

    #[test]
    fn finds_and_cleans_the_title() {
        assert_eq!(title("<html><head><TITLE>\n A &amp; B &#x41;</TITLE>").as_deref(), Some("A & B A"));
        assert_eq!(title("<title lang=en>x</title>").as_deref(), Some("x"));
        assert_eq!(title("<p>no title</p>"), None);
        assert_eq!(title("<title>R&D; &bogus;</title>").as_deref(), Some("R&D; &bogus;"));
    }
}
