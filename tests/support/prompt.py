#!/usr/bin/env python3
"""An agent's terminal prompt, for the tmux tests: it runs in a tmux pane,
asks for bracketed paste, shows "> " when it waits for input, and records
every submission (Enter outside a paste) as one JSON line in OUT.

Switches, as files beside OUT:
- OUT.busy: while it exists the agent is "working": the prompt line is
  replaced by "working...", and anything submitted meanwhile is recorded
  with "busy": true. If the file holds "spin", a counter after it goes up
  five times a second (as a terminal agent's timer does while it works).
- OUT.drop-enter: the next Enter is swallowed (a submit lost the way
  terminal agents lose one right after a paste), and the file removed.
- OUT.dialog: while it exists, a Claude-Code-like permission dialog for
  the command the file holds is drawn (a box, "Do you want to proceed?",
  numbered choices). A key 1-3 or Esc answers it: recorded as
  {"dialog_key": KEY, "dialog": COMMAND}, the file removed, the prompt
  back. Anything else typed meanwhile is recorded as
  {"typed_into_dialog": TEXT}. A new command in the file redraws it.

usage: prompt.py OUT
(OUT a folder: it records into OUT/$ACP_AGENT.jsonl, for agents acp starts.)
"""
import json
import os
import select
import sys
import termios
import time
import tty

out = sys.argv[1]
if os.path.isdir(out):
    out = os.path.join(out, os.environ.get("ACP_AGENT", "agent") + ".jsonl")
busy_flag, drop_flag, dialog_flag = out + ".busy", out + ".drop-enter", out + ".dialog"
fd = sys.stdin.fileno()
tty.setraw(fd)
w = sys.stdout


def show(text):
    w.write(text)
    w.flush()


def record(text, busy):
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps({"text": text, "busy": busy}, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def record_json(obj):
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def spinning():
    try:
        with open(busy_flag, encoding="utf-8") as f:
            return f.read().strip() == "spin"
    except FileNotFoundError:
        return False


def dialog_text():
    try:
        with open(dialog_flag, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def draw_dialog(command):
    # One write, as a terminal UI draws a frame.
    show(
        "\x1b[2J\x1b[H"
        "╭──────────────────────────────────────────────╮\r\n"
        "│ Bash command                                 │\r\n"
        "│   " + command + "\r\n"
        "│   Run the command                            │\r\n"
        "│                                              │\r\n"
        "│ Do you want to proceed?                      │\r\n"
        "│ ❯ 1. Yes                                     │\r\n"
        "│   2. Yes, and don't ask again for this session│\r\n"
        "│   3. No, and tell Claude what to do differently (esc)\r\n"
        "╰──────────────────────────────────────────────╯\r\n"
    )


def prompt_line(buf):
    # The input line shows the end of what is typed, like a chat input.
    last = buf.split("\n")[-1]
    return "\r\x1b[2K> " + last


show("\x1b[?2004h")
show("> ")
buf, raw, pasting, busy, shown_dialog = "", b"", False, False, None
spun, spun_at = 0, 0.0
while True:
    ready, _, _ = select.select([fd], [], [], 0.05)
    wanted = dialog_text()
    if wanted != shown_dialog:
        shown_dialog = wanted
        if wanted is None:
            show("\x1b[2J\x1b[H> ")
        else:
            draw_dialog(wanted)
    if shown_dialog is not None:
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text = chunk.decode("utf-8", "replace")
            if text in ("1", "2", "3", "\x1b"):
                # Gone before it is told, so a new dialog asked for after
                # the record is not removed with this one.
                os.remove(dialog_flag)
                record_json({"dialog_key": "esc" if text == "\x1b" else text, "dialog": shown_dialog})
            else:
                record_json({"typed_into_dialog": text})
        continue
    now_busy = os.path.exists(busy_flag)
    if now_busy != busy:
        busy = now_busy
        show("\r\x1b[2Kworking..." if busy else prompt_line(buf))
    if busy and time.monotonic() - spun_at >= 0.2 and spinning():
        spun, spun_at = spun + 1, time.monotonic()
        show("\r\x1b[2Kworking... %d" % spun)
    if not ready:
        continue
    chunk = os.read(fd, 65536)
    if not chunk:
        break
    raw += chunk
    while raw:
        if raw.startswith(b"\x1b[200~"):
            pasting, raw = True, raw[6:]
            continue
        if raw.startswith(b"\x1b[201~"):
            pasting, raw = False, raw[6:]
            if not busy:
                show(prompt_line(buf))
            continue
        if raw.startswith(b"\x1b") and len(raw) < 6:
            break  # the rest of an escape sequence is on its way
        # One character (UTF-8 may span several bytes).
        for n in range(1, 5):
            try:
                ch = raw[:n].decode("utf-8")
                break
            except UnicodeDecodeError:
                ch = None
        if ch is None:
            if len(raw) < 4:
                break
            ch, n = "\ufffd", 1
        raw = raw[n:]
        if pasting:
            buf += "\n" if ch == "\r" else ch
        elif ch == "\r":
            if os.path.exists(drop_flag):
                os.remove(drop_flag)
                continue
            record(buf, busy)
            buf = ""
            show("\r\n" + ("working..." if busy else "> "))
        elif ch == "\x03":
            sys.exit(0)
        else:
            buf += ch
            if not busy:
                show(prompt_line(buf))
