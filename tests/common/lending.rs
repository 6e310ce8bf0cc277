//! Lending requests of the black-box tests: copies, borrows and returns as the admin (staff lend
//! to patrons).

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Api;

impl Api {
    /// Registers a copy of `book` with `barcode` (staff).
    pub async fn add_copy(&self, book: &str, barcode: &str) {
        let response = self
            .admin(self.http.post(self.url(&format!("/books/{book}/copies"))))
            .json(&json!({ "barcode": barcode }))
            .send()
            .await
            .expect("POST copies");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "POST /books/{book}/copies: {body}"
        );
    }

    /// The admin's `POST /books/{book}/borrow/{member}`, not sent yet (for tests that tolerate
    /// no answer).
    pub fn borrow_request(&self, book: &str, member: &str) -> reqwest::RequestBuilder {
        self.admin(
            self.http
                .post(self.url(&format!("/books/{book}/borrow/{member}"))),
        )
    }

    /// The admin's `POST /books/{book}/return/{member}`, not sent yet.
    pub fn return_request(&self, book: &str, member: &str) -> reqwest::RequestBuilder {
        self.admin(
            self.http
                .post(self.url(&format!("/books/{book}/return/{member}"))),
        )
    }

    /// The admin borrows `book` for `member`: the status and the JSON body (the loan, or the
    /// problem).
    pub async fn borrow(&self, book: &str, member: &str) -> (StatusCode, Value) {
        let response = self
            .borrow_request(book, member)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST borrow on {}: {e}", self.base));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
