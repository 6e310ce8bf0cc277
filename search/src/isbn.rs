//! Recognising an ISBN typed as a query, in either form, with or without hyphens and spaces: the
//! index keeps both forms of every book's ISBN, so "0-441-17271-7" finds the book stored as
//! "9780441172719".

/// The ISBN-13 and (when it has one: 978 prefix) ISBN-10 forms of `query`, if it is an ISBN with a
/// valid check digit; `None` for anything else.
pub fn isbn_forms(query: &str) -> Option<Vec<String>> {
    let compact: String = query
        .trim()
        .trim_start_matches("isbn:")
        .trim_start_matches("ISBN:")
        .trim_start_matches("ISBN")
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .collect();
    match compact.len() {
        10 if valid10(&compact) => {
            let upper = compact.to_ascii_uppercase();
            let thirteen = to13(&upper);
            Some(vec![thirteen, upper])
        }
        13 if valid13(&compact) => {
            let mut forms = vec![compact.clone()];
            if let Some(ten) = to10(&compact) {
                forms.push(ten);
            }
            Some(forms)
        }
        _ => None,
    }
}

/// Both forms of a stored ISBN (which is valid), for indexing.
pub fn index_forms(isbn: &str) -> Vec<String> {
    isbn_forms(isbn).unwrap_or_else(|| vec![isbn.to_string()])
}

fn valid10(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut sum = 0u32;
    for (i, &b) in bytes.iter().enumerate() {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'X' | b'x' if i == 9 => 10,
            _ => return false,
        };
        sum += value * (10 - i as u32);
    }
    sum.is_multiple_of(11)
}

fn valid13(s: &str) -> bool {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = s
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    sum.is_multiple_of(10)
}

fn to13(ten: &str) -> String {
    let body = format!("978{}", &ten[..9]);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn to10(thirteen: &str) -> Option<String> {
    let body = thirteen.strip_prefix("978")?;
    let body = &body[..9];
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * (10 - i as u32))
        .sum();
    let check = (11 - sum % 11) % 11;
    let check = if check == 10 {
        'X'
    } else {
        char::from(b'0' + check as u8)
    };
    Some(format!("{body}{check}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_an_isbn_are_recognised() {
        assert_eq!(
            isbn_forms("0-441-17271-7").unwrap(),
            ["9780441172719", "0441172717"]
        );
        assert_eq!(
            isbn_forms("978 0441172719").unwrap(),
            ["9780441172719", "0441172717"]
        );
        assert_eq!(
            isbn_forms("080442957X").unwrap(),
            ["9780804429573", "080442957X"]
        );
        assert_eq!(isbn_forms("9791032300824").unwrap(), ["9791032300824"]);
    }

    #[test]
    fn other_text_is_not_an_isbn() {
        assert!(isbn_forms("0441172718").is_none());
        assert!(isbn_forms("dune").is_none());
        assert!(isbn_forms("1984").is_none());
        assert!(isbn_forms("9780441172710").is_none());
    }
}
