//! Test support: a fresh place in the S3-compatible server the tests use.
//!
//! Tests read the server's URL from `QUIRE_TEST_S3_URL` and fail loudly when it is unreachable: a
//! missing service is a broken environment, never a reason to skip.

/// The S3-compatible server tests use: `QUIRE_TEST_S3_URL` (default `http://127.0.0.1:9090`, the
/// moto server `ops/services.sh` starts). Credentials come from `QUIRE_TEST_S3_ACCESS_KEY` /
/// `QUIRE_TEST_S3_SECRET_KEY` (default `test`/`test`, which moto accepts).
pub fn s3_test_url() -> String {
    std::env::var("QUIRE_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:9090".into())
}

/// A place of its own in the test S3 server: the bucket `QUIRE_TEST_S3_BUCKET` if set (it must
/// exist), else `quire-test`, created here with an unsigned `PUT` (moto accepts it; a server
/// that wants signed requests needs `QUIRE_TEST_S3_BUCKET`), and a fresh key prefix. Fails loudly
/// when the server is unreachable.
pub async fn fresh_s3_location() -> crate::S3Location {
    let endpoint = s3_test_url();
    let bucket = match std::env::var("QUIRE_TEST_S3_BUCKET") {
        Ok(bucket) => bucket,
        Err(_) => {
            let bucket = "quire-test".to_string();
            let url = format!("{}/{bucket}", endpoint.trim_end_matches('/'));
            let response = reqwest::Client::new()
                .put(&url)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "an S3-compatible server is required for this test and is unreachable at \
                         {endpoint} (start it with ops/services.sh, or set QUIRE_TEST_S3_URL): {e}"
                    )
                });
            assert!(
                response.status().is_success(),
                "creating the test bucket at {url}: {}",
                response.status()
            );
            bucket
        }
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "test".into());
    crate::S3Location {
        bucket,
        prefix: format!("t-{}", uuid::Uuid::new_v4().simple()),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        allow_http: endpoint.starts_with("http://"),
        access_key_id: Some(var("QUIRE_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(var("QUIRE_TEST_S3_SECRET_KEY")),
    }
}
