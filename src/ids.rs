//! Random ids: UUID v4 task, call and node ids, drawn from the thread's
//! CSPRNG (`rand::rng()`, ChaCha seeded and reseeded from the OS) instead of
//! `Uuid::new_v4()`, which asks the kernel (`getrandom`) for every id: one
//! system call per task on a node's and a client's hot path (issue 17).
//! The ids stay unpredictable: a node's generated `task_id` keys its replay
//! window, so a guessable one would let a peer occupy it in advance.

use uuid::Uuid;

/// A random (version 4) UUID.
pub(crate) fn uuid_v4() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// A random (version 4) UUID in its usual text form, lower-case, hyphenated.
pub(crate) fn uuid_v4_string() -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid_v4().hyphenated().encode_lower(&mut buf).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_text_and_differ() {
        let a = uuid_v4_string();
        let b = uuid_v4_string();
        assert_ne!(a, b);
        let parsed = Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a, parsed.hyphenated().to_string());
        assert_eq!(uuid_v4().get_version_num(), 4);
    }
}
