//! Closed sets of names written in cluster.yaml (`stacked`, `control-plane`, `ecdsa-p256`, ...).

/// A config value that is one of a fixed list of spellings.
pub trait Choice: Sized + Copy + 'static {
    /// What the value is called in messages ("topology", "role").
    const WHAT: &'static str;
    /// Every variant with its spelling, in the order help lists them.
    const ALL: &'static [(Self, &'static str)];

    fn as_str(self) -> &'static str;

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, s)| *s == text).map(|(v, _)| *v)
    }

    /// `one of: a, b, c`
    fn listing() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|(_, s)| *s).collect();
        format!("one of: {}", names.join(", "))
    }
}

/// Defines a `Copy` enum with its YAML spellings and the `Choice`, `Display`, `Serialize` and
/// `Deserialize` impls that go with them.
macro_rules! choice_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $crate::config::choice::Choice for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [(Self, &'static str)] = &[$(($name::$variant, $text)),+];
            fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::config::choice::Choice::as_str(*self))
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <Self as $crate::config::choice::Choice>::parse(s).ok_or_else(|| {
                    format!("unknown {} `{s}`", <Self as $crate::config::choice::Choice>::WHAT)
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::config::choice::Choice::as_str(*self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use choice_enum;
