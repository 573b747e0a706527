//! An engine's JSON answer relayed as the text it sent
//! ([`Output::Json`](crate::backends::Output)): instead of parsing it into a
//! tree and writing the tree out again, the node reads it once, in place,
//! for the two things the envelope needs (`model`, `usage.total_tokens`),
//! and copies the text into the answer.
//!
//! The reading is serde_json's own, value by value (numbers converted,
//! strings checked for UTF-8 and whole escapes, the same depth limit), so
//! the text is relayed exactly when a parse into a value would succeed,
//! and then only when it is one object and not an envelope already
//! (`result` among envelope keys only, which the node unwraps), and holds
//! no key serde_json reads in a special way (`RAW_VALUE_TOKEN`). Anything
//! else is parsed as a value and takes the path every handler's result
//! takes, so it is accepted, unwrapped or refused exactly as before.

use super::envelope::ENVELOPE_KEYS;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// What the envelope takes from a relayed answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Glance {
    /// `model`, when it is a string (the envelope's `model_used`).
    pub model: Option<String>,
    /// `usage.total_tokens`, when it is an unsigned integer (`tokens_used`).
    pub tokens: Option<u64>,
}

/// The glance at `text`, or `None` when it cannot be relayed as it is.
pub(crate) fn glance(text: &[u8]) -> Option<Glance> {
    // One UTF-8 check of the whole text costs less than serde_json's check
    // of each string (issue 17); text that fails it fails a parse too.
    let text = std::str::from_utf8(text).ok()?;
    let mut reader = serde_json::Deserializer::from_str(text);
    let (glance, wrapped) = reader.deserialize_map(TopLevel).ok()?;
    reader.end().ok()?;
    (!wrapped).then_some(glance)
}

/// The top-level object: the glance, and whether it is an envelope.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = (Glance, bool);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut glance = Glance::default();
        let (mut result, mut envelope_keys_only) = (false, true);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                // The last of a repeated key counts, as in a parsed object.
                Key::Model => glance.model = map.next_value::<Text>()?.0,
                Key::Usage => glance.tokens = map.next_value::<Usage>()?.0,
                Key::Result => {
                    result = true;
                    map.next_value::<Skip>()?;
                }
                Key::Envelope | Key::Other => {
                    map.next_value::<Skip>()?;
                }
            }
            envelope_keys_only &= matches!(key, Key::Result | Key::Envelope);
        }
        Ok((glance, result && envelope_keys_only))
    }
}

/// A top-level key, by what it means here.
#[derive(Clone, Copy)]
enum Key {
    Model,
    Usage,
    Result,
    Envelope,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                not_raw_value_token(key)?;
                Ok(match key {
                    "model" => Key::Model,
                    "usage" => Key::Usage,
                    "result" => Key::Result,
                    k if ENVELOPE_KEYS.contains(&k) => Key::Envelope,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// Any value: the string, if it is one.
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Loose::<Text>::default())
    }
}

/// Any value: `total_tokens`, if it is an object with an unsigned integer there.
struct Usage(Option<u64>);

impl<'de> Deserialize<'de> for Usage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Loose::<Usage>::default())
    }
}

/// Any value, read through and kept nowhere. Unlike `IgnoredAny`, which
/// serde_json skips by its grammar alone, each number and string is read as
/// a parse reads it, so what a parse refuses (a number out of range, a
/// string that is not UTF-8 or escapes half a surrogate pair) is refused.
struct Skip;

impl Wanted for Skip {
    fn nothing() -> Self {
        Self
    }
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Loose::<Skip>::default())
    }
}

/// Any value: the unsigned integer, if it is one.
struct Count(Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Loose::<Count>::default())
    }
}

/// What a [`Loose`] visitor makes of each kind of value: nothing, unless
/// the kind is the one wanted.
trait Wanted: Sized {
    fn nothing() -> Self;
    fn string(_: &str) -> Self {
        Self::nothing()
    }
    fn unsigned(_: u64) -> Self {
        Self::nothing()
    }
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<Key2, Skip>()?.is_some() {}
        Ok(Self::nothing())
    }
}

impl Wanted for Text {
    fn nothing() -> Self {
        Self(None)
    }
    fn string(s: &str) -> Self {
        Self(Some(s.to_owned()))
    }
}

