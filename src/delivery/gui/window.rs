//! What is on the X11 screen: the window at a point, the window holding the
//! keyboard focus, the pointer position and the monitor layout (`RandR`).
//! This is what the window guard and `acp coords` read.

use std::collections::VecDeque;

use x11rb::connection::Connection;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xproto::{Atom, AtomEnum, ConnectionExt as _, InputFocus, MapState, Window};
use x11rb::rust_connection::RustConnection;

use crate::coords::{Monitor, Point};

/// A failure talking to the X server.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub(crate) struct X11Error(pub String);

fn x11<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> X11Error {
    move |e| X11Error(format!("{what}: {e}"))
}

/// An application window, as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    /// The top-level window (a child of the root).
    pub top_level: Window,
    pub title: String,
    /// `WM_CLASS` as "instance/Class".
    pub class: String,
}

/// A connection to one X display.
pub(crate) struct Display {
    /// Also read by the focus watch (`focus.rs`).
    pub(super) conn: RustConnection,
    root: Window,
    width: u16,
    height: u16,
    net_wm_name: Atom,
    utf8_string: Atom,
    wm_state: Atom,
    clipboard: Atom,
}

impl Display {
    /// Connects to a display such as `:0`.
    ///
    /// # Errors
    /// [`X11Error`] saying why (no server, refused...).
    pub fn connect(name: &str) -> Result<Self, X11Error> {
        let (conn, screen) = x11rb::connect(Some(name))
            .map_err(|e| X11Error(format!("cannot connect to X display {name}: {e}")))?;
        let s = &conn.setup().roots[screen];
        let (root, width, height) = (s.root, s.width_in_pixels, s.height_in_pixels);
        let atom = |n: &[u8]| -> Result<Atom, X11Error> {
            Ok(conn
                .intern_atom(false, n)
                .map_err(x11("intern_atom"))?
                .reply()
                .map_err(x11("intern_atom"))?
                .atom)
        };
        let (net_wm_name, utf8_string, wm_state, clipboard) = (
            atom(b"_NET_WM_NAME")?,
            atom(b"UTF8_STRING")?,
            atom(b"WM_STATE")?,
            atom(b"CLIPBOARD")?,
        );
        Ok(Self {
            conn,
            root,
            width,
            height,
            net_wm_name,
            utf8_string,
            wm_state,
            clipboard,
        })
    }

    /// The window that holds the clipboard (`CLIPBOARD` selection), or
    /// `None` when nobody does and it is empty.
    ///
    /// # Errors
    /// [`X11Error`].
    pub(crate) fn clipboard_owner(&self) -> Result<Option<Window>, X11Error> {
        let owner = self
            .conn
            .get_selection_owner(self.clipboard)
            .map_err(x11("get_selection_owner"))?
            .reply()
            .map_err(x11("get_selection_owner"))?
            .owner;
        Ok((owner != x11rb::NONE).then_some(owner))
    }

    /// Keycodes that produce each character on the current keyboard map
    /// without remapping: unshifted (column 0) or with Shift (column 1).
    ///
    /// # Errors
    /// [`X11Error`].
    pub fn keymap(&self) -> Result<std::collections::HashMap<char, (u8, bool)>, X11Error> {
        let setup = self.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = self
            .conn
            .get_keyboard_mapping(min, max - min + 1)
            .map_err(x11("get_keyboard_mapping"))?
            .reply()
            .map_err(x11("get_keyboard_mapping"))?;
        let per = usize::from(reply.keysyms_per_keycode);
        let mut map = std::collections::HashMap::new();
        if per == 0 {
            return Ok(map);
        }
        for (i, syms) in reply.keysyms.chunks(per).enumerate() {
            let Ok(keycode) = u8::try_from(usize::from(min) + i) else {
                break;
            };
            for (col, shift) in [(0, false), (1, true)] {
                // Latin-1 keysyms are their code points.
                if let Some(&sym) = syms.get(col)
                    && (0x20..=0x7e).contains(&sym)
                    && let Some(c) = char::from_u32(sym)
                {
                    map.entry(c).or_insert((keycode, shift));
                }
            }
        }
        Ok(map)
    }

    /// Whether the server still answers (a cheap round trip).
    #[must_use]
    pub(crate) fn is_alive(&self) -> bool {
        self.conn
            .get_input_focus()
            .ok()
            .and_then(|c| c.reply().ok())
            .is_some()
    }

    /// The application window at a point, or `None` over the bare desktop.
    ///
    /// # Errors
    /// [`X11Error`].
    pub(crate) fn window_at(&self, p: Point) -> Result<Option<WindowInfo>, X11Error> {
        let (Ok(x), Ok(y)) = (i16::try_from(p.x), i16::try_from(p.y)) else {
            return Ok(None);
        };
        if p.x < 0 || p.y < 0 || p.x >= i32::from(self.width) || p.y >= i32::from(self.height) {
            return Ok(None);
        }
        let reply = self
            .conn
            .translate_coordinates(self.root, self.root, x, y)
            .map_err(x11("translate_coordinates"))?
            .reply()
            .map_err(x11("translate_coordinates"))?;
        if reply.child == x11rb::NONE {
            return Ok(None);
        }
        self.describe(reply.child).map(Some)
    }

