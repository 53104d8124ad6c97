//! Key combinations as written in config: `enter`, `ctrl+enter`,
//! `shift+enter`, `ctrl+shift+v`, `ctrl+a`, `delete`, `escape`, `f5`...

use std::fmt;
use std::str::FromStr;

/// A modifier held while the key is pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    Ctrl,
    Shift,
    Alt,
    Meta,
}

/// A key with a name, or a character key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyName {
    Enter,
    Tab,
    Escape,
    Backspace,
    Delete,
    Home,
    End,
    PageUp,
    PageDown,
    Up,
    Down,
    Left,
    Right,
    Insert,
    Space,
    F(u8),
    Char(char),
}

/// Modifiers plus one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCombo {
    pub modifiers: Vec<Modifier>,
    pub key: KeyName,
}

/// A key combination that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a key combination: write modifiers and one key joined by '+', such as enter, \
     ctrl+enter, shift+enter, ctrl+shift+v, delete or f5"
)]
pub struct BadKey(pub String);

impl FromStr for KeyCombo {
    type Err = BadKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadKey(s.chars().take(40).collect());
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('+').map(str::trim).collect();
        let (key, mods) = parts.split_last().ok_or_else(bad)?;
        let mut modifiers = Vec::new();
        for m in mods {
            let modifier = match *m {
                "ctrl" | "control" => Modifier::Ctrl,
                "shift" => Modifier::Shift,
                "alt" => Modifier::Alt,
                "meta" | "super" | "cmd" | "win" => Modifier::Meta,
                _ => return Err(bad()),
            };
            if !modifiers.contains(&modifier) {
                modifiers.push(modifier);
            }
        }
        let key = match *key {
            "enter" | "return" => KeyName::Enter,
            "tab" => KeyName::Tab,
            "escape" | "esc" => KeyName::Escape,
            "backspace" => KeyName::Backspace,
            "delete" | "del" => KeyName::Delete,
            "home" => KeyName::Home,
            "end" => KeyName::End,
            "pageup" => KeyName::PageUp,
            "pagedown" => KeyName::PageDown,
            "up" => KeyName::Up,
            "down" => KeyName::Down,
            "left" => KeyName::Left,
            "right" => KeyName::Right,
            "insert" => KeyName::Insert,
            "space" => KeyName::Space,
            f if f.len() >= 2
                && f.starts_with('f')
                && f[1..].parse::<u8>().is_ok_and(|n| (1..=24).contains(&n)) =>
            {
                KeyName::F(f[1..].parse().map_err(|_| bad())?)
            }
            c if c.chars().count() == 1 && c.chars().all(|c| c.is_ascii_graphic()) => {
                KeyName::Char(c.chars().next().ok_or_else(bad)?)
            }
            _ => return Err(bad()),
        };
        Ok(Self { modifiers, key })
    }
}

impl fmt::Display for KeyCombo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.modifiers {
            let name = match m {
                Modifier::Ctrl => "ctrl",
                Modifier::Shift => "shift",
                Modifier::Alt => "alt",
                Modifier::Meta => "meta",
            };
            write!(f, "{name}+")?;
        }
        match self.key {
            KeyName::F(n) => write!(f, "f{n}"),
            KeyName::Char(c) => write!(f, "{c}"),
            other => write!(f, "{}", format!("{other:?}").to_ascii_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combos_parse_and_print() {
        for (text, shown) in [
            ("enter", "enter"),
            ("Ctrl+Enter", "ctrl+enter"),
            ("shift + enter", "shift+enter"),
            ("ctrl+shift+v", "ctrl+shift+v"),
            ("ctrl+a", "ctrl+a"),
            ("delete", "delete"),
            ("f5", "f5"),
            ("alt+pagedown", "alt+pagedown"),
        ] {
            let combo: KeyCombo = text.parse().unwrap();
            assert_eq!(combo.to_string(), shown);
        }
        for bad in ["", "+", "ctrl+", "hyper+a", "f99", "enterr", "é", "ctrl+ab"] {
            assert!(bad.parse::<KeyCombo>().is_err(), "{bad:?}");
        }
    }
}
