//! Plugin names (and schedule names, which follow the same rule): safe in URLs, logs and file
//! names. The one place the rule is written; the API, the tokens and the registry check it here.

/// The rule, as error messages state it.
pub const NAME_RULE: &str = "1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit";

/// Whether `name` follows [`NAME_RULE`].
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for good in ["hello", "a", "0-x_y", &"a".repeat(64)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "-a", "_a", "Hello", "a b", "a/b", "../etc", "é", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
