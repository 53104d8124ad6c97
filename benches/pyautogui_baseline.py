#!/usr/bin/env python3
"""The original system's way of driving the GUI, for the benchmark baseline:
pyautogui moves, clicks and types; pyperclip fills the clipboard for a paste.
Same steps as acp: click the chat input, paste (Ctrl+V) or type (Shift+Enter
between lines), wait the pre-submit delay, press Enter.

usage: pyautogui_baseline.py X Y PRE_SUBMIT_MS REPS BODY_FILE MODE EVENTS_FILE OUT_FILE
Writes the median milliseconds from start to submit to OUT_FILE (not to
stdout: pyperclip's xclip stays in the background holding inherited pipes).
"""
import statistics
import sys
import time

import pyautogui
import pyperclip

x, y, pre_ms, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
body = open(sys.argv[5], encoding="utf-8").read()
mode, events, result = sys.argv[6], sys.argv[7], sys.argv[8]


def submits():
    try:
        with open(events, encoding="utf-8") as f:
            return sum(1 for line in f if '"submit"' in line)
    except FileNotFoundError:
        return 0


times = []
for _ in range(reps):
    before = submits()
    start = time.perf_counter()
    pyautogui.click(x, y)
    if mode == "paste":
        pyperclip.copy(body)
        pyautogui.hotkey("ctrl", "v")
    else:
        for i, line in enumerate(body.split("\n")):
            if i:
                pyautogui.hotkey("shift", "enter")
            pyautogui.write(line)
    time.sleep(pre_ms / 1000)
    pyautogui.press("enter")
    times.append((time.perf_counter() - start) * 1000)
    deadline = time.time() + 120
    while submits() <= before and time.time() < deadline:
        time.sleep(0.01)
with open(result, "w") as f:
    f.write(f"{statistics.median(times):.1f}\n")