impl Wanted for Count {
    fn nothing() -> Self {
        Self(None)
    }
    fn unsigned(n: u64) -> Self {
        Self(Some(n))
    }
}

impl Wanted for Usage {
    fn nothing() -> Self {
        Self(None)
    }
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut total = None;
        while let Some(key) = map.next_key::<Key2>()? {
            if key.0 {
                total = map.next_value::<Count>()?.0;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(Self(total))
    }
}

/// An object whose first key is this is read by serde_json's `Value` as the
/// JSON text its value holds (serde_json's `raw_value` feature, which axum
/// turns on), and refused when that value is not a string. Text holding the
/// key anywhere is parsed, so it is read or refused exactly as before.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

fn not_raw_value_token<E: de::Error>(key: &str) -> Result<(), E> {
    if key == RAW_VALUE_TOKEN {
        return Err(E::custom("serde_json's raw value token"));
    }
    Ok(())
}

/// A key of an object below the top: whether it is `total_tokens`.
struct Key2(bool);

impl<'de> Deserialize<'de> for Key2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key2;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key2, E> {
                not_raw_value_token(key)?;
                Ok(Key2(key == "total_tokens"))
            }
        }
        d.deserialize_str(V)
    }
}

/// Takes any value and keeps what `T` wants of it.
struct Loose<T>(std::marker::PhantomData<T>);

impl<T> Default for Loose<T> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<'de, T: Wanted> Visitor<'de> for Loose<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok(T::nothing())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Ok(T::nothing())
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Ok(T::unsigned(n))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok(T::nothing())
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        Ok(T::string(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::nothing())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(T::nothing())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What the envelope reads from a parsed value (`envelope::success`).
    fn parsed(text: &str) -> Glance {
        let v: Value = serde_json::from_str(text).unwrap();
        Glance {
            model: v.get("model").and_then(Value::as_str).map(str::to_owned),
            tokens: v
                .get("usage")
                .and_then(|u| u.get("total_tokens"))
                .and_then(Value::as_u64),
        }
    }

    #[test]
    fn reads_what_a_parsed_value_gives() {
        for text in [
            r#"{"id":"c","model":"m","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":1,"total_tokens":7}}"#,
            r#"{"model":"m\u00e9\n","usage":{"total_tokens":7,"total_tokens":9}}"#,
            r#"{"model":"first","model":"second"}"#,
            r#"{"model":1,"usage":{"total_tokens":-1}}"#,
            r#"{"model":["m"],"usage":{"total_tokens":2.0}}"#,
            r#"{"model":{"name":"m"},"usage":[1,2]}"#,
            r#"{"model":null,"usage":{"total_tokens":"7"}}"#,
            r#"{"usage":{"total_tokens":18446744073709551615}}"#,
            r#"{"usage":{"total_tokens":18446744073709551616}}"#,
            r#"{"result":1,"choices":[]}"#,
            " {\"a\" : [ {} , [] , \"\\\"\" , true ] }\n",
            "{}",
        ] {
            assert_eq!(glance(text.as_bytes()), Some(parsed(text)), "{text}");
        }
    }

    #[test]
    fn what_cannot_be_relayed_as_it_is_goes_to_the_parser() {
        for text in [
            &b"[1,2]"[..],
            b"\"text\"",
            b"42",
            b"",
            b"{",
            b"{\"a\":1} {}",
            b"{\"a\":1}x",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\\uDC00\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":01}",
            b"{\"a\":1,}",
            b"{\"a\":1e400}",
            b"{\"a\":{\"$serde_json::private::RawValue\":[1]}}",
            b"{\"$serde_json::private::RawValue\":\"{}\"}",
            b"{\"a\":[-1e309]}",
            b"{\"k\xff\":1}",
            b"{\"result\":{\"x\":1}}",
            b"{\"result\":1,\"status\":\"success\",\"task_id\":\"t\"}",
        ] {
            assert_eq!(glance(text), None, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn every_relayed_text_is_json_a_strict_reader_takes() {
        for text in [
            r#"{"a":"\u00e9\u20ac","b":"\\n","c":"\ud83d\ude00","d":"\\ud800"}"#,
            r#"{"deep":[[[[{"x":[1e5,-0.5,true,null]}]]]]}"#,
        ] {
            assert!(glance(text.as_bytes()).is_some(), "{text}");
            serde_json::from_str::<Value>(text).unwrap();
        }
    }
}
