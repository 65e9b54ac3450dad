//! HTTP header fields: an ordered list of names and values, looked up case-insensitively.

use std::fmt;

/// HTTP header fields in the order received or added. Names compare case-insensitively;
/// a name may appear more than once.
///
/// Stored compactly, because a connection keeps its handshake for its whole life: every name
/// and value back to back in one string, and where each ends. The text of all fields together
/// is limited to 4 GiB.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Names and values, back to back.
    text: String,
    /// For each field, where its name ends and where its value ends in `text` (the name
    /// starts where the previous value ends).
    ends: Vec<(u32, u32)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `fields` fields whose names and values add up to `text_len` bytes.
    pub fn with_capacity(fields: usize, text_len: usize) -> Self {
        Self {
            text: String::with_capacity(text_len),
            ends: Vec::with_capacity(fields),
        }
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The values of every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether a field called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Add a field, after any with the same name.
    ///
    /// # Panics
    ///
    /// If the text of all fields would exceed 4 GiB.
    pub fn append(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.text.push_str(name.as_ref());
        let name_end = offset(self.text.len());
        self.text.push_str(value.as_ref());
        self.ends.push((name_end, offset(self.text.len())));
    }

    /// Set a field, replacing every field with the same name.
    pub fn insert(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.remove(name.as_ref());
        self.append(name, value);
    }

    /// Remove every field called `name`.
    pub fn remove(&mut self, name: &str) {
        if !self.contains(name) {
            return;
        }
        let mut kept = Self::with_capacity(self.ends.len(), self.text.len());
        for (n, v) in self.iter().filter(|(n, _)| !n.eq_ignore_ascii_case(name)) {
            kept.append(n, v);
        }
        *self = kept;
    }

    /// All fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            let field = (&self.text[start..name_end], &self.text[name_end..value_end]);
            start = value_end;
            field
        })
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Give back memory reserved beyond the fields.
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("header fields exceed 4 GiB")
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(fields: I) -> Self {
        let mut headers = Self::new();
        for (name, value) in fields {
            headers.append(name, value);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_order_and_compare_names_without_case() {
        let mut headers = Headers::new();
        headers.append("Host", "example.com");
        headers.append("X-Tag", "a");
        headers.append("x-tag", "b");
        headers.append("Empty", "");
        assert_eq!(headers.len(), 4);
        assert_eq!(headers.get("HOST"), Some("example.com"));
        assert_eq!(headers.get_all("X-TAG").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(headers.get("empty"), Some(""));
        assert!(!headers.contains("Missing"));
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [
                ("Host", "example.com"),
                ("X-Tag", "a"),
                ("x-tag", "b"),
                ("Empty", "")
            ]
        );
    }

    #[test]
    fn insert_replaces_and_remove_removes_every_field_of_a_name() {
        let mut headers: Headers = [("A", "1"), ("B", "2"), ("a", "3")].into_iter().collect();
        headers.insert("a", "4");
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("B", "2"), ("a", "4")]);
        headers.remove("B");
        headers.remove("not there");
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("a", "4")]);
        headers.remove("A");
        assert!(headers.is_empty());
        assert_eq!(headers, Headers::new());
    }

    #[test]
    fn debug_lists_the_fields() {
        let headers: Headers = [("Upgrade", "websocket")].into_iter().collect();
        assert_eq!(format!("{headers:?}"), r#"[("Upgrade", "websocket")]"#);
    }
}
