//! Reading and writing DynamoDB item attributes, shared by the table adapters.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// One DynamoDB item: attribute name to value.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A count attribute: 0 when absent, not a number, or negative.
pub(crate) fn number(item: &Item, key: &str) -> u64 {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(0, |v| v.max(0) as u64)
}

/// A string attribute, when present.
pub(crate) fn text(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_zero_when_missing_malformed_or_negative() {
        let item = Item::from([
            ("a".to_owned(), n(7)),
            ("b".to_owned(), n(-3)),
            ("c".to_owned(), s("x")),
        ]);
        assert_eq!(number(&item, "a"), 7);
        assert_eq!(number(&item, "b"), 0);
        assert_eq!(number(&item, "c"), 0);
        assert_eq!(number(&item, "missing"), 0);
        assert_eq!(text(&item, "c").as_deref(), Some("x"));
        assert_eq!(text(&item, "a"), None);
    }
}
