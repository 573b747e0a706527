//! A PostgreSQL connection string that never shows its password.

use std::fmt;

/// A PostgreSQL connection string (`postgres://user:password@host:port/db`).
/// It prints, in `Display` and `Debug` alike, with the password (in the
/// user part or a `password=` parameter) replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// Wraps a connection string; it is checked when the directory starts.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// Whether `value` is a PostgreSQL URL (`postgres://`, `postgresql://`).
    pub fn is_postgres(value: &str) -> bool {
        let lower = value.get(..13).unwrap_or(value).to_ascii_lowercase();
        lower.starts_with("postgres://") || lower.starts_with("postgresql://")
    }

    /// The connection string itself, with its password. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The password it holds, if any (to scrub it from error text).
    pub(crate) fn password(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok()?;
        let pw = url
            .password()
            .map(|p| percent_decode(p).unwrap_or_else(|| p.to_owned()));
        pw.or_else(|| {
            url.query_pairs()
                .find(|(k, _)| k == "password")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|p| !p.is_empty())
    }

    /// A `sslmode` this build cannot honour, if the URL asks for one.
    pub(crate) fn unsupported_sslmode(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned())
            .filter(|v| v != "disable")
    }
}

/// `%XX` decoding of a URL's password (None when it is not valid UTF-8).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = s.get(i + 1..i + 3);
        if let (b'%', Some(b)) = (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            // Unparseable: show the scheme only, in case a password is in it.
            let scheme = self.0.split("://").next().unwrap_or("postgres");
            return write!(f, "{scheme}://(not shown: not a valid URL)");
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(url.as_str())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let url = PostgresUrl::new("postgres://iicp:s3cr%40t@db.example:5433/dir?sslmode=disable");
        let shown = url.to_string();
        assert_eq!(
            shown,
            "postgres://iicp:***@db.example:5433/dir?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cr"));
        assert_eq!(url.password().as_deref(), Some("s3cr@t"));
        let q = PostgresUrl::new("postgresql://h/db?user=u&password=hunter22");
        assert!(!q.to_string().contains("hunter22"), "{q}");
        assert_eq!(q.password().as_deref(), Some("hunter22"));
        let bad = PostgresUrl::new("postgres://u:pw@[bad");
        assert!(!bad.to_string().contains("pw"), "{bad}");
    }

    #[test]
    fn postgres_urls_are_told_from_paths() {
        assert!(PostgresUrl::is_postgres("postgres://h/db"));
        assert!(PostgresUrl::is_postgres("PostgreSQL://h/db"));
        assert!(!PostgresUrl::is_postgres("postgres.db"));
        assert!(!PostgresUrl::is_postgres("/var/lib/postgres://x"));
        assert!(!PostgresUrl::is_postgres(""));
    }

    #[test]
    fn only_sslmode_disable_is_accepted() {
        assert_eq!(
            PostgresUrl::new("postgres://h/db").unsupported_sslmode(),
            None
        );
        assert_eq!(
            PostgresUrl::new("postgres://h/db?sslmode=disable").unsupported_sslmode(),
            None
        );
        assert_eq!(
            PostgresUrl::new("postgres://h/db?sslmode=require").unsupported_sslmode(),
            Some("require".to_owned())
        );
    }
}
