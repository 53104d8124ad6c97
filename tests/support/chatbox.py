#!/usr/bin/env python3
"""A chat input for the keyboard-and-mouse tests: a real X window that
records exactly what it receives, the way an agent's chat box would.

Enter submits (the text is appended to OUT as one JSON line and the box is
cleared); Shift+Enter inserts a newline; Ctrl+V pastes the clipboard;
Ctrl+A selects all; Ctrl+N is recorded as a key event (onboarding: "new
chat"). After every key the current, unsubmitted text is written to
OUT.draft, so a test can see keystrokes that went astray.

Two options make windows that are slow with the keyboard focus (there
is no window manager under Xvfb: the focus stays where a client puts it):
--hold-focus takes the focus at the start and is ready only once it has
it; --focus-after-click MS takes the focus MS ms after each click on the
window, and --focus-after-click never never takes it. Each time the window
gets the focus, a "focus" event is recorded.

usage: chatbox.py TITLE WIDTHxHEIGHT+X+Y OUT [--hold-focus] [--focus-after-click MS|never]
"""
import json
import os
import sys
import time
import tkinter as tk

title, geometry, out = sys.argv[1], sys.argv[2], sys.argv[3]
options = sys.argv[4:]
hold_focus = "--hold-focus" in options
focus_after_click = (
    options[options.index("--focus-after-click") + 1]
    if "--focus-after-click" in options
    else None
)


def record(event):
    event["t"] = time.time()
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(event, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


pending = False


def save_draft(_event=None):
    """Writes the draft once the window is idle (typing 10,000 characters
    must not mean 10,000 file writes)."""
    global pending
    if not pending:
        pending = True
        root.after_idle(write_draft)


def write_draft():
    global pending
    pending = False
    tmp = out + ".draft.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text.get("1.0", "end-1c"))
    os.replace(tmp, out + ".draft")


root = tk.Tk(className="AcpChatbox")
root.title(title)
root.geometry(geometry)
text = tk.Text(root, undo=False)
text.pack(fill="both", expand=True)


def submit(_event):
    record({"event": "submit", "text": text.get("1.0", "end-1c")})
    text.delete("1.0", "end")
    write_draft()
    return "break"


def newline(_event):
    text.insert("insert", "\n")
    save_draft()
    return "break"


def select_all(_event):
    text.tag_add("sel", "1.0", "end")
    return "break"


def new_chat(_event):
    record({"event": "key", "key": "ctrl+n"})
    return "break"


text.bind("<Return>", submit)
text.bind("<KP_Enter>", submit)
text.bind("<Shift-Return>", newline)
text.bind("<Control-a>", select_all)
text.bind("<Control-n>", new_chat)
text.bind("<KeyRelease>", save_draft)
text.bind("<<Paste>>", lambda e: root.after(1, save_draft))
text.focus_set()


def ready():
    write_draft()
    with open(out + ".ready", "w") as f:
        f.write(str(root.winfo_id()))


def focused(_event):
    # Tk reports the focus arriving at the top-level and at the text box;
    # the text box is where keys land.
    if _event.widget is text:
        record({"event": "focus"})
        if hold_focus and not os.path.exists(out + ".ready"):
            ready()


def clicked(_event):
    if focus_after_click not in (None, "never"):
        root.after(int(focus_after_click), text.focus_force)


text.bind("<FocusIn>", focused, add="+")
text.bind("<Button-1>", clicked, add="+")

# Ready once the window is mapped and its events are flowing: a test that
# waits for the .ready file then knows the box can take keys. A window that
# holds the focus is ready once it has it.
root.wait_visibility(text)
if hold_focus:
    text.focus_force()
else:
    root.after_idle(ready)
root.mainloop()
