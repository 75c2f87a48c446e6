//! Controlled vocabularies: closed lists of words written as `snake_case` strings
//! ([`Term`], declared with the crate's `vocabulary!` macro), and [`TermSet`], a set of such
//! words that also keeps the ones this build does not know.
//!
//! A single-word term (an action, a state) is strict: an unknown word does not parse, so no
//! agreement holding it can exist. A list of words (purposes, functions, fields) is a
//! [`TermSet`]: an unknown word written by a newer version is kept, so that
//! [`Agreement::validate`](crate::Agreement::validate) can name it and
//! [`decide()`](crate::decide()) can refuse the agreement (fail closed) instead of silently
//! reading a narrower or wider list than was agreed.

use std::collections::BTreeSet;
use std::fmt;

/// A word of a controlled vocabulary.
pub trait Term: Copy + Ord + fmt::Debug + 'static {
    /// What the vocabulary is, for messages (`purpose`, `function`, …).
    const KIND: &'static str;
    /// Every word, in declaration order.
    const ALL: &'static [Self];
    /// The word as written in JSON and ODRL.
    fn word(self) -> &'static str;
    /// The term written `text`, if it is one.
    fn from_word(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|term| term.word() == text)
    }
}

/// Declares a vocabulary enum: the variants, their words, `Display`, `FromStr` and serde as
/// strings, and the [`Term`] impl.
macro_rules! vocabulary {
    (
        $(#[$doc:meta])*
        $name:ident, $kind:literal {
            $($(#[$vdoc:meta])* $variant:ident => $word:literal),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The word as written in JSON and ODRL.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }
        }

        impl $crate::vocabulary::Term for $name {
            const KIND: &'static str = $kind;
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn word(self) -> &'static str {
                self.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(text: &str) -> $crate::Result<Self> {
                <Self as $crate::vocabulary::Term>::from_word(text).ok_or_else(|| {
                    $crate::Error::UnknownValue {
                        kind: $kind,
                        value: $crate::error::excerpt(text),
                    }
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use vocabulary;

/// A set of vocabulary words, plus the words this build does not recognise.
///
/// Serialized as a JSON array of strings (known words in vocabulary order, then the
/// unrecognised ones sorted); deserializing never fails on an unknown word, it lands in
/// [`TermSet::unrecognised`]. Only known words are ever granted: an agreement with an
/// unrecognised word is invalid and never used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TermSet<T: Term> {
    known: BTreeSet<T>,
    unrecognised: BTreeSet<String>,
}

impl<T: Term> TermSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            known: BTreeSet::new(),
            unrecognised: BTreeSet::new(),
        }
    }

    /// Whether `term` is granted.
    pub fn contains(&self, term: T) -> bool {
        self.known.contains(&term)
    }

    /// Adds a known word; `false` if it was there.
    pub fn insert(&mut self, term: T) -> bool {
        self.known.insert(term)
    }

    /// The known words.
    pub fn known(&self) -> &BTreeSet<T> {
        &self.known
    }

    /// Words that are not in this build's vocabulary (written by a newer version or by
    /// mistake).
    pub fn unrecognised(&self) -> &BTreeSet<String> {
        &self.unrecognised
    }

    /// Whether it holds no word at all, known or not.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty() && self.unrecognised.is_empty()
    }

    /// The known words, in vocabulary order.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.known.iter().copied()
    }

    /// The words as written, known ones first.
    pub fn words(&self) -> impl Iterator<Item = &str> + '_ {
        self.known
            .iter()
            .map(|term| term.word())
            .chain(self.unrecognised.iter().map(String::as_str))
    }

    /// Builds a set from written words, keeping unknown ones apart.
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = Self::new();
        for word in words {
            match T::from_word(word) {
                Some(term) => {
                    set.known.insert(term);
                }
                None => {
                    set.unrecognised.insert(word.to_owned());
                }
            }
        }
        set
    }
}

impl<T: Term> Default for TermSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Term> FromIterator<T> for TermSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self {
            known: iter.into_iter().collect(),
            unrecognised: BTreeSet::new(),
        }
    }
}

impl<T: Term, const N: usize> From<[T; N]> for TermSet<T> {
    fn from(terms: [T; N]) -> Self {
        terms.into_iter().collect()
    }
}

impl<T: Term> serde::Serialize for TermSet<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.words())
    }
}

impl<'de, T: Term> serde::Deserialize<'de> for TermSet<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let words = <Vec<String> as serde::Deserialize>::deserialize(d)?;
        Ok(Self::from_words(words.iter().map(String::as_str)))
    }
}
