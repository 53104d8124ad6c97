//! Pressing keys through enigo: key combinations, and lines typed on the
//! keyboard map's own keys.

use std::collections::HashMap;

use enigo::{Direction, Enigo, Key, Keyboard};

use crate::model::DeliveryError;
use crate::model::gui::InputMode;
use crate::model::keys::{KeyCombo, KeyName, Modifier};

pub(super) fn enigo_err(what: &str) -> impl Fn(enigo::InputError) -> DeliveryError + '_ {
    move |e| DeliveryError::transient(format!("{what} failed: {e}"))
}

fn to_key(key: KeyName) -> Key {
    match key {
        KeyName::Enter => Key::Return,
        KeyName::Tab => Key::Tab,
        KeyName::Escape => Key::Escape,
        KeyName::Backspace => Key::Backspace,
        KeyName::Delete => Key::Delete,
        KeyName::Home => Key::Home,
        KeyName::End => Key::End,
        KeyName::PageUp => Key::PageUp,
        KeyName::PageDown => Key::PageDown,
        KeyName::Up => Key::UpArrow,
        KeyName::Down => Key::DownArrow,
        KeyName::Left => Key::LeftArrow,
        KeyName::Right => Key::RightArrow,
        KeyName::Insert => Key::Insert,
        KeyName::Space => Key::Space,
        KeyName::F(n) => [
            Key::F1,
            Key::F2,
            Key::F3,
            Key::F4,
            Key::F5,
            Key::F6,
            Key::F7,
            Key::F8,
            Key::F9,
            Key::F10,
            Key::F11,
            Key::F12,
            Key::F13,
            Key::F14,
            Key::F15,
            Key::F16,
            Key::F17,
            Key::F18,
            Key::F19,
            Key::F20,
            Key::F21,
            Key::F22,
            Key::F23,
            Key::F24,
        ][usize::from(n.clamp(1, 24) - 1)],
        KeyName::Char(c) => Key::Unicode(c),
    }
}

pub(super) fn press(enigo: &mut Enigo, combo: &KeyCombo) -> Result<(), DeliveryError> {
    let mods: Vec<Key> = combo
        .modifiers
        .iter()
        .map(|m| match m {
            Modifier::Ctrl => Key::Control,
            Modifier::Shift => Key::Shift,
            Modifier::Alt => Key::Alt,
            Modifier::Meta => Key::Meta,
        })
        .collect();
    let what = "pressing a key";
    for m in &mods {
        enigo.key(*m, Direction::Press).map_err(enigo_err(what))?;
    }
    let result = enigo
        .key(to_key(combo.key), Direction::Click)
        .map_err(enigo_err(what));
    // Release modifiers even when the key failed, so none stays held.
    for m in mods.iter().rev() {
        let _ = enigo.key(*m, Direction::Release);
    }
    result
}

/// Whether a body is typed (true) or pasted. `auto` types short single
/// lines made of characters on the keyboard map; accents, CJK and emoji
/// would need keycode remapping (slow, and racy with other X clients), so
/// such bodies are pasted.
pub(super) fn types(
    mode: InputMode,
    text: &str,
    type_max_chars: usize,
    keymap: &HashMap<char, (u8, bool)>,
) -> bool {
    match mode {
        InputMode::Type => true,
        InputMode::Paste => false,
        InputMode::Auto => {
            !text.contains('\n')
                && text.chars().count() <= type_max_chars
                && text.chars().all(|c| keymap.contains_key(&c))
        }
    }
}

/// Types one line. Characters on the keyboard map are pressed on their own
/// keycodes (with Shift where needed), like a person would; only the others
/// (accents, CJK, emoji) go through enigo's remapping of a spare keycode.
/// Remapping makes every X client reload its keymap, and a client that
/// reloads late can miss a character, so it is kept to what needs it.
pub(super) fn type_line(
    enigo: &mut Enigo,
    keymap: &HashMap<char, (u8, bool)>,
    line: &str,
) -> Result<(), DeliveryError> {
    let what = "typing";
    for c in line.chars() {
        let Some(&(keycode, shift)) = keymap.get(&c) else {
            let mut buf = [0u8; 4];
            enigo
                .text(c.encode_utf8(&mut buf))
                .map_err(enigo_err(what))?;
            continue;
        };
        if shift {
            enigo
                .key(Key::Shift, Direction::Press)
                .map_err(enigo_err(what))?;
        }
        let pressed = enigo
            .raw(u16::from(keycode), Direction::Click)
            .map_err(enigo_err(what));
        if shift {
            enigo
                .key(Key::Shift, Direction::Release)
                .map_err(enigo_err(what))?;
        }
        pressed?;
    }
    Ok(())
}