    /// The mapped application windows (top-level windows with a
    /// `WM_CLASS`), bottom to top. A window that goes away meanwhile is
    /// left out.
    ///
    /// # Errors
    /// [`X11Error`] if the window tree cannot be read.
    pub(crate) fn windows(&self) -> Result<Vec<WindowInfo>, X11Error> {
        let tree = self.query_tree(self.root)?;
        let mut out = Vec::new();
        for w in tree.children {
            let viewable = self
                .conn
                .get_window_attributes(w)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|a| a.map_state == MapState::VIEWABLE);
            if !viewable {
                continue;
            }
            if let Ok(info) = self.describe(w)
                && !info.class.is_empty()
            {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// The top-level window that receives keystrokes now: the focus
    /// window's, or with focus-follows-pointer the one under the pointer.
    ///
    /// # Errors
    /// [`X11Error`].
    pub(crate) fn keyboard_window(&self) -> Result<Option<Window>, X11Error> {
        let focus = self
            .conn
            .get_input_focus()
            .map_err(x11("get_input_focus"))?
            .reply()
            .map_err(x11("get_input_focus"))?
            .focus;
        if focus == u32::from(InputFocus::POINTER_ROOT) || focus == self.root {
            let pointer = self.query_pointer()?;
            return Ok((pointer.child != x11rb::NONE).then_some(pointer.child));
        }
        if focus == u32::from(InputFocus::NONE) {
            return Ok(None);
        }
        self.top_level_of(focus).map(Some)
    }

    /// Where the pointer is.
    ///
    /// # Errors
    /// [`X11Error`].
    pub fn pointer(&self) -> Result<Point, X11Error> {
        let r = self.query_pointer()?;
        Ok(Point {
            x: i32::from(r.root_x),
            y: i32::from(r.root_y),
        })
    }

    /// The live monitor layout (`RandR` 1.5), or the whole screen as one
    /// monitor when the server has no `RandR` monitors.
    pub(crate) fn monitors(&self) -> Vec<Monitor> {
        let monitors = self
            .conn
            .randr_get_monitors(self.root, true)
            .ok()
            .and_then(|c| c.reply().ok())
            .map(|r| r.monitors)
            .unwrap_or_default();
        if monitors.is_empty() {
            return vec![Monitor {
                name: "screen".into(),
                x: 0,
                y: 0,
                width: u32::from(self.width),
                height: u32::from(self.height),
            }];
        }
        monitors
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let name = self
                    .conn
                    .get_atom_name(m.name)
                    .ok()
                    .and_then(|c| c.reply().ok())
                    .map_or_else(
                        || format!("monitor-{}", i + 1),
                        |r| String::from_utf8_lossy(&r.name).into_owned(),
                    );
                Monitor {
                    name,
                    x: i32::from(m.x),
                    y: i32::from(m.y),
                    width: u32::from(m.width),
                    height: u32::from(m.height),
                }
            })
            .collect()
    }

    fn query_pointer(&self) -> Result<x11rb::protocol::xproto::QueryPointerReply, X11Error> {
        self.conn
            .query_pointer(self.root)
            .map_err(x11("query_pointer"))?
            .reply()
            .map_err(x11("query_pointer"))
    }

    fn query_tree(&self, w: Window) -> Result<x11rb::protocol::xproto::QueryTreeReply, X11Error> {
        self.conn
            .query_tree(w)
            .map_err(x11("query_tree"))?
            .reply()
            .map_err(x11("query_tree"))
    }

    fn top_level_of(&self, mut w: Window) -> Result<Window, X11Error> {
        loop {
            let tree = self.query_tree(w)?;
            if tree.parent == self.root || tree.parent == x11rb::NONE {
                return Ok(w);
            }
            w = tree.parent;
        }
    }

    /// Title and class of a top-level window: its own, or (under a window
    /// manager, whose frame holds none) those of the client inside it.
    fn describe(&self, top_level: Window) -> Result<WindowInfo, X11Error> {
        let mut queue = VecDeque::from([(top_level, 0u8)]);
        let mut fallback = None;
        while let Some((w, depth)) = queue.pop_front() {
            let title = self.title(w)?;
            let class = self.class(w)?;
            let is_client = self.has_property(w, self.wm_state)?;
            if is_client || (!title.is_empty() && fallback.is_none()) {
                let info = WindowInfo {
                    top_level,
                    title,
                    class,
                };
                if is_client {
                    return Ok(info);
                }
                fallback = Some(info);
            }
            if depth < 3 {
                let tree = self.query_tree(w)?;
                queue.extend(tree.children.into_iter().map(|c| (c, depth + 1)));
            }
        }
        Ok(fallback.unwrap_or(WindowInfo {
            top_level,
            title: String::new(),
            class: String::new(),
        }))
    }

    fn property(&self, w: Window, atom: Atom, kind: Atom) -> Result<Vec<u8>, X11Error> {
        Ok(self
            .conn
            .get_property(false, w, atom, kind, 0, 4096)
            .map_err(x11("get_property"))?
            .reply()
            .map_err(x11("get_property"))?
            .value)
    }

    fn has_property(&self, w: Window, atom: Atom) -> Result<bool, X11Error> {
        let r = self
            .conn
            .get_property(false, w, atom, AtomEnum::ANY, 0, 0)
            .map_err(x11("get_property"))?
            .reply()
            .map_err(x11("get_property"))?;
        Ok(r.type_ != x11rb::NONE)
    }

    fn title(&self, w: Window) -> Result<String, X11Error> {
        let utf8 = self.property(w, self.net_wm_name, self.utf8_string)?;
        if !utf8.is_empty() {
            return Ok(String::from_utf8_lossy(&utf8).into_owned());
        }
        let legacy = self.property(w, AtomEnum::WM_NAME.into(), AtomEnum::ANY.into())?;
        // WM_NAME is Latin-1 (STRING); each byte is one code point.
        Ok(legacy.iter().map(|&b| char::from(b)).collect())
    }

    fn class(&self, w: Window) -> Result<String, X11Error> {
        let raw = self.property(w, AtomEnum::WM_CLASS.into(), AtomEnum::STRING.into())?;
        let parts: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        Ok(parts.join("/"))
    }
}
