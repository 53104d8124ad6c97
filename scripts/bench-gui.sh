#!/usr/bin/env bash
# The keyboard-and-mouse benchmark against the original system's method:
# installs Xvfb, Tk, xclip and python3-venv when missing, creates
# target/bench-venv with pyautogui and pyperclip from PyPI, then runs
# `cargo bench --bench gui`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
missing=()
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xclip >/dev/null || missing+=(xclip)
/usr/bin/python3 -c 'import tkinter' 2>/dev/null || missing+=(python3-tk)
/usr/bin/python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x target/bench-venv/bin/python ]; then
    /usr/bin/python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install -q pyautogui pyperclip
fi
# A virtual screen for the bench: the clipboard crate reads $DISPLAY itself.
exec 3< <(Xvfb -displayfd 1 -screen 0 3840x1080x24 -nolisten tcp -noreset 2>/dev/null & echo "pid $!")
read -r _ xvfb_pid <&3
read -r display <&3
trap 'kill $xvfb_pid 2>/dev/null' EXIT
export DISPLAY=":$display"
cargo bench --locked --bench gui
