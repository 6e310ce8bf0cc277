//! Connection strings without their secrets, for logs and `quire config`: the one place that
//! knows how a password hides in a URL (user info, `password=` query parameters) or in libpq's
//! `key=value` form.

/// What a hidden secret is replaced with. Plain letters, so a URL stays a valid URL.
const HIDDEN: &str = "redacted";

/// `url` with its password hidden: `scheme://user:password@host` → `scheme://user:redacted@host`,
/// and the values of `password`/`sslpassword` query parameters and libpq `password=` pairs.
/// A user name alone is kept (for a database it is not a secret); text that is neither a URL nor
/// libpq pairs (a file path) is returned as it is.
pub fn redact_url(url: &str) -> String {
    redact(url, false)
}

/// Like [`redact_url`], but a user name given without a password is hidden too: in a NATS URL
/// (`nats://token@host`) it is a token.
pub fn redact_url_credentials(url: &str) -> String {
    redact(url, true)
}

fn redact(text: &str, user_alone_is_secret: bool) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if parsed.has_host() => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some(HIDDEN));
            } else if user_alone_is_secret && !parsed.username().is_empty() {
                let _ = parsed.set_username(HIDDEN);
            }
            if parsed.query_pairs().any(|(k, _)| is_secret_key(&k)) {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret_key(&k) {
                            HIDDEN.into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        _ if text.contains('=') => text
            .split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_key(k) => format!("{k}={HIDDEN}"),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => text.to_string(),
    }
}

fn is_secret_key(key: &str) -> bool {
    ["password", "sslpassword", "token", "api_key"]
        .iter()
        .any(|k| key.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_and_the_rest_kept() {
        assert_eq!(
            redact_url("postgres://quire:s3cr%40t@db:5432/quire?sslmode=require"),
            "postgres://quire:redacted@db:5432/quire?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/quire?user=q&password=hunter2"),
            "postgres://db/quire?user=q&password=redacted"
        );
        assert_eq!(redact_url("postgres://q@db/quire"), "postgres://q@db/quire");
        assert_eq!(redact_url("quire-data/events.db"), "quire-data/events.db");
    }

    #[test]
    fn libpq_pairs_lose_their_password() {
        assert_eq!(
            redact_url("host=db user=quire password=hunter2 dbname=quire"),
            "host=db user=quire password=redacted dbname=quire"
        );
    }

    #[test]
    fn a_token_in_the_user_name_is_hidden_where_asked() {
        assert_eq!(
            redact_url_credentials("nats://s3cr3t@host:4222"),
            "nats://redacted@host:4222"
        );
        assert_eq!(
            redact_url_credentials("nats://user:pw@host:4222"),
            "nats://user:redacted@host:4222"
        );
        assert_eq!(
            redact_url_credentials("nats://host:4222"),
            "nats://host:4222"
        );
    }
}
