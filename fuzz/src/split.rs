//! Inputs as readable text files: fields separated by newlines, so that a seed or a crash
//! can be read and written by hand.

/// The first `n - 1` lines of `data` and then the rest (which may hold more newlines);
/// missing fields are empty.
pub fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n.max(1), |&b| b == b'\n').collect();
    out.resize(n.max(1), &[]);
    out
}

/// The field as text, with anything that is not UTF-8 replaced (for APIs that take `&str`).
pub fn text(field: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(field)
}
