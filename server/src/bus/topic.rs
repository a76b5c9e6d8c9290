//! AMQP topic matching: `*` stands for exactly one dot-separated word, `#` for zero or more.

/// Whether `routing_key` matches the binding `pattern`.
pub fn matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches_words(&pattern, &key)
}

fn matches_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches_words(rest, &key[skip..])),
        Some((&word, rest)) => match key.split_first() {
            Some((first, key_rest)) => {
                (word == "*" || word == *first) && matches_words(rest, key_rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn exact_words_match_only_themselves() {
        assert!(matches("product.created", "product.created"));
        assert!(!matches("product.created", "product.updated"));
    }

    #[test]
    fn a_star_is_exactly_one_word() {
        assert!(matches("product.*", "product.deleted"));
        assert!(!matches("product.*", "product"));
        assert!(!matches("product.*", "product.likes.changed"));
    }

    #[test]
    fn a_hash_is_zero_or_more_words() {
        assert!(matches("#", "anything.at.all"));
        assert!(matches("product.#", "product"));
        assert!(matches("product.#", "product.likes.changed"));
        assert!(matches("#.changed", "product.likes.changed"));
        assert!(!matches("like.#", "product.created"));
    }
}
